"""Red team, session 8: short accepted queries, mostly sequences of two or three releases, on the
plaintext oracle (tests/redteam_data.py compiles each against the releases before it, as `iq
compile --ledger` does).

Each leak found is a test that asserts the leak happens (like tests/test_residuals.py): it fails
when the leak closes, and then becomes a test of the protection. Attacks that held are ordinary
tests of the protection.

Found (each asserts the leak; all three need three releases and none is the residual 6.1 names):

* a_crossing_pair_pinned_by_a_third_release: the guard compares releases two at a time, and two
  releases whose cells cross (A = x u y, B = y u z) give only a net count A - B = x - z, which 3.2
  does not test (6.1: a bound, never a size). A third release of z alone, nested in B (B - z = y,
  at least k rows, passes), pins it: x = A - (B - C). Three short accepted queries, any order.
  6.1's residual has A, B and C pairwise not nested; here B and C nest. The same for sums under a
  dominance rule: a dominated sum of 3 stays comes back, with its count.
* a_total_split_by_two_releases_gives_the_suppressed_cells: a total, the total of one type, the
  other types by region: total - type - released regions = the suppressed regions. Each pair
  passes (the guard compares the total with each release, never with their sum: complementary
  suppression across two releases); every cell involved nests. Any order. Closed by the guard's
  triple tests (compiler/plan/guard_split.py).
* a_withheld_subgroup_comes_back_from_another_release: 6.1's third paragraph (closed for cells by
  guard.closure, 291dc9b) with a FILTER subgroup in place of the third release's cell, and a WHERE
  in place of the first release's total: the guard withholds the subgroup (it differs from the
  second release's cell by 2), and guard.closure withholds the values of its component but keeps
  the cells (3.2: "the cells stay"); the released cell minus the first release is the subgroup.
  In the orders where the FILTER comes last. The same with COUNT(x) (a_withheld_count_of_a_column_
  comes_back_from_another_release), also in an order where the rows without a value come last.

Held (ordinary tests): two releases whose cells differ by one person through CASE, arithmetic,
least/greatest/abs, a decimal literal finer than the scale, coalesce, age bands and a NULL bucket;
an owner's own dataset in a UNION ALL across releases; distinct persons after rows. Not written as
tests, held on the oracle: a FILTER or COUNT(x) whose rest crosses an earlier WHERE (a net count,
6.1), year/quarter/month against date ranges (a net count bound by suppressed years), COUNT(DISTINCT)
after COUNT(*) in both orders.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog

from conftest import CATALOG
from redteam_data import block, cells, releases

CAT = load_catalog(CATALOG)
STRICT = load_catalog(CATALOG.parent / "catalog_strict.toml")
K = CAT.datasets["police_victims"].policy.min_group_size
P, N, STAYS = "police_victims", "ngo_clients", "shelter_stays"


def run(queries: list[str], world, folder: Path, cat=CAT) -> list[dict]:
    """The released cells of each query ({key: {column: value or None}}), in order."""
    return [cells(plan, table) for plan, _, table in releases(queries, world, cat, folder)]


def by_region(where: str = "", cols: str = "COUNT(*) AS n", frm: str = P, key: str = "exp_Region") -> str:
    return f"SELECT {key}, {cols} FROM {frm} {where} GROUP BY {key};"


# -- three releases: a crossing pair, pinned by a third ------------------------------------------
TYPES3 = ["SexualExploitation", "ForcedLabour", "Other"]
CROSSING = [by_region("WHERE exp_Type IN ('SexualExploitation', 'ForcedLabour')"),  # A = x u y
            by_region("WHERE exp_Type IN ('ForcedLabour', 'Other')"),  # B = y u z, crosses A
            by_region("WHERE exp_Type = 'Other'")]  # C = z, inside B: B - C = y >= k


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_crossing_pair_pinned_by_a_third_release(order, tmp_path):
    """LEAK: North holds 3 sexual exploitation victims, 30 forced labour and 30 other. A (33) and B
    (60) cross; C (30) lies inside B. Every pair the guard compares passes (A and C are disjoint,
    B - C = 30), and every order releases all three: A - (B - C) = 3, the suppressed cell of
    GROUP BY exp_Type."""
    world = [block(P, n, exp_Region="North", exp_Type=t) for n, t in zip((3, 30, 30), TYPES3)]
    got = run([CROSSING[i] for i in order], world, tmp_path)
    a, b, c = (got[order.index(i)][("North",)]["n"] for i in range(3))
    assert (a, b, c) == (33, 60, 30)
    assert a - (b - c) == 3 < K


def test_the_crossing_pair_control(tmp_path):
    """Control: with 12 sexual exploitation victims the same three releases give 12 >= k."""
    world = [block(P, n, exp_Region="North", exp_Type=t) for n, t in zip((12, 30, 30), TYPES3)]
    got = run(CROSSING, world, tmp_path)
    assert [g[("North",)]["n"] for g in got] == [42, 60, 30]


def test_a_crossing_pair_pinned_by_a_third_release_of_sums(tmp_path):
    """LEAK, with sums under a dominance rule (catalog_strict.toml: k = 5, rule (1, 60)). North: one
    stay of 150 days with 20000 EUR, two of 120 days with 10 each, 20 of 50 days and 20 of 10 days
    with 1000 each. Stays >= 30 days (23, 40020 EUR: one stay is 50 %), stays < 100 days, stays < 30
    days. Long stays = 23 - (40 - 20) = 3 rows, below k, and their sum 40020 - (40000 - 20000) = 20020,
    of which one stay holds 99.9 %, both of which the rules withhold when asked as a cell."""
    world = [block(STAYS, 1, region="North", stay_days=150, support_eur=20000),
             block(STAYS, 2, region="North", stay_days=120, support_eur=10),
             block(STAYS, 20, region="North", stay_days=50, support_eur=1000),
             block(STAYS, 20, region="North", stay_days=10, support_eur=1000)]
    cols = "COUNT(*) AS n, SUM(support_eur) AS eur"
    queries = [by_region(w, cols, STAYS, "region") for w in
               ("WHERE stay_days >= 30", "WHERE stay_days < 100", "WHERE stay_days < 30")]
    for order in ((0, 1, 2), (2, 1, 0)):
        got = run([queries[i] for i in order], world, tmp_path / "".join(map(str, order)), STRICT)
        a, b, c = (got[order.index(i)][("North",)] for i in range(3))
        assert a["n"] - (b["n"] - c["n"]) == 3 < STRICT.datasets[STAYS].policy.min_group_size
        assert a["eur"] - (b["eur"] - c["eur"]) == 20020
        assert 20000 / 20020 > 0.6  # one stay dominates the derived sum
    alone = run([by_region("WHERE stay_days >= 100", cols, STAYS, "region")], world, tmp_path / "alone", STRICT)
    assert alone[0][("North",)] == {"n": None, "eur": None}  # what the rules say of the same group as a cell


# -- a subgroup the guard withholds comes back from another release -------------------------------
TYPES5 = ["SexualExploitation", "ForcedLabour", "ForcedCriminality", "DomesticServitude", "Other"]
WITHHELD_SUBGROUP = [by_region("WHERE exp_Type <> 'SexualExploitation'"),
                     by_region("WHERE hours_worked_week < 30", key="exp_Region, exp_Type"),
                     by_region(cols="COUNT(*) AS n, COUNT(*) FILTER (WHERE exp_Type = 'SexualExploitation') AS se")]


def withheld_subgroup_world(se_long: int) -> list:
    """North: every type 20 short stays (10 hours a week); `se_long` long (60 hours) of sexual
    exploitation, ten of every other type."""
    return [*(block(P, 20, exp_Region="North", exp_Type=t, hours_worked_week=10) for t in TYPES5),
            block(P, se_long, exp_Region="North", exp_Type=TYPES5[0], hours_worked_week=60),
            *(block(P, 10, exp_Region="North", exp_Type=t, hours_worked_week=60) for t in TYPES5[1:])]


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 0, 2)])
def test_a_withheld_subgroup_no_longer_comes_back_from_another_release(order, tmp_path):
    """CLOSED (was a leak, 6.1's third paragraph with a subgroup in place of the third release's cell):
    the North without sexual exploitation (120), the North by type with fewer than 30 hours (sexual
    exploitation 20), then the North with a FILTER on sexual exploitation. The third's subgroup (22)
    differs from the second's cell by 2 and is withheld; its rest (120) is the first release's cell
    by definition, so the cell (142) gave the subgroup back (142 - 120 - 20 = 2). A subgroup whose rest
    (or a rest whose subgroup) holds an earlier cell's rows by definition is now tested with the cell
    (guard.py `_derived_family_oks`): the cell is withheld too."""
    got = run([WITHHELD_SUBGROUP[i] for i in order], withheld_subgroup_world(2), tmp_path)
    third = got[order.index(2)]
    assert third.get(("North",), {"n": None, "se": None}) == {"n": None, "se": None}


def test_a_withheld_subgroup_control(tmp_path):
    """Control: with 12 long stays the subgroup is released and the difference is 12 >= k."""
    got = run(WITHHELD_SUBGROUP, withheld_subgroup_world(12), tmp_path)
    assert got[2][("North",)] == {"n": 152, "se": 32} and got[1][("North", "SexualExploitation")]["n"] == 20


WITHHELD_COUNT = [by_region("WHERE hours_worked_week IS NULL"), by_region("WHERE hours_worked_week < 30"),
                  by_region(cols="COUNT(*) AS n, COUNT(hours_worked_week) AS h")]


def _withheld_count_world() -> list:
    return [block(P, 100, exp_Region="North", hours_worked_week=10),
            block(P, 2, exp_Region="North", hours_worked_week=60),
            block(P, 40, exp_Region="North", hours_worked_week=None)]


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 0, 2)])
def test_a_withheld_count_of_a_column_no_longer_comes_back(order, tmp_path):
    """CLOSED (was a leak): North holds 100 rows with 10 hours, 2 with 60 and 40 without. The rows
    without hours (40), the rows under 30 hours (100), then COUNT(*) and COUNT(hours): the guard
    withholds COUNT(hours) (102, 2 from the second release), and the cell's 142 gave it back as
    142 - 40 - 100 = 2. The rest of COUNT(hours) is the first release's cell by definition, so the
    cell is now withheld with it."""
    got = run([WITHHELD_COUNT[i] for i in order], _withheld_count_world(), tmp_path)
    both = got[order.index(2)].get(("North",), {"n": None, "h": None})
    assert both == {"n": None, "h": None}


def test_a_withheld_count_of_a_column_no_longer_comes_back_when_its_rest_comes_last(tmp_path):
    """CLOSED (was a leak): the same releases with the rows without hours last (1, 2, 0). The third
    query's cell is the rest of the second's withheld COUNT(hours) by definition, and 142 - 40 - 100
    was 2. A new family that holds an earlier family's rows by definition is released where that family
    surely was, and withheld where it possibly was but not surely (guard_cells.CellChecks.with_twin,
    reading the earlier release's recomputed guard); a control: after a release whose COUNT(hours) was
    released, the same third query is released (nothing new)."""
    order = (1, 2, 0)
    got = run([WITHHELD_COUNT[i] for i in order], _withheld_count_world(), tmp_path / "leak")
    assert got[1][("North",)] == {"n": 142, "h": None} and got[2][("North",)] == {"n": None}
    world = [block(P, 100, exp_Region="North", hours_worked_week=10),
             block(P, 20, exp_Region="North", hours_worked_week=60),
             block(P, 40, exp_Region="North", hours_worked_week=None)]
    got = run([WITHHELD_COUNT[i] for i in order], world, tmp_path / "control")
    assert got[1][("North",)] == {"n": 160, "h": 120} and got[2][("North",)] == {"n": 40}


# -- three releases: a cell split by two others ----------------------------------------------------
SPLIT = ["SELECT COUNT(*) AS n FROM police_victims;",
         "SELECT COUNT(*) AS n FROM police_victims WHERE exp_Type = 'SexualExploitation';",
         by_region("WHERE exp_Type <> 'SexualExploitation'")]


def split_world(east: int) -> list:
    return [block(P, 30, exp_Region="North", exp_Type="SexualExploitation"),
            block(P, 40, exp_Region="North", exp_Type="Other"), block(P, east, exp_Region="East", exp_Type="Other")]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_total_split_by_two_releases_no_longer_gives_the_suppressed_cells(order, tmp_path):
    """Closed (was a leak): the total (73), the total of sexual exploitation (30), the other types by
    region (North 40, East 3 suppressed). Each pair passes, but together 73 - 30 - 40 = 3, the
    suppressed East. The guard's triple tests (guard_split.py, spec/disclosure.md 3.2) compare the
    new query with two earlier releases at once, so whichever comes last is withheld: the total
    minus the two others is no longer known. Any order."""
    got = run([SPLIT[i] for i in order], split_world(3), tmp_path)
    total, sexual, other = (got[order.index(i)] for i in range(3))
    assert other[("East",)]["n"] is None  # suppressed: 3 rows
    assert None in (total[()]["n"], sexual[()]["n"], other[("North",)]["n"])


def test_a_total_split_by_two_releases_control(tmp_path):
    """Control: with 12 East victims the East is released and the arithmetic only repeats it. South
    and West hold 15 each: were they empty (suppressed), total - SE - North - East = 0 would say so,
    and the triple tests withhold that by the zero rule (as the pairwise ones do for total, by region)."""
    world = split_world(12) + [block(P, 15, exp_Region=r, exp_Type="Other") for r in ("South", "West")]
    got = run(SPLIT, world, tmp_path)
    other = got[2]
    assert other[("East",)]["n"] == 12
    assert got[0][()]["n"] - got[1][()]["n"] - sum(other[(r,)]["n"] for r in ("North", "South", "West")) == 12


# -- held: two releases that differ by one person, through functions the guard must read -------------
ONE_AGED_17 = [block(P, 30, exp_Region="North", prs_Age=10, debt_eur=50, hours_worked_week=None),
               block(P, 1, exp_Region="North", prs_Age=17, debt_eur=100, hours_worked_week=40),
               block(P, 30, exp_Region="North", prs_Age=40, debt_eur=200, hours_worked_week=60)]
NORTH = ("North",)
PAIRS = {  # two cells, nested by definition, that differ by the one person aged 17 (debt 100, 40 hours)
    "case": ("SELECT CASE WHEN prs_Age < 18 THEN 'minor' ELSE 'adult' END AS g, COUNT(*) AS n "
             "FROM police_victims GROUP BY g;", ("minor",),
             "SELECT COUNT(*) AS n FROM police_victims WHERE prs_Age < 17;", ()),
    "arithmetic": (by_region("WHERE prs_Age + 1 < 19"), NORTH, by_region("WHERE prs_Age * 2 < 34"), NORTH),
    "least": (by_region("WHERE least(prs_Age, 30) < 18"), NORTH, by_region("WHERE prs_Age <= 16"), NORTH),
    "greatest": (by_region("WHERE greatest(prs_Age, 15) >= 17"), NORTH, by_region("WHERE prs_Age > 17"), NORTH),
    "abs": (by_region("WHERE abs(prs_Age - 20) > 2"), NORTH, by_region("WHERE prs_Age < 17 OR prs_Age > 22"), NORTH),
    "decimal": (by_region("WHERE debt_eur < 100.005"), NORTH, by_region("WHERE debt_eur < 99.995"), NORTH),
    "coalesce": (by_region("WHERE coalesce(hours_worked_week, 0) < 50"), NORTH,
                 by_region("WHERE hours_worked_week IS NULL"), NORTH),
    "age_band": ("SELECT age_band(prs_Age) AS b, COUNT(*) AS n FROM police_victims GROUP BY b;", ("<18",),
                 by_region("WHERE prs_Age < 17"), NORTH),
    "null_bucket": ("SELECT bucket(hours_worked_week, [50]) AS b, COUNT(*) AS n FROM police_victims GROUP BY b;", (None,),
                    "SELECT COUNT(*) AS n FROM police_victims WHERE hours_worked_week IS NULL OR hours_worked_week = 40;",
                    ()),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_two_releases_through_functions_differ_by_zero_or_k(name, tmp_path):
    """Held: CASE, arithmetic, least/greatest/abs, a literal finer than the decimal's scale, coalesce
    over NULL, age bands, a NULL bucket: in both orders, of two cells nested by definition that
    differ by one person, at most one is released (the guard relates them over the public domain,
    3.1); without the ledger both are (31 and 30, or 61 and 60)."""
    first, key_a, second, key_b = PAIRS[name]
    for guard in (True, False):
        for order in ((first, second), (second, first)):
            got = [cells(plan, table) for plan, _, table in
                   releases(list(order), ONE_AGED_17, CAT, tmp_path / f"{guard}{order == (first, second)}", guard)]
            a, b = (got[0], got[1]) if order == (first, second) else (got[1], got[0])
            both = a[key_a]["n"] is not None and b[key_b]["n"] is not None
            assert both != guard and (not both or abs(a[key_a]["n"] - b[key_b]["n"]) == 1), (order, got)


def test_own_dataset_in_a_union_across_releases(tmp_path):
    """Held: the police (a receiver) asks the NGO's clients by region, then police UNION ALL NGO
    without the persons aged 77: the difference minus its own rows would be the one NGO client aged
    77; the guard tests the police's complement (3.2) and suppresses, in both orders."""
    world = [block(N, 20, exp_Region="North"), block(N, 1, exp_Region="North", prs_Age=77),
             block(P, 30, exp_Region="North")]
    queries = [by_region(frm=N), by_region("WHERE NOT prs_Age = 77", frm=f"{P} UNION ALL {N}")]
    for order in ((0, 1), (1, 0)):
        got = run([queries[i] for i in order], world, tmp_path / "".join(map(str, order)))
        assert got[0][("North",)]["n"] is not None and got[1][("North",)]["n"] is None


def test_distinct_persons_after_rows(tmp_path):
    """Held: COUNT(*) by region, then COUNT(DISTINCT person_id) by region: rows minus persons would be
    6 repeat records; counts.pair withholds the distinct count though its query shows no COUNT(*)."""
    world = [block(P, 10, exp_Region="North", person_id=lambda i: 500 + i),
             block(P, 9, exp_Region="North", person_id=lambda i: 500 + i % 3), block(P, 12, exp_Region="East")]
    got = run([by_region(), by_region(cols="COUNT(DISTINCT person_id) AS d")], world, tmp_path)
    assert got[0][("North",)]["n"] == 19 and got[1][("North",)]["d"] is None and got[1][("East",)]["d"] == 12
