"""Differencing guard (compiler/plan/guard.py) on the plaintext oracle: fast, no parties.

A receiver who gets `count(A)` and then `count(A AND NOT <one person>)` learns that person's
cell by subtracting. With the earlier release in the ledger, the second plan carries a guard and
the cell that differs by 1..k-1 rows is suppressed, with the guard named as the reason.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plan.guard import coverage, select, signature_of_plan
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plan.plan_schema import validate
from insightql.compiler.plaintext.results import Suppressed

from conftest import CATALOG, load_tables
from randdata import random_rows, write_csv

CAT = load_catalog(CATALOG)
K = CAT.datasets["police_victims"].policy.min_group_size
HEAD = "@purpose research\n"
BY_REGION = HEAD + "SELECT exp_Region, COUNT(*) AS n FROM police_victims {where} GROUP BY exp_Region;"
TOTAL = HEAD + "SELECT COUNT(*) AS n FROM police_victims {where};"
GUARD_REASON = "differencing guard"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    """police: 120 rows in 4 regions, ages 20..60, one person aged 77 in the North, three BG
    nationals; ngo: 3 rows in the North (fewer than k)."""
    folder = tmp_path_factory.mktemp("guard")
    rng = np.random.default_rng(7)
    ds = CAT.datasets["police_victims"]
    rows = random_rows(ds, 120, rng, null_rate=0.0)
    for i, r in enumerate(rows):
        r["exp_Region"] = ["North", "East", "South", "West"][i % 4]
        r["prs_Age"] = str(20 + i % 40)
        r["prs_Nationality"] = "NG" if i % 2 else "RO"
        r["person_id"] = str(1000 + i)
    rows[0]["prs_Age"] = "77"  # the person the attack isolates (North)
    for i in (4, 8, 12):
        rows[i]["prs_Nationality"] = "BG"  # three BG nationals, all in the North
    ngo = CAT.datasets["ngo_clients"]
    nrows = random_rows(ngo, 3, rng, null_rate=0.0)
    for r in nrows:
        r["exp_Region"] = "North"
    return {"police_victims": str(write_csv(folder / "police.csv", ds, rows)),
            "ngo_clients": str(write_csv(folder / "ngo.csv", ngo, nrows))}


def plan_of(text: str, earlier=None, name="q.iq") -> dict:
    res = compile_source(text, name, CAT, earlier=earlier)
    assert res.plan is not None, [d.render() for d in res.diagnostics]
    return res.plan


def run(plan: dict, data) -> dict:
    table = run_plan_plaintext(plan, load_tables(plan, CAT, data))
    return {tuple(r[:-1]): r[-1] for r in table.rows}, table


def guarded(first: str, second: str, data):
    """Release `first`, then compile `second` against a ledger holding that release."""
    p1 = plan_of(first)
    p2 = plan_of(second, earlier=[signature_of_plan(p1)])
    return run(p1, data)[0], *run(p2, data), p2


def suppressed(v) -> bool:
    return isinstance(v, Suppressed)


def test_and_not_one_person_is_suppressed_everywhere(data):
    """The person's cell differs by 1, every other by 0: by the zero rule both are suppressed, so
    the guard does not tell where (or whether) someone aged 77 is."""
    before, after, table, plan = guarded(BY_REGION.format(where=""),
                                         BY_REGION.format(where="WHERE NOT prs_Age = 77"), data)
    assert before[("North",)] == 30 and before[("East",)] == 30
    assert all(suppressed(v) for v in after.values()), after
    assert any("earlier release(s) q" in n for n in table.notes), table.notes
    assert validate(plan) == []
    assert [e["mode"] for e in plan["guard"]] == ["cells"]


def test_the_guard_is_no_oracle_for_existence(data):
    """Nobody is aged 78: the view is the same as for 77, who exists."""
    _, with_person, _, _ = guarded(BY_REGION.format(where=""), BY_REGION.format(where="WHERE NOT prs_Age = 77"), data)
    _, nobody, _, _ = guarded(BY_REGION.format(where=""), BY_REGION.format(where="WHERE NOT prs_Age = 78"), data)
    assert {c: str(v) for c, v in with_person.items()} == {c: str(v) for c, v in nobody.items()}


def test_without_the_guard_the_attack_works(data):
    """The threat the guard answers: both counts pass k, their difference is one person."""
    before = run(plan_of(BY_REGION.format(where="")), data)[0]
    after = run(plan_of(BY_REGION.format(where="WHERE NOT prs_Age = 77")), data)[0]
    assert before[("North",)] - after[("North",)] == 1


def test_value_removed_from_in_list(data):
    first = BY_REGION.format(where="WHERE prs_Nationality IN ('NG', 'RO', 'BG')")
    second = BY_REGION.format(where="WHERE prs_Nationality IN ('NG', 'RO')")
    before, after, _, _ = guarded(first, second, data)
    assert before[("North",)] == 30
    assert suppressed(after[("North",)]) and suppressed(after[("East",)])  # BG could be in the East


def test_region_removed_from_in_list_keeps_the_other_regions(data):
    """Control: the definitions force the other regions' cells to be the same rows."""
    first = BY_REGION.format(where="WHERE exp_Region IN ('North', 'East', 'South', 'West')")
    second = BY_REGION.format(where="WHERE exp_Region IN ('East', 'South', 'West')")
    _, after, _, _ = guarded(first, second, data)
    assert after[("East",)] == 30 and after[("South",)] == 30 and suppressed(after[("North",)])


def test_broad_after_narrow_is_caught_too(data):
    _, after, _, _ = guarded(BY_REGION.format(where="WHERE NOT prs_Age = 77"), BY_REGION.format(where=""), data)
    assert all(suppressed(v) for v in after.values())


def test_difference_of_k_or_more_is_released(data):
    """North's cell is empty by definition (primary rule); the other cells are the same rows."""
    before, after, _, plan = guarded(BY_REGION.format(where=""),
                                     BY_REGION.format(where="WHERE exp_Region <> 'North'"), data)
    assert suppressed(after[("North",)])
    assert after[("East",)] == 30


def test_same_query_again_has_no_guard_entry(data):
    p1 = plan_of(BY_REGION.format(where=""))
    p2 = plan_of(BY_REGION.format(where=""), earlier=[signature_of_plan(p1)])
    assert "guard" not in p2 and p2["hash"] == p1["hash"]


def test_ungrouped_earlier_total_suppresses_every_cell(data):
    p0 = plan_of(TOTAL.format(where=""))
    p2 = plan_of(BY_REGION.format(where="WHERE NOT prs_Age = 77"), earlier=[signature_of_plan(p0)])
    assert [e["mode"] for e in p2["guard"]] == ["cells"]
    after = run(p2, data)[0]
    assert all(suppressed(v) for v in after.values())


def test_ungrouped_new_total_against_grouped_release(data):
    """The sum of the earlier regions minus the new total is the person: guard.margin."""
    p1 = plan_of(BY_REGION.format(where=""))
    p2 = plan_of(TOTAL.format(where="WHERE NOT prs_Age = 77"), earlier=[signature_of_plan(p1)])
    after = run(p2, data)[0]
    assert suppressed(after[()])


def test_breakdown_after_total_with_one_small_cell_is_suppressed_whole(data):
    """Complementary suppression: total minus the released regions would be the small cell."""
    by_nat = HEAD + "SELECT prs_Nationality, COUNT(*) AS n FROM police_victims GROUP BY prs_Nationality;"
    p0 = plan_of(TOTAL.format(where=""))
    after = run(plan_of(by_nat, earlier=[signature_of_plan(p0)]), data)[0]
    plain = run(plan_of(by_nat), data)[0]
    assert plain[("BG",)] != plain[("NG",)] and suppressed(plain[("BG",)]) and plain[("NG",)] == 60
    assert all(suppressed(v) for v in after.values())


def test_breakdown_after_total_with_every_cell_large_is_released(data):
    """Control: the regions cover the total and are all released: nothing is hidden."""
    p0 = plan_of(TOTAL.format(where=""))
    after = run(plan_of(BY_REGION.format(where=""), earlier=[signature_of_plan(p0)]), data)[0]
    assert after == {("North",): 30, ("East",): 30, ("South",): 30, ("West",): 30}


def test_total_after_breakdown_with_a_suppressed_cell_is_suppressed(data):
    by_nat = HEAD + "SELECT prs_Nationality, COUNT(*) AS n FROM police_victims GROUP BY prs_Nationality;"
    p1 = plan_of(by_nat)
    after = run(plan_of(TOTAL.format(where=""), earlier=[signature_of_plan(p1)]), data)[0]
    assert suppressed(after[()])


def test_total_after_a_released_breakdown_is_released(data):
    p1 = plan_of(BY_REGION.format(where=""))
    after = run(plan_of(TOTAL.format(where=""), earlier=[signature_of_plan(p1)]), data)[0]
    assert after[()] == 120


def test_recoded_bands_are_related(data):
    """bucket(age, [31]) after bucket(age, [30]): the new lower band minus the old one is the
    30-year-olds, 3 rows."""
    band = HEAD + "SELECT bucket(prs_Age, [{e}]) AS band, COUNT(*) AS n FROM police_victims GROUP BY band;"
    p1 = plan_of(band.format(e=30))
    before = run(p1, data)[0]
    after = run(plan_of(band.format(e=31), earlier=[signature_of_plan(p1)]), data)[0]
    assert not any(suppressed(v) for v in before.values())
    assert any(suppressed(v) for v in after.values())


def test_dataset_added_to_a_union(data):
    p1 = plan_of(BY_REGION.format(where=""))
    union = HEAD + "SELECT exp_Region, COUNT(*) AS n FROM police_victims UNION ALL ngo_clients GROUP BY exp_Region;"
    p2 = plan_of(union, earlier=[signature_of_plan(p1)])
    after = run(p2, data)[0]
    assert suppressed(after[("North",)]) and suppressed(after[("East",)])


def test_other_datasets_are_not_compared(data):
    p1 = plan_of(HEAD + "SELECT exp_Region, COUNT(*) AS n FROM ngo_clients GROUP BY exp_Region;")
    p2 = plan_of(BY_REGION.format(where="WHERE NOT prs_Age = 77"), earlier=[signature_of_plan(p1)])
    assert "guard" not in p2


def test_recompiling_with_the_plans_own_guard_gives_the_same_hash(data):
    p1 = plan_of(BY_REGION.format(where=""))
    p0 = plan_of(TOTAL.format(where="WHERE prs_Age > 30"))
    p2 = plan_of(BY_REGION.format(where="WHERE NOT prs_Age = 77"), earlier=[signature_of_plan(p1), signature_of_plan(p0)])
    assert len(p2["guard"]) == 2
    again = plan_of(BY_REGION.format(where="WHERE NOT prs_Age = 77"), earlier=p2["guard"])
    assert again["hash"] == p2["hash"]


def test_guard_is_in_the_hash_and_the_leakage_report(data):
    p1 = plan_of(BY_REGION.format(where=""))
    plain = plan_of(BY_REGION.format(where="WHERE NOT prs_Age = 77"))
    p2 = plan_of(BY_REGION.format(where="WHERE NOT prs_Age = 77"), earlier=[signature_of_plan(p1)])
    assert p2["hash"] != plain["hash"]
    items = {i["item"]: i for i in p2["leakage"]}
    assert "[guard.inside]" in items["suppression_flag"]["detail"]
    assert {"guard.inside", "guard.contains"} <= set(items["suppression_flag"]["rules"])
    assert items["guard_outcome"]["to"] == [] and "not revealed" in items["guard_outcome"]["detail"]
    earlier = [n for n in p2["nodes"] if n["op"] == "partials" and n["attrs"].get("earlier")]
    assert [n["attrs"]["cells"] for n in earlier] == [4]


def test_undecidable_relation_falls_back_to_the_row_difference(data):
    wide = HEAD + "SELECT exp_Region, COUNT(*) AS n FROM police_victims WHERE debt_eur - hours_worked_week > 100 " \
                  "GROUP BY exp_Region;"
    p1 = plan_of(BY_REGION.format(where=""))
    p2 = plan_of(wide, earlier=[signature_of_plan(p1)])
    assert [(e["mode"], e["scope"]) for e in p2["guard"]] == [("rows", "cell")]
    assert any(s["kind"] == "symdiff" for n in p2["nodes"] if n["op"] == "partials" for s in n["attrs"]["slots"])


def test_coverage_finds_stale_and_invented_entries():
    p1 = plan_of(BY_REGION.format(where=""))
    p3 = plan_of(BY_REGION.format(where="WHERE prs_Age > 30"))
    new_text = BY_REGION.format(where="WHERE NOT prs_Age = 77")
    p2 = plan_of(new_text, earlier=[signature_of_plan(p1)])
    new = signature_of_plan(p2)
    assert coverage(p2["guard"], new, [signature_of_plan(p1)]) == ([], [])
    missing, unknown = coverage(p2["guard"], new, [signature_of_plan(p1), signature_of_plan(p3)])
    assert [m["plan_hash"] for m in missing] == [p3["hash"]] and unknown == []
    missing, unknown = coverage(p2["guard"], new, [])
    assert missing == [] and [u["plan_hash"] for u in unknown] == [p1["hash"]]


def test_select_merges_releases_with_the_same_rows():
    p1 = plan_of(BY_REGION.format(where=""), name="a.iq")
    p1b = plan_of(BY_REGION.format(where="").replace("COUNT(*) AS n", "COUNT(*) AS m"), name="b.iq")
    new = signature_of_plan(plan_of(BY_REGION.format(where="WHERE NOT prs_Age = 77")))
    entries = select(new, [signature_of_plan(p1), signature_of_plan(p1b)])
    assert len(entries) == 1 and len(entries[0]["from"]) == 2


def test_earlier_release_over_more_datasets_is_compared(data):
    """Police and NGO by region earlier, police alone now: the earlier cell minus the new one is the
    NGO's part. The NGO's dataset is read for the guard only (`guard_only`)."""
    union = HEAD + "SELECT exp_Region, COUNT(*) AS n FROM police_victims UNION ALL ngo_clients GROUP BY exp_Region;"
    p1 = plan_of(union)
    p2 = plan_of(BY_REGION.format(where=""), earlier=[signature_of_plan(p1)])
    assert p2["datasets"]["ngo_clients"] == {"owner": "ngo", "guard_only": True}
    assert signature_of_plan(p2)["datasets"] == ["police_victims"]
    after = run(p2, data)[0]
    assert suppressed(after[("North",)])  # 33 earlier, 30 now: the NGO's 3
    assert suppressed(after[("East",)])  # 30 and 30: would show the NGO has none there (zero rule)


def test_withheld_value_against_a_later_margin(tmp_path):
    """Was residual 6.8: North's COUNT(hours) is withheld (1 of 20 rows lacks a value) in a released
    cell; a later total releases COUNT(hours) over all regions. The total minus the other regions'
    released counts would be North's 19 (20 - 19 = 1 row without hours); the guard's tests on the
    rows with a value treat North's earlier value as not surely released, so the total's is withheld."""
    from redteam_data import block, cells, releases
    P = "police_victims"
    world = [block(P, 20, exp_Region="North", hours_worked_week=[None] + [40] * 19),
             block(P, 20, exp_Region="East", hours_worked_week=[None] * 10 + [40] * 10),
             block(P, 20, exp_Region="South", hours_worked_week=40),
             block(P, 20, exp_Region="West", hours_worked_week=40)]
    cols = "COUNT(*) AS n, COUNT(hours_worked_week) AS m"
    queries = [f"SELECT exp_Region, {cols} FROM police_victims GROUP BY exp_Region;",
               f"SELECT {cols} FROM police_victims;"]
    regions, total = [cells(p, t) for p, _, t in releases(queries, world, CAT, tmp_path)]
    assert regions[("North",)] == {"n": 20, "m": None} and regions[("East",)]["m"] == 10
    assert total[()] == {"n": 80, "m": None}


# -- subgroups a release counted (spec/disclosure.md 2.13, 3.2): FILTER counts and COUNT(x) -------------
def _subgroup_world():
    """North: 20 rows aged 10, exactly 3 aged 18, 30 aged 40; hours 0 for the three, NULL for the 20.
    Every other region: 20 aged 10 and 30 aged 40. Each subgroup and its rest hold >= k rows."""
    from redteam_data import block
    P = "police_victims"
    world = [block(P, 20, exp_Region="North", prs_Age=10, hours_worked_week=None),
             block(P, 3, exp_Region="North", prs_Age=18, hours_worked_week=0),
             block(P, 30, exp_Region="North", prs_Age=40, hours_worked_week=40)]
    for r in ("East", "South", "West"):
        world += [block(P, 20, exp_Region=r, prs_Age=10, hours_worked_week=None),
                  block(P, 30, exp_Region=r, prs_Age=40, hours_worked_week=40)]
    return world


def _attack(queries: list[str], folder, guard: bool = True) -> list[dict]:
    from redteam_data import cells, releases
    return [cells(plan, table)[("North",)] for plan, _, table in releases(queries, _subgroup_world(), CAT, folder,
                                                                          guard=guard)]


SUB = "SELECT exp_Region, {cols} FROM police_victims {where} GROUP BY exp_Region;"
ADULTS = SUB.format(cols="COUNT(*) AS n, COUNT(*) FILTER (WHERE prs_Age >= 18) AS adults", where="")
OVER_18 = SUB.format(cols="COUNT(*) AS n", where="WHERE prs_Age >= 19")
WITH_HOURS = SUB.format(cols="COUNT(*) AS n, COUNT(hours_worked_week) AS with_hours", where="")
SOME_HOURS = SUB.format(cols="COUNT(*) AS n", where="WHERE hours_worked_week >= 1")


@pytest.mark.parametrize("first,second,column", [
    (ADULTS, OVER_18, "adults"),  # a FILTER count, then a WHERE: 33 - 30 = the 3 aged exactly 18
    (ADULTS.replace("COUNT(*) FILTER (WHERE prs_Age >= 18)", "SUM(CASE WHEN prs_Age >= 18 THEN 1 ELSE 0 END)"),
     OVER_18, "adults"),
    (WITH_HOURS, SOME_HOURS, "with_hours"),  # COUNT(x) counts the rows with a value: 33 - 30 = 3 with 0 hours
    (ADULTS, ADULTS.replace(">= 18", ">= 19"), "adults"),  # the same WHERE and keys, another subgroup
])
def test_an_earlier_subgroup_is_compared_with_a_later_cell(tmp_path, first, second, column):
    """Without the guard the two releases differ by the 3 rows of North's small group; with the
    earlier release's subgroups in its signature, the later North cell is suppressed."""
    a, b = _attack([first, second], tmp_path / "open", guard=False)
    assert a[column] == 33 and 33 - (b.get("adults") or b["n"]) == 3 < K  # the attack, without a guard
    a, b = _attack([first, second], tmp_path / "guarded")
    assert a[column] == 33
    assert (b["adults"] if "adults" in b else b["n"]) is None


@pytest.mark.parametrize("first,second,column", [
    (OVER_18, ADULTS, "adults"),  # a WHERE, then a FILTER count
    (OVER_18, SUB.format(cols="COUNT(*) AS n, AVG(prs_Age >= 18) AS adults", where=""), "adults"),
    (SOME_HOURS, WITH_HOURS, "with_hours"),  # a WHERE, then COUNT(x)
])
def test_a_later_subgroup_is_compared_with_an_earlier_cell(tmp_path, first, second, column):
    a, b = _attack([first, second], tmp_path / "guarded")
    assert a["n"] == 30 and b["n"] == 53  # the cells themselves differ by 23 >= k
    assert b[column] is None  # the subgroup (33) minus the earlier cell (30) is 3 rows


def test_subgroups_are_in_the_signature_and_old_entries_read_as_none():
    p = plan_of(HEAD + ADULTS)
    sig = signature_of_plan(p)
    assert len(sig["subgroups"]) == 1
    plain = signature_of_plan(plan_of(HEAD + OVER_18))
    assert "subgroups" not in plain  # a release without subgroups records none (and old entries lack the field)
    again = plan_of(HEAD + ADULTS, earlier=[sig])
    assert "guard" not in again and again["hash"] == p["hash"]  # the same release again: nothing to compare
    other = plan_of(HEAD + OVER_18, earlier=[sig])
    assert other["guard"][0]["subgroups"] == sig["subgroups"]


def test_a_party_rebuilds_a_guard_with_subgroups_from_its_ledger():
    """spec/disclosure.md 3.4 with subgroups: recompiling against the plan's own guard gives the same
    hash; the guard covers the ledger's release exactly; a release recorded without its subgroups
    (an older ledger entry) is another release, so the guard is stale against it."""
    sig = signature_of_plan(plan_of(HEAD + ADULTS))
    p = plan_of(HEAD + OVER_18, earlier=[sig])
    assert plan_of(HEAD + OVER_18, earlier=p["guard"])["hash"] == p["hash"]
    assert coverage(p["guard"], signature_of_plan(p), [sig]) == ([], [])
    older = {k: v for k, v in sig.items() if k != "subgroups"}
    missing, unknown = coverage(p["guard"], signature_of_plan(p), [older])
    assert missing and unknown


def test_a_cell_an_earlier_release_already_had_is_not_suppressed_by_its_subgroups(tmp_path):
    """COUNT(*) and COUNT(hours) per region, then COUNT(*) per region alone: no row lacks hours, so
    the new cells minus the earlier rows with a value are 0 rows, but the new cells are the earlier
    cells by definition, surely released: nothing new, released."""
    from redteam_data import block, cells, releases
    world = [block("police_victims", 20, exp_Region=r, hours_worked_week=40) for r in ("North", "East", "South", "West")]
    first, second = [cells(p, t) for p, _, t in releases([WITH_HOURS, SUB.format(cols="COUNT(*) AS n", where="")],
                                                          world, CAT, tmp_path)]
    assert first[("North",)] == {"n": 20, "with_hours": 20} and second[("North",)] == {"n": 20}


# -- the rest of a subgroup's cell (spec/disclosure.md 2.13, 3.2): n - m is released as exactly as m ----------
MINORS = SUB.format(cols="COUNT(*) AS n, COUNT(*) FILTER (WHERE prs_Age < 18) AS minors", where="")
SOME = SUB.format(cols="COUNT(*) AS n, COUNT(*) FILTER (WHERE hours_worked_week >= 1) AS some_hours", where="")


@pytest.mark.parametrize("first,second,column,released", [
    # the rest of minors (33: aged 18 and 40) minus the later cell (30 aged 19 or more) is the 3 aged 18
    (MINORS, OVER_18, "n", False),
    (OVER_18, MINORS, "minors", False),  # the reverse: the later rest (33) minus the earlier cell (30)
    (MINORS, SUB.format(cols="COUNT(*) AS n", where="WHERE prs_Age >= 18"), "n", True),  # the rest by definition
    # NULL semantics: the rest of `hours >= 1` holds the rows without hours (20) and those with 0 (3)
    (SOME, SUB.format(cols="COUNT(*) AS n", where="WHERE hours_worked_week IS NULL"), "n", False),
    (SOME, SUB.format(cols="COUNT(*) AS n", where="WHERE hours_worked_week IS NULL OR hours_worked_week < 1"),
     "n", True),  # the rest by definition: released
    # a nullable column's rest, the rows without a value (20), inside a later subgroup of 23 (or aged 18)
    (WITH_HOURS, SUB.format(cols="COUNT(*) AS n, COUNT(*) FILTER (WHERE hours_worked_week IS NULL OR prs_Age = 18) "
                            "AS young", where=""), "young", False),
])
def test_the_rest_of_a_subgroup_is_compared_in_both_orders(tmp_path, first, second, column, released):
    """North holds 20 aged 10 without hours, 3 aged 18 with 0 hours, 30 aged 40 with 40 hours. The earlier
    (or later) release reveals a subgroup m beside COUNT(*) n, hence the rest of the cell n - m; a WHERE or
    subgroup of the other release that differs from that rest by the 3 is withheld, one that is the rest
    by definition is released."""
    a, b = _attack([first, second], tmp_path / "open", guard=False)
    assert b[column] is not None  # without the guard every value shows
    a, b = _attack([first, second], tmp_path / "guarded")
    assert a["n"] is not None
    assert (b[column] is not None) == released, (b, a)


def test_the_rest_of_a_subgroup_on_an_observers_complement(tmp_path):
    """Over police and NGO: on all rows the earlier rest (51, aged 40 or more) minus the later cell (30, aged
    40-76) is 21, but the police holds its own 20 aged 77 and reads off the NGO's one client aged 77: the
    rest is compared on the police's complement too, and the later North cell is withheld."""
    from redteam_data import block, cells, releases
    P, N = "police_victims", "ngo_clients"
    world = [block(P, 20, exp_Region="North", prs_Age=20), block(P, 10, exp_Region="North", prs_Age=50),
             block(P, 20, exp_Region="North", prs_Age=77),
             block(N, 36, exp_Region="North", prs_Age=[20] * 15 + [50] * 20 + [77], person_id=range(1000, 1036))]
    frm = f"{P} UNION ALL {N}"
    queries = [f"SELECT exp_Region, COUNT(*) AS n, COUNT(*) FILTER (WHERE prs_Age < 40) AS young FROM {frm} "
               "GROUP BY exp_Region;",
               f"SELECT exp_Region, COUNT(*) AS n FROM {frm} WHERE prs_Age >= 40 AND prs_Age < 77 GROUP BY exp_Region;"]
    first, second = [cells(p, t)[("North",)] for p, _, t in releases(queries, world, CAT, tmp_path / "g")]
    assert first == {"n": 86, "young": 35}
    assert second["n"] is None
    first, second = [cells(p, t)[("North",)] for p, _, t in releases(queries, world, CAT, tmp_path / "o", guard=False)]
    assert first["n"] - first["young"] - second["n"] - 20 == 1  # the attack the guard closes


def test_the_fallback_compares_the_new_subgroup_and_its_rest(tmp_path):
    """guard.rows (spec/disclosure.md 3.3): the later WHERE is not related over the public domain; the new
    COUNT(hours) (its rows with hours, and the rows without) is counted against the earlier WHERE row by row
    in an owner's `partials` step of its own, and withheld only when a difference holds fewer than k rows."""
    from redteam_data import block, cells, releases
    P = "police_victims"
    where = "debt_eur - prs_Age < 800"
    queries = [SUB.format(cols="COUNT(*) AS n", where=f"WHERE {where}"),
               SUB.format(cols="COUNT(*) AS n, COUNT(hours_worked_week) AS m",
                          where=f"WHERE {where} OR (hours_worked_week IS NULL AND minor_at_recruitment)")]

    def world(without: int):
        return [block(P, 30, exp_Region="North", debt_eur=100, hours_worked_week=40),
                block(P, without, exp_Region="North", debt_eur=100, hours_worked_week=None),
                block(P, 10, exp_Region="North", debt_eur=5000, hours_worked_week=None, minor_at_recruitment=True)]
    runs = releases(queries, world(10), CAT, tmp_path / "control")
    plan = runs[1][0]
    assert [e["mode"] for e in plan["guard"]] == ["rows"]
    family = [n for n in plan["nodes"] if n["op"] == "partials" and n["attrs"]["where"]["op"] == "and"
              and any(s["kind"] == "symdiff" for s in n["attrs"]["slots"])]
    assert len(family) == 2  # the rows with hours, and the rows without
    assert [cells(p, t)[("North",)] for p, _, t in runs] == [{"n": 40}, {"n": 50, "m": 30}]  # every difference >= k
    runs = releases(queries, world(1), CAT, tmp_path / "attack")  # 31 - 30 = the one row without hours
    assert [cells(p, t)[("North",)] for p, _, t in runs] == [{"n": 31}, {"n": 41, "m": None}]
