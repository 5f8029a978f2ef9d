"""What is not protected: spec/disclosure.md section 6, one test per item.

Each test DEMONSTRATES the residual exactly as section 6 describes it, on the plaintext oracle: it
asserts that the leak happens. If a change closes one, its test fails and section 6 must be
updated (the list stays true). Worlds are built with tests/redteam_data.py; a sequence of queries
is compiled the way `iq compile --ledger` does, each against the releases before it.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plan.guard import signature_of_plan
from insightql.compiler.pipeline import compile_source

from conftest import CATALOG
from redteam_data import block, cells, q, releases

CAT = load_catalog(CATALOG)
K = CAT.datasets["police_victims"].policy.min_group_size
P, N = "police_victims", "ngo_clients"
REGIONS = ["North", "East", "South", "West"]


def by_region(where: str = "", cols: str = "COUNT(*) AS n", frm: str = P) -> str:
    return f"SELECT exp_Region, {cols} FROM {frm} {where} GROUP BY exp_Region;"


def run(queries: list[str], world, folder: Path, cat=CAT) -> list[dict]:
    """The released cells of each query ({key: {column: value or None}}), in order."""
    return [cells(plan, table) for plan, _, table in releases(queries, world, cat, folder)]


def test_three_overlapping_releases_solve_a_small_group(tmp_path):
    """residual, spec/disclosure.md 6.1: A = BG u NG, B = NG u RO, C = BG u RO are pairwise not
    nested, so the guard compares no two of them as a difference; all three are released, and
    (A - B + C) / 2 is the 3 BG nationals."""
    world = [block(P, 3, exp_Region="North", prs_Nationality="BG"),
             block(P, 30, exp_Region="North", prs_Nationality="NG"),
             block(P, 30, exp_Region="North", prs_Nationality="RO")]
    a, b, c = run([by_region(f"WHERE prs_Nationality IN ({x})") for x in ("'BG', 'NG'", "'NG', 'RO'", "'BG', 'RO'")],
                  world, tmp_path)
    a, b, c = a[("North",)]["n"], b[("North",)]["n"], c[("North",)]["n"]
    assert (a, b, c) == (33, 60, 33)
    assert (a - b + c) / 2 == 3 < K


def test_net_difference_bounds_a_group_from_below(tmp_path):
    """residual, spec/disclosure.md 6.1: a released North of 30 above a later total of 29 over North and
    the suppressed East, without the persons aged 77: at least one North row is aged 77 (counts are
    never negative). A bound, never a size: one aged 77 and an empty East, or two aged 77 and one East
    row, look the same."""
    queries = [by_region(), "SELECT COUNT(*) AS n FROM police_victims WHERE exp_Region IN ('North', 'East') "
                            "AND NOT prs_Age = 77;"]
    views = []
    for aged_77, east in ((1, 0), (2, 1)):
        world = [block(P, 30, exp_Region="North", prs_Age=[77] * aged_77 + [30] * (30 - aged_77)),
                 block(P, east, exp_Region="East", prs_Age=30), block(P, 30, exp_Region="South")]
        regions, total = run(queries, world, tmp_path / str(aged_77))
        assert regions[("North",)]["n"] == 30 and regions[("East",)]["n"] is None and total[()]["n"] == 29
        assert regions[("North",)]["n"] - total[()]["n"] == 1 <= aged_77  # the lower bound the receiver gets
        views.append((regions, total))
    assert views[0] == views[1]


def test_withheld_value_says_a_small_subgroup_exists(tmp_path):
    """residual, spec/disclosure.md 6.2: the two-sided own-count rule releases COUNT(hours) when no row
    lacks a value and withholds it when 1..k-1 do, so the withheld mark tells the receiver that some
    rows of this released cell (>= k rows) lack a value; never how many."""
    query = [by_region(cols="COUNT(*) AS n, COUNT(hours_worked_week) AS m")]
    none_missing = run(query, [block(P, 12, exp_Region="North", hours_worked_week=40)], tmp_path / "a")[0]
    one_missing = run(query, [block(P, 12, exp_Region="North", hours_worked_week=[None] + [40] * 11)],
                      tmp_path / "b")[0]
    three_missing = run(query, [block(P, 12, exp_Region="North", hours_worked_week=[None] * 3 + [40] * 9)],
                        tmp_path / "c")[0]
    assert none_missing[("North",)] == {"n": 12, "m": 12}
    assert one_missing[("North",)] == {"n": 12, "m": None}  # the cell is released, its value withheld
    assert one_missing == three_missing  # the flag says "some", never how many


def test_own_rows_narrow_a_rounded_total(tmp_path):
    """residual, spec/disclosure.md 6.3: counts rounded to 5 (the NGO's policy here), k = 10. The police
    knows its own 23 North rows. The union shows 30 (the total is 30..34); released means the NGO's
    complement passed >= k, so the total is at least 23 + 10 = 33: the police narrows 30..34 to 33..34,
    inside the bucket and no finer."""
    path = tmp_path / "rounded.toml"
    path.write_text(CATALOG.read_text(encoding="utf-8").replace("round_counts_to = 1\n", "round_counts_to = 5\n"),
                    encoding="utf-8")
    cat = load_catalog(path)
    assert cat.datasets[N].policy.round_counts_to == 5
    own = 23
    shown = {}
    for ngo in (8, 10, 11):
        world = [block(P, own, exp_Region="North"), block(N, ngo, exp_Region="North")]
        shown[ngo] = run([by_region(frm=f"{P} UNION ALL {N}")], world, tmp_path / str(ngo), cat)[0][("North",)]["n"]
    assert shown == {8: None, 10: 30, 11: 30}
    bucket = range(30, 35)
    consistent = [t for t in bucket if t - own >= K]  # what the police concludes from "released, 30"
    assert consistent == [33, 34] and own + 10 in consistent and own + 11 in consistent
    assert len(consistent) < len(bucket) and set(consistent) <= set(bucket)


def test_same_query_after_one_row_added(tmp_path):
    """residual, spec/disclosure.md 6.4: the same query is not compared with its own earlier release
    (same plan, no guard entry); after one row is added, the cell differs by that one row."""
    text = q(by_region())
    first = compile_source(text, "q.iq", CAT).plan
    again = compile_source(text, "q.iq", CAT, earlier=[signature_of_plan(first)]).plan
    assert "guard" not in again and again["hash"] == first["hash"]
    before = run([by_region()], [block(P, 30, exp_Region="North")], tmp_path / "a")[0]
    after = run([by_region()], [block(P, 30, exp_Region="North"), block(P, 1, exp_Region="North")], tmp_path / "b")[0]
    assert after[("North",)]["n"] - before[("North",)]["n"] == 1


def test_min_is_one_persons_value(tmp_path):
    """residual, spec/disclosure.md 6.5: MIN(prs_Age) (listed by the owner) in a released cell of 12
    persons is the youngest person's age; change that one person's age and the release changes."""
    query = [by_region(cols="COUNT(*) AS n, MIN(prs_Age) AS youngest")]
    for age in (16, 17):
        world = [block(P, 1, exp_Region="North", prs_Age=age), block(P, 11, exp_Region="North", prs_Age=range(30, 41))]
        got = run(query, world, tmp_path / str(age))[0][("North",)]
        assert got == {"n": 12, "youngest": age}


def test_padding_moves_the_median_to_another_rank(tmp_path):
    """residual, spec/disclosure.md 6.5: the police's ten own rows above every other value (120 hours)
    make the median of twenty the largest value of the NGO's ten clients: MAX over a group of k.
    Changing that one client's hours changes the release."""
    query = [by_region(frm=f"{P} UNION ALL {N}", cols="COUNT(*) AS n, MEDIAN(hours_worked_week) AS med")]
    for largest in (70, 75):
        world = [block(P, 10, exp_Region="North", hours_worked_week=120),
                 block(N, 10, exp_Region="North", hours_worked_week=[31, 35, 38, 40, 42, 45, 50, 55, 60, largest])]
        got = run(query, world, tmp_path / str(largest))[0][("North",)]
        assert got == {"n": 20, "med": largest}


def test_a_correct_guess_is_not_guarded(tmp_path):
    """residual, spec/disclosure.md 6.6: every person recruited as a minor happens to be under 30 today.
    The definitions do not nest the two queries (prs_Age < 30 and minor_at_recruitment), so the guard
    does not relate them; an analyst who guesses the containment subtracts: 40 - 39 = 1 person under 30
    who was not a minor."""
    world = [block(P, 39, exp_Region="North", prs_Age=range(15, 29), minor_at_recruitment=True),
             block(P, 1, exp_Region="North", prs_Age=25, minor_at_recruitment=False),
             block(P, 30, exp_Region="North", prs_Age=40)]
    plans_and_tables = releases([by_region("WHERE prs_Age < 30"), by_region("WHERE minor_at_recruitment = true")],
                                world, CAT, tmp_path)
    (_, _, t1), (p2, _, t2) = plans_and_tables
    assert [e["mode"] for e in p2["guard"]] == ["cells"]  # compared, yet not related as a difference
    under_30, minors = cells(p2, t1)[("North",)]["n"], cells(p2, t2)[("North",)]["n"]
    assert (under_30, minors) == (40, 39)
    assert 1 <= under_30 - minors < K


def test_difference_of_k_records_of_one_person(tmp_path):
    """residual, spec/disclosure.md 6.7: the guard counts rows. Person 7 has 10 interviews of type
    Other in the North, nobody else has one: the difference of the two releases is 10 rows (= k,
    passes), all of them one person's records. The direct query suppresses that cell (1 person)."""
    world = [block(P, 30, exp_Region="North"), block(P, 10, exp_Region="North", person_id=7, exp_Type="Other")]
    before, after = run([by_region(), by_region("WHERE exp_Type <> 'Other'")], world, tmp_path / "a")
    assert before[("North",)]["n"] - after[("North",)]["n"] == K
    direct = run(["SELECT exp_Region, exp_Type, COUNT(*) AS n FROM police_victims GROUP BY exp_Region, exp_Type;"],
                 world, tmp_path / "b")[0]
    assert direct[("North", "Other")]["n"] is None  # one person: suppressed when asked for directly


def test_cell_where_everyone_shares_a_value(tmp_path):
    """residual, spec/disclosure.md 6.8: all 12 persons of the North cell are 16: a mean of 16 and a
    variance of 0 say so (attribute disclosure). Which cells are released and which values withheld
    is revealed to the receivers: the leakage report's flags."""
    world = [block(P, 12, exp_Region="North", prs_Age=16), block(P, 12, exp_Region="East", prs_Age=range(20, 32))]
    text = by_region(cols="COUNT(*) AS n, AVG(prs_Age) AS mean_age, VAR(prs_Age) AS var_age")
    (plan, _, table), = releases([text], world, CAT, tmp_path)
    north = cells(plan, table)[("North",)]
    assert north == {"n": 12, "mean_age": 16.0, "var_age": 0.0}  # every one of the 12 is aged 16
    flags = [i for i in plan["leakage"] if i["item"] in ("suppression_flag", "output_flag")]
    assert flags and all(i["to"] == plan["receivers"] for i in flags)


def test_fast_match_pattern_gives_the_suppressed_total(tmp_path):
    """residual, spec/disclosure.md 6.10: with `linkage = "fast"` (tests/corpus/catalog_fast.toml) the
    computing parties learn the match pattern: here 23 keys occur twice, the persons known to both.
    The released North holds 20 of them; East (3 persons, suppressed) holds the other 23 - 20 = 3.
    The pattern is computed as the parties get it: the equality pattern of the keys each owner shares
    (runtime/secure/linkage_fast.py `owner_columns`, `Runs`), tags being a permutation of keys."""
    from insightql.compiler.plaintext.linkage_local import link_rows
    from insightql.runtime.secure.linkage_fast import Runs, owner_columns

    cat = load_catalog(CATALOG.parent / "catalog_fast.toml")
    world = [block(P, 20, exp_Region="North", person_id=range(1, 21)),
             block(P, 20, exp_Region="North", person_id=range(100, 120)),
             block(N, 20, exp_Region="North", person_id=range(1, 21)),
             block(N, 20, exp_Region="North", person_id=range(200, 220)),
             block(P, 3, exp_Region="East", person_id=range(50, 53)),
             block(N, 3, exp_Region="East", person_id=range(50, 53))]
    text = by_region(frm=f"{P} p JOIN {N} n ON p.person_id = n.person_id").replace("exp_Region", "p.exp_Region")
    (plan, loaded, table), = releases([text], world, cat, tmp_path)
    link = next(n for n in plan["nodes"] if n["op"] == "link_join")
    assert link["attrs"]["algorithm"] == "fast" and any(i["item"] == "match_pattern" for i in plan["leakage"])
    nodes = {n["id"]: n for n in plan["nodes"]}
    keys = []
    for vector, share in enumerate(link["inputs"]):
        rows = nodes[nodes[share]["inputs"][0]]["attrs"]
        packed = link_rows(rows, *loaded[rows["dataset"]])
        keys += list(owner_columns(link["attrs"], vector, packed)[:, 0])
    in_both = Runs(keys).histogram()[2]
    got = cells(plan, table)
    assert in_both == 23 and got[("North",)]["n"] == 20 and got[("East",)]["n"] is None
    assert 1 <= in_both - got[("North",)]["n"] < K  # the suppressed cells' total


def test_join_against_an_earlier_count_of_one_side(tmp_path):
    """residual, spec/disclosure.md 6.11: police by region, then police joined with the NGO by
    police region. The guard does not compare a JOIN with a count over one of its datasets; the
    difference is the police rows without an NGO match, which only linkage.unshared keeps >= k."""
    join = ("SELECT p.exp_Region, COUNT(*) AS n FROM police_victims p JOIN ngo_clients c "
            "ON p.person_id = c.person_id GROUP BY p.exp_Region;")
    world = [block(P, 45, exp_Region="North", person_id=range(1, 46)),
             block(N, 30, exp_Region="North", person_id=range(1, 31)),
             block(N, 20, exp_Region="North", person_id=range(500, 520))]
    before, after = run([by_region(), join], world, tmp_path)
    second = compile_source(q(join), "join.iq", CAT, earlier=[signature_of_plan(
        compile_source(q(by_region()), "a.iq", CAT).plan)]).plan
    assert "guard" not in second  # not compared
    unmatched = before[("North",)]["n"] - after[("North",)]["n"]
    assert unmatched == 15 >= K  # derived, and >= k only because linkage.unshared requires it


def test_value_of_one_persons_records_over_a_join(tmp_path):
    """residual, spec/disclosure.md 6.12: an aggregate of a nullable column over a JOIN whose other side
    repeats keys is refused (IQ406: its rows with a value cannot be counted in persons); a unique
    side's column over an inner JOIN is a mean weighted by each row's matches, over >= k persons."""
    join = ("SELECT p.exp_Region, COUNT(*) AS n, AVG({col}) AS h FROM police_victims p "
            "JOIN ngo_clients c ON p.person_id = c.person_id GROUP BY p.exp_Region;")
    res = compile_source(q(join.format(col="p.hours_worked_week")), "j.iq", CAT)
    assert res.plan is None and "IQ406" in {d.code for d in res.diagnostics}
    world = [block(P, 10, exp_Region="North", person_id=[99] * 10),
             block(P, 10, exp_Region="North", person_id=range(1, 11)),
             block(N, 1, exp_Region="North", person_id=[99], prs_Age=70),
             block(N, 10, exp_Region="North", person_id=range(1, 11), prs_Age=20),
             block(P, 15, exp_Region="North", person_id=range(200, 215)),  # unmatched (linkage.unshared)
             block(N, 15, exp_Region="North", person_id=range(300, 315))]
    (cells_,) = run([join.format(col="c.prs_Age")], world, tmp_path)
    assert cells_[("North",)] == {"n": 20, "h": 45}  # person 99's 70 weighs ten times: (700 + 200) / 20


def test_every_residual_of_section_6_has_its_test():
    """Section 6 names a test per item; each is in this module (and nothing here is unnamed there)."""
    spec = (CATALOG.parents[2] / "spec" / "disclosure.md").read_text(encoding="utf-8")
    section = spec[spec.index("## 6. What is not protected"):]
    named = set(re.findall(r"`(test_\w+)`", section))
    here = {n for n in dir(sys.modules[__name__]) if n.startswith("test_")}
    here.discard("test_every_residual_of_section_6_has_its_test")
    assert named == here, (sorted(named - here), sorted(here - named))
