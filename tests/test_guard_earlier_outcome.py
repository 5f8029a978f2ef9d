"""An earlier release's own guard in "surely released" (spec/disclosure.md 3.2, 6.14), on the plaintext oracle.

The backward order of "a withheld cell comes back": W = by region and nationality WHERE stay_days < 30;
F = by region and nationality, whose North x NG the guard withholds against W (they differ by NG's long
stays); T = by region. T's North is covered by F's North cells; read as surely released by their cell
and observer rules alone, T's North was released, and T's North minus F's three released nationalities
is F's North x NG, minus W's the long stays. The earlier release's guard is now part of "surely
released" (compiler/plan/guard_cells.py `own_guard`), from its guard recorded in the ledger's
`guard_signature`.
"""
from __future__ import annotations

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.plan.guard import signature_of_plan

from conftest import CATALOG, assert_same_result, load_tables, run_mpc
from redteam_data import NATIONS, block, cells, compile_seq, q, releases, stays_by_nationality, write_world

STRICT_PATH = CATALOG.parent / "catalog_strict.toml"
STRICT = load_catalog(STRICT_PATH)
K = STRICT.datasets["shelter_stays"].policy.min_group_size
S = "shelter_stays"
W = "SELECT region, nationality, {c} FROM shelter_stays WHERE stay_days < 30 GROUP BY region, nationality;"
F = "SELECT region, nationality, {c} FROM shelter_stays GROUP BY region, nationality;"
T = "SELECT region, {c} FROM shelter_stays GROUP BY region;"
COUNT, SUM = "COUNT(*) AS n", "SUM(support_eur) AS s"


def run(texts: list[str], world, folder) -> list[dict]:
    return [cells(p, t) for p, _, t in releases(texts, world, STRICT, folder)]


def others(c: dict, col: str) -> float:
    return sum(c[("North", x)][col] for x in NATIONS[1:])


def test_the_backward_order_of_counts_is_closed(tmp_path):
    """F's North x NG differs from W's by NG's two long stays (< k) and is withheld; T's North, which
    would give it back (112 - 90 = 22, minus W's 20: the two), is withheld now."""
    w, f, t = run([W.format(c=COUNT), F.format(c=COUNT), T.format(c=COUNT)], stays_by_nationality([1000, 1000]),
                  tmp_path)
    assert f[("North", "NG")]["n"] is None and w[("North", "NG")]["n"] == 20 and others(f, "n") == 90
    assert t[("North",)]["n"] is None  # was 112: 112 - 90 - 20 = 2 < k


def test_the_backward_order_of_sums_is_closed(tmp_path):
    """The same with SUM(support_eur): F's North x NG sum (40040 of which one stay's 20000) minus W's
    (20000) is NG's long stays, 20040, dominated by one stay: withheld by guard.dominance. T's North sum
    would give it back (400040 - 360000 - 20000 = 20040): withheld now."""
    w, f, t = run([W.format(c=SUM), F.format(c=SUM), T.format(c=SUM)],
                  stays_by_nationality([20000, 10, 10, 10, 10]), tmp_path)
    assert f[("North", "NG")]["s"] is None and w[("North", "NG")]["s"] == 20000 and others(f, "s") == 360000
    assert t[("North",)]["s"] is None  # was 400040


def test_released_when_the_earlier_guard_passed(tmp_path):
    """NG's long stays are ten (>= k, not dominated): F releases every cell, and T's North, covered by
    F's released cells, is released as before."""
    for col, c, long_stays in (("n", COUNT, [1000] * 10), ("s", SUM, [1000] * 10)):
        w, f, t = run([W.format(c=c), F.format(c=c), T.format(c=c)], stays_by_nationality(long_stays),
                      tmp_path / col)
        assert all(v[col] is not None for key, v in f.items() if key[0] == "North"), f
        assert t[("North",)][col] == sum(f[("North", x)][col] for x in NATIONS)


def workflow_world() -> list:
    """Stays in every region, every nationality in each, enough for every cell (k = 5): no cell empty
    (an empty cell is never surely released, so a margin over it is withheld whatever the order)."""
    return [block(S, 12, region=r, nationality=n, stay_days=[10, 60], support_eur=[1000, 2000, 1500])
            for r in ("North", "East", "South", "West") for n in NATIONS]


def test_the_usual_workflow_still_releases(tmp_path):
    """A total, a breakdown, another breakdown, when no guard fires: every cell of each is released
    (the breakdown's guard against the total passed, and the third reads the breakdown's cells as
    surely released by recomputing that guard). Counts; sums release as stated in spec 3.2."""
    texts = ["SELECT region, {c} FROM shelter_stays GROUP BY region;",
             "SELECT region, nationality, {c} FROM shelter_stays GROUP BY region, nationality;",
             "SELECT nationality, {c} FROM shelter_stays GROUP BY nationality;"]
    total, breakdown, second = run([x.format(c=COUNT) for x in texts], workflow_world(), tmp_path)
    for rel in (total, breakdown, second):
        assert all(v["n"] is not None for v in rel.values()), rel
    assert second[("NG",)]["n"] == sum(breakdown[(r, "NG")]["n"] for r in ("North", "East", "South", "West"))


def test_the_signature_records_the_earlier_guard():
    """F's ledger signature names the releases its guard compared it with (W), without nesting further."""
    w, f = (r.plan for r in compile_seq([W.format(c=COUNT), F.format(c=COUNT)], STRICT))
    assert "guard" not in signature_of_plan(w)
    rec = signature_of_plan(f)["guard"]
    assert len(rec) == 1 and rec[0]["where"] == signature_of_plan(w)["where"]
    t = compile_seq([W.format(c=COUNT), F.format(c=COUNT), T.format(c=COUNT)], STRICT)[2].plan
    entry = next(e for e in t["guard"] if e["keys"] == signature_of_plan(f)["keys"] and e["where"] is None)
    assert entry["guarded"] == rec


def test_two_owners_and_their_complements(tmp_path):
    """The three releases over the NGO's and the police's stays (UNION ALL): F's guard against W ran on
    all rows and on each owner's complement, and is recomputed on each. The police has ten long stays
    per nationality; the NGO's two long NG stays (its complement, where the police holds its own rows)
    withhold F's North x NG, and T's North with it; with ten long stays everything is released."""
    union = "shelter_stays UNION ALL police_stays"
    texts = [x.replace("FROM shelter_stays", f"FROM {union}").format(c=COUNT) for x in (W, F, T)]
    police = [block("police_stays", 20, region="North", nationality=n, stay_days=[10, 60]) for n in NATIONS]
    for long_stays, withheld in ((2, True), (10, False)):
        w, f, t = run(texts, police + stays_by_nationality([1000] * long_stays), tmp_path / str(long_stays))
        assert (f[("North", "NG")]["n"] is None) == withheld
        assert (t[("North",)]["n"] is None) == withheld
        if not withheld:
            assert t[("North",)]["n"] == sum(f[("North", x)]["n"] for x in NATIONS)



def through_parties(texts: list[str], world, folder, cat_path=STRICT_PATH) -> list[dict]:
    """Each query through real parties, each party with its ledger (it rebuilds the guard, the earlier
    releases' recorded guards included, from its own ledger: the plan hash must match); every table
    equal to the oracle's. The released cells of each, in order."""
    cat = load_catalog(cat_path)
    data = write_world(folder, cat, world)
    sigs, out = [], []
    for i, text in enumerate(texts):
        plan = compile_source(q(text), f"q{i}", cat, earlier=list(sigs)).plan
        table = run_mpc(plan, data, catalog_path=cat_path, ledger_dir=folder / "ledgers")
        assert_same_result(plan, table, run_plan_plaintext(plan, load_tables(plan, cat, data)))
        sigs.append(signature_of_plan(plan))
        out.append(cells(plan, table))
    return out


@pytest.mark.mpc
def test_mpc_equals_the_oracle_in_the_backward_order(tmp_path):
    """W, F, T with sums and counts through real parties: F's North x NG sum withheld, T's North sum
    withheld, its count released."""
    c = "COUNT(*) AS n, SUM(support_eur) AS s"
    _, f, t = through_parties([W.format(c=c), F.format(c=c), T.format(c=c)],
                              stays_by_nationality([20000, 10, 10, 10, 10]), tmp_path)
    assert f[("North", "NG")]["s"] is None and t[("North",)]["s"] is None
    assert t[("North",)]["n"] == 115  # 80 short stays, NG's 5 and the others' 30 long ones


@pytest.mark.mpc
def test_mpc_equals_the_oracle_with_two_owners(tmp_path):
    """The two owners' releases of test_two_owners_and_their_complements through real parties: the
    recomputation on each owner's complement; T's North withheld."""
    texts = [x.replace("FROM shelter_stays", "FROM shelter_stays UNION ALL police_stays").format(c=COUNT)
             for x in (W, F, T)]
    police = [block("police_stays", 20, region="North", nationality=n, stay_days=[10, 60]) for n in NATIONS]
    t = through_parties(texts, police + stays_by_nationality([1000, 1000]), tmp_path)[2]
    assert t[("North",)]["n"] is None


@pytest.mark.mpc
def test_mpc_equals_the_oracle_in_the_usual_workflow(tmp_path):
    """A total, a breakdown and another breakdown with counts and sums through real parties: the third
    recomputes the breakdown's guard against the total (nothing fired), every cell released."""
    c = "COUNT(*) AS n, SUM(support_eur) AS s"
    texts = [f"SELECT region, {c} FROM shelter_stays GROUP BY region;",
             f"SELECT region, nationality, {c} FROM shelter_stays GROUP BY region, nationality;",
             f"SELECT nationality, {c} FROM shelter_stays GROUP BY nationality;"]
    for rel in through_parties(texts, workflow_world(), tmp_path):
        assert all(v is not None for cell in rel.values() for v in cell.values())


def value_releases() -> tuple[list, list[str]]:
    """The world and the three queries of the value's backward order (tests/corpus/catalog.toml): in the
    North, 24 younger persons per nationality (half with hours), 20 older per nationality but NG (half
    with hours), and NG's 10 older, two with hours."""
    p, nats = "police_victims", ["NG", "RO", "BG", "VN"]
    world = [block(p, 24, exp_Region="North", prs_Nationality=n, prs_Age=30, hours_worked_week=[None, 40])
             for n in nats] + [block(p, 20, exp_Region="North", prs_Nationality=n, prs_Age=60,
                                     hours_worked_week=[None, 40]) for n in nats[1:]] + \
        [block(p, 10, exp_Region="North", prs_Nationality="NG", prs_Age=60, hours_worked_week=[40, 40] + [None] * 8)]
    cols, where = "COUNT(*) AS n, COUNT(hours_worked_week) AS m", "WHERE prs_Nationality IN ('NG', 'RO', 'BG', 'VN')"
    texts = [f"SELECT exp_Region, prs_Nationality, {cols} FROM {p} {where} AND prs_Age < 50 "
             "GROUP BY exp_Region, prs_Nationality;",
             f"SELECT exp_Region, prs_Nationality, {cols} FROM {p} {where} GROUP BY exp_Region, prs_Nationality;",
             f"SELECT exp_Region, {cols} FROM {p} {where} GROUP BY exp_Region;"]
    return world, texts


def test_the_backward_order_of_a_value_is_closed(tmp_path):
    """COUNT(hours_worked_week) (a nullable column): NG's ten older persons differ W from F by ten rows
    (released) of which two have a value, so F withholds its North x NG value (guard on the rows with a
    value) and keeps the cell (the other nationalities' twenty older persons, ten with a value, pass).
    T's North value minus F's other nationalities' and W's North x NG would be those two: withheld
    now, and T's count of rows released."""
    world, texts = value_releases()
    w, f, t = (cells(plan, table) for plan, _, table in releases(texts, world, load_catalog(CATALOG), tmp_path))
    assert f[("North", "NG")] == {"n": 34, "m": None} and w[("North", "NG")]["m"] == 12
    assert sum(f[("North", x)]["m"] for x in ("RO", "BG", "VN")) == 66
    assert t[("North",)] == {"n": 166, "m": None}  # m was 80: 80 - 66 - 12 = 2 < k


@pytest.mark.mpc
def test_mpc_equals_the_oracle_for_a_value(tmp_path):
    """The value's backward order through real parties: T's North value withheld, its count released."""
    world, texts = value_releases()
    assert through_parties(texts, world, tmp_path, CATALOG)[2][("North",)] == {"n": 166, "m": None}


def test_the_earlier_closure_is_read_too(tmp_path):
    """F's guard withholds its North x NG against W (two older persons), and guard.closure takes F's
    other North cells with it (one component through the earlier total). A later query of the North's
    RO alone holds F's North x RO's rows by definition: read as surely released, it would be released
    and give back what F's closure withheld (with the total and the other nationalities, NG's cell).
    The recomputation reads the closure too: it is withheld."""
    p, nats = "police_victims", ["NG", "RO", "BG", "VN"]
    world = [block(p, 24, exp_Region="North", prs_Nationality=n, prs_Age=30) for n in nats] + \
        [block(p, 10, exp_Region="North", prs_Nationality=n, prs_Age=60) for n in nats[1:]] + \
        [block(p, 2, exp_Region="North", prs_Nationality="NG", prs_Age=60)]
    where = "WHERE prs_Nationality IN ('NG', 'RO', 'BG', 'VN')"
    texts = [f"SELECT exp_Region, COUNT(*) AS n FROM {p} {where} GROUP BY exp_Region;",
             f"SELECT exp_Region, prs_Nationality, COUNT(*) AS n FROM {p} {where} AND prs_Age < 50 "
             "GROUP BY exp_Region, prs_Nationality;",
             f"SELECT exp_Region, prs_Nationality, COUNT(*) AS n FROM {p} {where} GROUP BY exp_Region, prs_Nationality;",
             f"SELECT exp_Region, COUNT(*) AS n FROM {p} WHERE prs_Nationality = 'RO' GROUP BY exp_Region;"]
    total, w, f, t = (cells(plan, table) for plan, _, table in releases(texts, world, load_catalog(CATALOG), tmp_path))
    assert total[("North",)]["n"] == 128 and w[("North", "RO")]["n"] == 24
    assert all(f[("North", x)]["n"] is None for x in nats)  # NG by the guard, the others by its closure
    assert t[("North",)]["n"] is None  # was 34, F's North x RO
