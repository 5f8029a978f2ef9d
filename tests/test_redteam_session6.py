"""Red team, session 6: subgroup counts (spec/disclosure.md 2.13) combined with each other and with
WHERE across two releases, and other recent features, on the plaintext oracle.

Each attack is run by the observer of spec/disclosure.md 1.1 (a receiver that may own data, with
the ledger of earlier releases): a small world (tests/redteam_data.py), the queries it asks in
order (each compiled against the earlier ones, as `iq compile --ledger` does), and `derive`: what
it computes from the released tables and its own rows. An attack that works today is a strict
xfail whose test asserts the protection; attacks that failed (the protection held) are ordinary
tests, with a control where the honest form of the query must still release.

Found (strict xfail):

* three_way_partition_*: two subgroup counts of one cell (COUNT(*) FILTER, SUM(CASE), AVG(b))
  besides COUNT(*) split the cell into three parts; filter.rows tests each subgroup against the
  rest of the cell and counts.pair tests the two subgroups against each other, but nothing tests
  the third part, n - m1 - m2, which is read off exactly (one person aged 77; the one row without
  hours). Single release. spec 2.13's argument ("the subgroup and its complement are each a cell
  of GROUP BY (keys, p)") holds for one subgroup, not for two: GROUP BY (keys, p1, p2) would
  suppress the third part as a cell of its own.
* rest_of_a_subgroup_*: the guard compares an earlier subgroup (the rows where p holds, or a
  nullable column's rows with a value) as a family of released cells (3.2), but not the REST of
  the cell, n - m, which the earlier release reveals just as exactly. A later WHERE (or a later
  subgroup) inside that rest, differing from it by one row, is not compared with it:
  (n - m) - later = 1. Two releases; spec 3.2 claims a subgroup "against a later WHERE that
  differs from it by a few rows, and the reverse" is covered. Closed: each subgroup and the rest
  of its cell (WHERE AND NOT p: p FALSE or NULL; a nullable column's NULL rows) are two families
  of released cells the guard compares in both orders (guard_cells.py); ordinary tests now.
* fallback_guard_ignores_the_new_subgroups: when the relation cannot be decided (guard.rows, 3.3), the
  guard counts the rows in exactly one of the two WHEREs (and one more per EARLIER subgroup) and tests
  the new cells' flag only; the new query's subgroups (FILTER) and nullable-column counts (COUNT(x))
  are never compared (apply_values walks only the cells-mode entries). A later WHERE widened by >= k
  rows that by definition lack hours makes its COUNT(hours) the earlier WHERE's rows with hours:
  n - m = 1. The same pair in cells mode is caught. Closed: in rows mode each new subgroup and its
  rest get a `partials` step of their own whose symdiff slots are tested into the values' flags
  (guard_rows.py); ordinary tests now.
* arithmetic_on_a_sum_escapes_rounding: under rounding, a bare SUM is rounded to b times one row's
  largest value (2.10), but `SUM(x) * 1`, `+ 0`, `/ 1` are released exactly (the circuit's
  released_form rounds only outputs that carry `count` or `sum_unit`, and arithmetic drops both;
  IQ321 refuses arithmetic on counts, not on sums). With WHERE x = 1 the sum is the exact count,
  which reopens the closed attacks exact_count_beside_its_rounded_release and
  exact_counts_through_sums_of_a_fixed_measure of tests/test_redteam.py.
* guard_surely_released_misses_a_two_owner_observer: with three owners, the guard's
  `certainly_released` (guard_cells.py) tests an earlier cell's complement of each single owner only,
  not the complements of the observer holdings the earlier plan tested (observer_holdings: police and
  NGO together, leaving the bank alone). An earlier cell suppressed for the bank's 3 rows counts as
  surely released, so a later margin that covers it is released: police + NGO read off the 3.
  Closed: certainly_released tests the complement of every holding observer_holdings allows (with
  every receiver the earlier datasets allow) and of each single owner; an ordinary test now.
* a_sum_over_two_values_is_a_count: a WHERE that leaves a measure two possible values (prs_Age IN
  (20, 77)) makes SUM(x) (or AVG(x)) beside COUNT(*) two equations in the two value classes' counts:
  (SUM - 20 n) / 57 = the one person aged 77, the cell GROUP BY (region, prs_Age) suppresses. No
  FILTER needed; filter.parts (2.14, in progress) does not count SUM/AVG/VAR as equations.
* many_parts_release_an_empty_group: with four subgroup counts a cell has more possible atoms than
  filter.parts (in progress, compiler/plan/partition.py) searches (MAX_ATOMS), and it falls back to
  "each atom 0 or >= k'": n - young - mid = 0 is then released, "nobody aged 77 or more here",
  while one such person withholds the counts (the zero rule, 1.2). With three counts it holds.
* difference_of_two_nested_subgroups_against_a_where: a release reveals more families than
  its cells, subgroups and their rests: u50 - u40 (ages 40-49) is one too (every union of atoms its
  counts determine, as filter.parts computes within a release). After WHERE ages 40-49 but 45, the
  nested FILTERs give the person aged 45 (the other order, subgroups first, is caught by the rest
  families since ccf6840).
* third_part_of_a_later_release_against_an_earlier_where: the same across releases with the three
  parts: ages >= 77 but 80 first, then n, young, mid (each part >= k): n - young - mid - earlier = 1.
* an_undecidable_part_releases_an_empty_group: filter.parts' other fallback (structure.relate cannot
  decide the atoms: a FILTER on debt_eur - prs_Age) is "each atom 0 or >= k'" too: "nobody aged 77
  or more" is released (the zero rule).
* a_variance_over_three_values_gives_three_counts: COUNT, SUM and VAR over WHERE x IN (a, b, c) are
  three equations in the three value classes' counts.
* dominance_of_a_difference_of_two_sums: the guard tests a difference's rows, never its dominance
  (2.7): total minus the short stays is the long stays' sum, one stay's 20000 of 20040, which
  sum.dominance withholds when the long stays are asked as a cell. Closed: guard.dominance tests the
  dominance rule on every difference the guard relates (guard_sums.py, spec 3.2); an ordinary test now,
  with controls, the other order, a mean, persons and an observer's own rows in tests/test_guard_dominance.py.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source

from conftest import CATALOG
from redteam_data import block, cells, count_rows, q, releases, view

CAT = load_catalog(CATALOG)
K = 10
P, N = "police_victims", "ngo_clients"
UNION = f"{P} UNION ALL {N}"


def by_region(cols: str, frm: str = P, where: str = "") -> str:
    return f"SELECT exp_Region, {cols} FROM {frm} {where} GROUP BY exp_Region;"


def north(tables: list, i: int, col: str):
    """The North cell's value of `col` in release i (None: suppressed or withheld)."""
    return tables[i][("North",)][col]


def run(queries: list[str], world, tmp_path: Path) -> list[dict]:
    return [cells(plan, table) for plan, _, table in releases(queries, world, CAT, tmp_path)]


def minus(*xs):
    if any(x is None for x in xs):
        return None
    return xs[0] - sum(xs[1:])


def small(x) -> bool:
    """A derived number that is a group of 1..k-1 rows."""
    return x is not None and 1 <= round(x) <= K - 1


# ------------------------------------------------------------------ three parts of one cell, one release
YOUNG = "COUNT(*) FILTER (WHERE prs_Age < 40) AS young"
MID = "COUNT(*) FILTER (WHERE prs_Age >= 40 AND prs_Age < 77) AS mid"
AGES_1 = [block(P, 40, exp_Region="North", prs_Age=[20] * 12 + [50] * 27 + [77])]  # one person aged 77
AGES_BIG = [block(P, 47, exp_Region="North", prs_Age=[20] * 12 + [50] * 25 + [77] * 10)]  # |young - mid| >= k too


def test_three_way_partition_by_two_filters(tmp_path):
    t = run([by_region(f"COUNT(*) AS n, {YOUNG}, {MID}")], AGES_1, tmp_path)
    derived = minus(north(t, 0, "n"), north(t, 0, "young"), north(t, 0, "mid"))
    assert count_rows(CAT, AGES_1, P, prs_Age=77) == 1
    assert not small(derived), f"n - young - mid = {derived}: the persons aged 77 or more"


def test_three_way_partition_by_a_share_and_a_filter(tmp_path):
    t = run([by_region(f"COUNT(*) AS n, AVG(prs_Age < 40) AS share_young, {MID}")], AGES_1, tmp_path)
    n, share = north(t, 0, "n"), north(t, 0, "share_young")
    derived = None if share is None or n is None else minus(n, round(share * n), north(t, 0, "mid"))
    assert not small(derived), f"n - young - mid = {derived}"


def test_three_way_partition_gives_the_rows_without_a_value(tmp_path):
    world = [block(P, 40, exp_Region="North", hours_worked_week=[20] * 12 + [50] * 27 + [None])]
    t = run([by_region("COUNT(*) AS n, SUM(CASE WHEN hours_worked_week > 40 THEN 1 ELSE 0 END) AS long_hours, "
                       "SUM(CASE WHEN hours_worked_week <= 40 THEN 1 ELSE 0 END) AS short_hours")], world, tmp_path)
    derived = minus(north(t, 0, "n"), north(t, 0, "long_hours"), north(t, 0, "short_hours"))
    assert not small(derived), f"rows without hours = {derived}"
    # the same group asked directly is withheld (values.left_out): the rule the partition bypasses
    direct = run([by_region("COUNT(*) AS n, COUNT(hours_worked_week) AS m")], world, tmp_path / "direct")
    assert north(direct, 0, "m") is None


def test_three_way_partition_on_an_observers_complement(tmp_path):
    world = [block(P, 30, exp_Region="North", prs_Age=[20] * 15 + [50] * 15),
             block(P, 10, exp_Region="North", prs_Age=80),
             block(N, 40, exp_Region="North", prs_Age=[20] * 12 + [50] * 27 + [77], person_id=range(1000, 1040))]
    t = run([by_region(f"COUNT(*) AS n, {YOUNG}, {MID}", frm=UNION)], world, tmp_path)
    own_old = count_rows(CAT, world, P, exp_Region="North", prs_Age=80)
    derived = minus(north(t, 0, "n"), north(t, 0, "young"), north(t, 0, "mid"), own_old)
    assert not small(derived), f"the NGO's clients aged 77 or more: {derived}"


def test_three_way_partition_control(tmp_path):
    """Every part holds >= k rows: the honest query keeps its values (a fix must not withhold them)."""
    t = run([by_region(f"COUNT(*) AS n, {YOUNG}, {MID}")], AGES_BIG, tmp_path)
    assert (north(t, 0, "n"), north(t, 0, "young"), north(t, 0, "mid")) == (47, 12, 25)



HTCDS = load_catalog(Path(__file__).resolve().parents[1] / "examples" / "htcds" / "catalog.toml")


def test_three_way_partition_on_the_htcds_template(tmp_path):
    world = [block("police_cases", 20, vic_TraffickingStatus="ActualVictimOfTrafficking",
                   vic_AgeWhenTrafficked=[15] * 6 + [25] * 13 + [None])]
    head = "SELECT vic_TraffickingStatus, COUNT(*) AS n, {cols} FROM police_cases GROUP BY vic_TraffickingStatus;"
    key = ("ActualVictimOfTrafficking",)
    plan, _, table = releases([head.format(cols="COUNT(vic_AgeWhenTrafficked) AS m")], world, HTCDS,
                              tmp_path / "direct")[0]
    assert cells(plan, table)[key]["m"] is None  # asked directly, the group is withheld (values.left_out)
    plan, _, table = releases([head.format(cols="COUNT(*) FILTER (WHERE vic_AgeWhenTrafficked < 18) AS minors, "
                                               "COUNT(*) FILTER (WHERE vic_AgeWhenTrafficked >= 18) AS adults")],
                              world, HTCDS, tmp_path / "attack")[0]
    c = cells(plan, table)[key]
    derived = minus(c["n"], c["minors"], c["adults"])
    assert derived is None or not 1 <= derived <= 4, f"victims without an age when trafficked: {derived} (k = 5)"


# ------------------------------------------------------------------ the rest of a subgroup, two releases
REST_CASES = {
    # earlier query, later query, world, derive(tables) -> the group, truth
    "filter_then_filter": (
        by_region(f"COUNT(*) AS n, {YOUNG}"), by_region(f"COUNT(*) AS n, {MID}"), AGES_1,
        lambda t: minus(north(t, 0, "n"), north(t, 0, "young"), north(t, 1, "mid"))),
    "filter_then_where": (
        by_region(f"COUNT(*) AS n, {YOUNG}"), by_region("COUNT(*) AS mid", where="WHERE prs_Age >= 40 AND prs_Age < 77"),
        AGES_1, lambda t: minus(north(t, 0, "n"), north(t, 0, "young"), north(t, 1, "mid"))),
    "where_then_filter": (
        by_region("COUNT(*) AS mid", where="WHERE prs_Age >= 40 AND prs_Age < 77"), by_region(f"COUNT(*) AS n, {YOUNG}"),
        AGES_1, lambda t: minus(north(t, 1, "n"), north(t, 1, "young"), north(t, 0, "mid"))),
    "nullable_count_then_where": (  # COUNT(x) then the rows without x minus one person: no FILTER needed
        by_region("COUNT(*) AS n, COUNT(hours_worked_week) AS m"),
        by_region("COUNT(*) AS mid", where="WHERE hours_worked_week IS NULL AND prs_Age < 77"),
        [block(P, 40, exp_Region="North", hours_worked_week=[40] * 20 + [None] * 20, prs_Age=[30] * 39 + [77])],
        lambda t: minus(north(t, 0, "n"), north(t, 0, "m"), north(t, 1, "mid"))),
    "filter_on_nulls_then_where": (  # the rest holds the NULL rows: hours > 40, then hours <= 40
        by_region("COUNT(*) AS n, COUNT(*) FILTER (WHERE hours_worked_week > 40) AS long_hours"),
        by_region("COUNT(*) AS mid", where="WHERE hours_worked_week <= 40"),
        [block(P, 40, exp_Region="North", hours_worked_week=[20] * 12 + [50] * 27 + [None])],
        lambda t: minus(north(t, 0, "n"), north(t, 0, "long_hours"), north(t, 1, "mid"))),
    "filter_then_margin_of_the_rest": (  # the rest summed over all regions against a later grouping by type
        by_region("COUNT(*) AS n, COUNT(*) FILTER (WHERE exp_Type = 'SexualExploitation') AS se"),
        "SELECT exp_Type, COUNT(*) AS t FROM police_victims WHERE exp_Type <> 'SexualExploitation' GROUP BY exp_Type;",
        [block(P, 120, exp_Region=lambda i: ["North", "East", "South", "West"][i % 4],
               exp_Type=lambda i: "ForcedCriminality" if i == 0 else ["SexualExploitation", "ForcedLabour"][(i // 4) % 2])],
        lambda t: minus(sum(c["n"] - c["se"] for c in t[0].values()),
                        sum(c["t"] for c in t[1].values() if c["t"] is not None))),
}


@pytest.mark.parametrize("name", sorted(REST_CASES))
def test_rest_of_a_subgroup_against_a_later_release(name, tmp_path):
    first, second, world, derive = REST_CASES[name]
    t = run([first, second], world, tmp_path)
    derived = derive(t)
    assert not small(derived), f"{name}: derived a group of {derived}"


def test_rest_of_a_subgroup_control(tmp_path):
    """The rest differs from the later cell by >= k rows (ten aged 77): both releases keep their values."""
    t = run([by_region(f"COUNT(*) AS n, {YOUNG}"), by_region(f"COUNT(*) AS n, {MID}")], AGES_BIG, tmp_path)
    assert (north(t, 0, "n"), north(t, 0, "young"), north(t, 1, "mid")) == (47, 12, 25)


def test_the_queries_are_accepted():
    """Every attack above is a query the checker accepts (no diagnostic)."""
    texts = [by_region(f"COUNT(*) AS n, {YOUNG}, {MID}"), by_region(f"COUNT(*) AS n, AVG(prs_Age < 40) AS s, {MID}"),
             by_region(f"COUNT(*) AS n, {YOUNG}, {MID}", frm=UNION)]
    texts += [t for c in REST_CASES.values() for t in c[:2]]
    for text in texts:
        res = compile_source(q(text), "q.iq", CAT)
        assert res.plan is not None and not res.diagnostics, text


# ------------------------------------------------------------------ the fallback guard (guard.rows, spec 3.3)
OPAQUE = "debt_eur - prs_Age < 800"  # a wide column in arithmetic: the relation is not decided, guard.rows
DECIDED = "debt_eur < 800"  # the same rows in these worlds, decided over the public domain: cells mode
FALLBACK_CASES = {
    # the later query widens WHERE by >= k rows that by definition have no hours (or are minors), so its
    # COUNT(hours) (its subgroup) counts exactly the earlier WHERE's rows with hours (not minor, under 77)
    "nullable_count": (
        "COUNT(*) AS n2, COUNT(hours_worked_week) AS m",
        "OR (hours_worked_week IS NULL AND minor_at_recruitment)",
        [block(P, 39, exp_Region="North", debt_eur=100, hours_worked_week=40),
         block(P, 1, exp_Region="North", debt_eur=100, hours_worked_week=None),
         block(P, 10, exp_Region="North", debt_eur=5000, hours_worked_week=None, minor_at_recruitment=True)]),
    "filter": (
        "COUNT(*) AS n2, COUNT(*) FILTER (WHERE prs_Age < 77 AND NOT minor_at_recruitment) AS m",
        "OR minor_at_recruitment",
        [block(P, 39, exp_Region="North", debt_eur=100, prs_Age=30),
         block(P, 1, exp_Region="North", debt_eur=100, prs_Age=77),
         block(P, 10, exp_Region="North", debt_eur=5000, minor_at_recruitment=True)]),
}


def _fallback_pair(name: str, where: str, tmp_path: Path) -> tuple[list[dict], list[str]]:
    cols, widen, world = FALLBACK_CASES[name]
    queries = [by_region("COUNT(*) AS n", where=f"WHERE {where}"),
               by_region(cols, where=f"WHERE {where} {widen}")]
    runs = releases(queries, world, CAT, tmp_path)
    return [cells(p, t) for p, _, t in runs], [e["mode"] for e in runs[1][0].get("guard", [])]


@pytest.mark.parametrize("name", sorted(FALLBACK_CASES))
def test_fallback_guard_ignores_the_new_subgroups(name, tmp_path):
    t, modes = _fallback_pair(name, OPAQUE, tmp_path)
    assert modes == ["rows"]
    derived = minus(north(t, 0, "n"), north(t, 1, "m"))  # the earlier WHERE's rows without hours / aged 77
    assert not small(derived), f"{name}: derived a group of {derived}"


@pytest.mark.parametrize("name", sorted(FALLBACK_CASES))
def test_the_same_pair_in_cells_mode_is_caught(name, tmp_path):
    """Control: with a WHERE the guard relates over the public domain (the same rows in this world), the
    subgroup is compared as a family of released cells and withheld."""
    t, modes = _fallback_pair(name, DECIDED, tmp_path)
    assert modes == ["cells"]
    assert north(t, 0, "n") == 40 and north(t, 1, "n2") == 50 and north(t, 1, "m") is None



# ------------------------------------------------------------------ rounding: a SUM inside arithmetic (spec 2.10)
def _caller_age_catalog(folder: Path):
    """catalog.toml plus a nullable measure caller_age in helpline_reports (k = 5, counts rounded to 5)."""
    path = folder / "caller_age.toml"
    path.write_text(CATALOG.read_text(encoding="utf-8").replace(
        'caller_is_victim = { type = "boolean" }',
        'caller_is_victim = { type = "boolean" }\n'
        'caller_age = { type = "integer", min = 0, max = 99, nullable = true, role = "measure", clamp = [0, 99] }'),
        encoding="utf-8")
    return load_catalog(path)


HL = "helpline_reports"


def _refused(query: str, cat) -> list[str]:
    res = compile_source(q(query), "q.iq", cat)
    return [d.code for d in res.diagnostics if d.severity == "error"]


def test_arithmetic_on_a_sum_escapes_rounding(tmp_path):
    """Under rounding, SUM(x) * 1 (or + 0, / 1) would be released exactly: with WHERE x = 1 it is the
    exact row count, 13 beside COUNT(*) shown as 10. The checker refuses it (IQ321); the bare SUM
    stays accepted and rounded."""
    world = [block(HL, 13, exp_Type="ForcedLabour", victims_mentioned=1),
             block(HL, 4, exp_Type="ForcedLabour", victims_mentioned=2)]
    head = "SELECT exp_Type, COUNT(*) AS n, SUM(victims_mentioned) AS s{} FROM helpline_reports " \
           "WHERE victims_mentioned = 1 GROUP BY exp_Type;"
    for extra in (", SUM(victims_mentioned) * 1 AS s1", ", SUM(victims_mentioned) + 0 AS s1",
                  ", SUM(victims_mentioned) / SUM(victims_mentioned) AS s1"):
        assert "IQ321" in _refused(head.format(extra), CAT), extra
    plan, _, table = releases([head.format("")], world, CAT, tmp_path)[0]
    c = cells(plan, table)[("ForcedLabour",)]
    assert c["n"] == 10 and c["s"] == 0  # the count and the bare SUM are rounded (to 5, and to 5 x 20)


def test_arithmetic_on_sums_gives_the_rows_the_two_sided_rule_let_through(tmp_path):
    """The own-count rule under rounding reads rounded counts (14 rows, 10 with an age: both shown as 10, so the
    4 rows without an age pass as 'none'); exact sums of a measure WHERE fixes to 1 would read them off
    (k = 5): the checker refuses the computed SUMs (IQ321)."""
    cat = _caller_age_catalog(tmp_path)
    query = ("SELECT exp_Type, COUNT(*) AS n, COUNT(caller_age) AS m, SUM(victims_mentioned) * 1 AS rows_exact, "
             "SUM(caller_age) * 1 AS m_exact FROM helpline_reports WHERE victims_mentioned = 1 AND "
             "(caller_age = 1 OR caller_age IS NULL) GROUP BY exp_Type;")
    assert "IQ321" in _refused(query, cat)



# ------------------------------------------------------------------ the guard's "surely released", three owners
def _three_org_catalog(folder: Path):
    """catalog.toml plus bank_victims (owner bank, the NGO's schema, not a receiver), as in test_redteam.py:
    three data organisations, five catalog parties (t = 2)."""
    text = CATALOG.read_text(encoding="utf-8")
    ngo = text[text.index("# ---------------------------------------------------------------- NGO"):
               text.index("# ---------------------------------------------------------------- helpline")]
    bank = (ngo.replace("ngo_clients", "bank_victims").replace('owner = "ngo"', 'owner = "bank"')
            .replace("bits = 48, unique = true", "bits = 48"))
    path = folder / "three.toml"
    path.write_text(text.replace("[parties.helper]", '[parties.bank]\ndescription = "A bank"\n[parties.helper]')
                    + "\n" + bank, encoding="utf-8")
    return load_catalog(path)


BK = "bank_victims"
UNION3 = f"{P} UNION ALL {N} UNION ALL {BK}"
TYPES = ["SexualExploitation", "ForcedLabour", "ForcedCriminality", "DomesticServitude", "Other"]


def _types_world(bank_se: int) -> list:
    """North: every type has 20 police, 20 NGO and 20 bank rows, except SexualExploitation with `bank_se`
    bank rows (distinct persons everywhere)."""
    world = []
    for j, ty in enumerate(TYPES):
        world += [block(P, 20, exp_Region="North", exp_Type=ty),
                  block(N, 20, exp_Region="North", exp_Type=ty, person_id=lambda i, j=j: 10_000 + 100 * j + i),
                  block(BK, bank_se if j == 0 else 20, exp_Region="North", exp_Type=ty,
                        person_id=lambda i, j=j: 20_000 + 100 * j + i)]
    return world


def _region_after_types(bank_se: int, tmp_path: Path) -> tuple[list[dict], object]:
    cat = _three_org_catalog(tmp_path)
    queries = [f"SELECT exp_Region, exp_Type, COUNT(*) AS n FROM {UNION3} GROUP BY exp_Region, exp_Type;",
               f"SELECT exp_Region, COUNT(*) AS n FROM {UNION3} GROUP BY exp_Region;"]
    world = _types_world(bank_se)
    return [cells(p, t) for p, _, t in releases(queries, world, cat, tmp_path / "run")], (cat, world)


def test_guard_surely_released_misses_a_two_owner_observer(tmp_path):
    """By region x type over police, NGO and bank, (North, SexualExploitation) is suppressed: an observer
    holding police and NGO (both receivers) would see the bank's 3 rows (observer.rows). By region next, the
    North covers its five types; the guard lets it through because it takes that earlier cell as surely
    released (CellChecks.certainly_released tests the complements of one owner each, never the bank alone)."""
    t, (cat, world) = _region_after_types(3, tmp_path)
    assert t[0][("North", "SexualExploitation")]["n"] is None
    released_types = sum(t[0][("North", ty)]["n"] for ty in TYPES[1:])
    own = sum(count_rows(cat, world, d, exp_Region="North", exp_Type="SexualExploitation") for d in (P, N))
    derived = minus(t[1][("North",)]["n"], released_types, own)
    assert not small(derived), f"the bank's SexualExploitation rows in the North: {derived}"


def test_guard_surely_released_control(tmp_path):
    """With 10 bank rows the earlier cell is released, and so is the region (the difference is the cell)."""
    t, _ = _region_after_types(10, tmp_path)
    assert t[0][("North", "SexualExploitation")]["n"] == 50 and t[1][("North",)]["n"] == 290



# ------------------------------------------------------------------ a SUM over a WHERE that leaves two values
SUM_TWO_VALUES = {
    "sum": ("COUNT(*) AS n, SUM(prs_Age) AS s", lambda n, s: (s - 20 * n) / 57),
    "avg": ("COUNT(*) AS n, AVG(prs_Age) AS s", lambda n, s: (s * n - 20 * n) / 57),
}


@pytest.mark.parametrize("name", sorted(SUM_TWO_VALUES))
def test_a_sum_over_two_values_is_a_count(name, tmp_path):
    """The cell (North, 77) of GROUP BY exp_Region, prs_Age is suppressed (1 row); the same query grouped by
    region alone, with SUM beside COUNT, gives it: (SUM - 20 n) / (77 - 20). Spec 2.10 already treats a SUM
    whose WHERE fixes every value as a count (under rounding); with two values it is two counts."""
    cols, solve = SUM_TWO_VALUES[name]
    world = [block(P, 40, exp_Region="North", prs_Age=[20] * 39 + [77]),
             block(P, 40, exp_Region="East", prs_Age=[20] * 30 + [77] * 10)]
    where = "WHERE prs_Age IN (20, 77)"
    grouped = run([f"SELECT exp_Region, prs_Age, COUNT(*) AS n FROM {P} {where} GROUP BY exp_Region, prs_Age;"],
                  world, tmp_path / "grouped")[0]
    assert grouped[("North", 77)]["n"] is None and grouped[("East", 77)]["n"] == 10
    t = run([by_region(cols, where=where)], world, tmp_path / "attack")
    n, s = north(t, 0, "n"), north(t, 0, "s")
    derived = None if n is None or s is None else solve(n, s)
    assert not small(derived), f"persons aged 77 in the North: {derived}"


def test_a_variance_over_three_values_gives_three_counts(tmp_path):
    """The same with a second moment: VAR(x) (with n - 1) gives the sum of squares, so three values are solved."""
    world = [block(P, 41, exp_Region="North", prs_Age=[20] * 20 + [50] * 20 + [77])]
    t = run([by_region("COUNT(*) AS n, SUM(prs_Age) AS s, VAR(prs_Age) AS v",
                       where="WHERE prs_Age IN (20, 50, 77)")], world, tmp_path)
    n, s, v = north(t, 0, "n"), north(t, 0, "s"), north(t, 0, "v")
    derived = None
    if None not in (n, s, v):
        a = [[1, 1, 1], [20, 50, 77], [400, 2500, 5929]]
        b = [n, s, v * (n - 1) + s * s / n]
        import numpy as np
        derived = float(np.linalg.solve(np.array(a, dtype=float), np.array(b, dtype=float))[2])
    assert not small(derived), f"persons aged 77 in the North: {derived}"



# ------------------------------------------------------------------ many parts: the zero rule
def _eight_atoms(old: int) -> list:
    """North: 10 rows in each of the 8 atoms (under 40 / 40-76) x minor x Feminine, and `old` rows aged 80."""
    world = [block(P, 10, exp_Region="North", prs_Age=age, minor_at_recruitment=minor, prs_Gender=g)
             for age in (20, 50) for minor in (False, True) for g in ("Feminine", "Masculine")]
    return world + ([block(P, old, exp_Region="North", prs_Age=80)] if old else [])


FOUR_PARTS = (f"COUNT(*) AS n, {YOUNG}, {MID}, COUNT(*) FILTER (WHERE minor_at_recruitment) AS minors, "
              "COUNT(*) FILTER (WHERE prs_Gender = 'Feminine') AS fem")


def test_many_parts_release_an_empty_group(tmp_path):
    """Two more FILTERs (minors, Feminine) beside young and mid: the cell has 12 possible atoms, and every atom
    0 or >= k lets the release say that nobody in the North is 77 or older; with one such person the same
    query is withheld, so released vs withheld answers 'is anyone there?' (spec 1.2, the zero rule: GROUP BY
    (region, the four conditions) would suppress the empty cells). With three counts it is withheld."""
    t = run([by_region(FOUR_PARTS)], _eight_atoms(0), tmp_path / "none")
    derived = minus(north(t, 0, "n"), north(t, 0, "young"), north(t, 0, "mid"))
    assert derived is None or derived >= K, f"rows aged 77 or more: {derived}, read off as 'none'"


def test_an_undecidable_part_releases_an_empty_group(tmp_path):
    """The same zero-rule leak as above through filter.parts' other fallback: when structure.relate cannot
    decide the atoms (a part on a wide column in arithmetic), every atom is tested two-sided."""
    world = [block(P, 10, exp_Region="North", prs_Age=age, debt_eur=debt) for age in (20, 50) for debt in (100, 5000)]
    cols = f"COUNT(*) AS n, {YOUNG}, {MID}, COUNT(*) FILTER (WHERE debt_eur - prs_Age < 800) AS low_debt"
    t = run([by_region(cols)], world, tmp_path)
    derived = minus(north(t, 0, "n"), north(t, 0, "young"), north(t, 0, "mid"))
    assert derived is None or derived >= K, f"rows aged 77 or more: {derived}, read off as 'none'"



# ------------------------------------------------------------------ two nested subgroups against an earlier WHERE
NESTED = by_region("COUNT(*) AS n, COUNT(*) FILTER (WHERE prs_Age < 50) AS u50, "
                   "COUNT(*) FILTER (WHERE prs_Age < 40) AS u40")
BAND_BUT_45 = by_region("COUNT(*) AS m", where="WHERE prs_Age >= 40 AND prs_Age < 50 AND prs_Age <> 45")
AGES_45 = [block(P, 60, exp_Region="North", prs_Age=[30] * 20 + [42] * 19 + [45] + [60] * 20)]


LEAK_NESTED = ("LEAK: ages 40-49 as u50 - u40 of two nested FILTER counts (a family the guard does not compare) "
               "against a count of ages 40-49 but 45: the one person aged 45")


@pytest.mark.parametrize("order", [
    "band_first",  # caught: u50 - u40 is a group filter.parts tests, and the guard compares it (7086d72+)
    # caught by the rest families of ccf6840 (the rest of u40, ages >= 40, against the band)
    "subgroups_first"])
def test_difference_of_two_nested_subgroups_against_a_where(order, tmp_path):
    queries = [BAND_BUT_45, NESTED] if order == "band_first" else [NESTED, BAND_BUT_45]
    t = run(queries, AGES_45, tmp_path)
    a, b = (1, 0) if order == "band_first" else (0, 1)
    derived = minus(north(t, a, "u50"), north(t, a, "u40"), north(t, b, "m"))
    assert not small(derived), f"persons aged 45 in the North: {derived}"


THREE_PARTS = by_region(f"COUNT(*) AS n, {YOUNG}, {MID}")
OLD_BUT_80 = by_region("COUNT(*) AS m", where="WHERE prs_Age >= 77 AND prs_Age <> 80")
AGES_80 = [block(P, 70, exp_Region="North", prs_Age=[20] * 20 + [50] * 35 + [78] * 14 + [80])]


@pytest.mark.parametrize("order", [
    "band_first",  # caught: n - young - mid is a group filter.parts tests, compared by the guard
    "subgroups_first"])  # caught
def test_third_part_of_a_later_release_against_an_earlier_where(order, tmp_path):
    """The three-part attack across two releases: the third part n - young - mid (ages 77 and more) is
    a union of atoms the later release determines, like u50 - u40 above."""
    queries = [OLD_BUT_80, THREE_PARTS] if order == "band_first" else [THREE_PARTS, OLD_BUT_80]
    t = run(queries, AGES_80, tmp_path)
    a, b = (1, 0) if order == "band_first" else (0, 1)
    derived = minus(north(t, a, "n"), north(t, a, "young"), north(t, a, "mid"), north(t, b, "m"))
    assert not small(derived), f"persons aged 80 in the North: {derived}"



# ------------------------------------------------------------------ dominance across two releases
def test_dominance_of_a_difference_of_two_sums(tmp_path):
    """catalog_strict.toml, shelter_stays (k = 5, dominance (1, 60)). The guard tests a difference's rows (and
    rows with a value, 3.2) but never its dominance (2.7): the long stays' sum, withheld when asked as a cell,
    is read off as total minus the short stays."""
    world = [block("shelter_stays", 20, region="North", stay_days=10, support_eur=1000, person_id=lambda i: i + 1),
             block("shelter_stays", 1, region="North", stay_days=60, support_eur=20000, person_id=500),
             block("shelter_stays", 4, region="North", stay_days=60, support_eur=10, person_id=lambda i: 600 + i)]
    base = "SELECT region, COUNT(*) AS n, SUM(support_eur) AS s FROM shelter_stays {} GROUP BY region;"
    plan, _, table = releases([base.format("WHERE stay_days >= 30")], world, STRICT, tmp_path / "direct")[0]
    assert cells(plan, table)[("North",)]["s"] is None  # asked directly: one stay dominates (sum.dominance)
    runs = releases([base.format(""), base.format("WHERE stay_days < 30")], world, STRICT, tmp_path / "two")
    total, short = (cells(p, t)[("North",)]["s"] for p, _, t in runs)
    derived = minus(total, short)
    assert derived is None, f"the long stays' support, {derived}, is one stay's 20000 (99.8 %)"


# ------------------------------------------------------------------ attacks that failed (the protection held)
STRICT = load_catalog(CATALOG.parent / "catalog_strict.toml")


def test_a_subgroup_condition_obeys_where_false():
    """shelter_stays.nationality is `where = false`: FILTER, CASE and AVG(b) on it are refused (IQ312) like a
    WHERE, so they are no way around the owner's choice (GROUP BY nationality stays allowed, as a cell)."""
    base = "SELECT region, COUNT(*) AS n, {col} AS x FROM shelter_stays GROUP BY region;"
    for col in ("COUNT(*) FILTER (WHERE nationality = 'VN')", "SUM(CASE WHEN nationality = 'VN' THEN 1 ELSE 0 END)",
                "AVG(nationality = 'VN')"):
        codes = [d.code for d in compile_source(q(base.format(col=col)), "q.iq", STRICT).diagnostics]
        assert "IQ312" in codes, col


def test_computed_outputs_of_subgroup_counts_are_withheld(tmp_path):
    """The difference of two subgroup counts as one output (the 3 persons aged exactly 50), and the rest of
    the cell as COUNT(*) - COUNT(*) FILTER (the 1 person aged 77): each is withheld (counts.pair, filter.rows);
    with >= k in each group both are released."""
    cols = ("COUNT(*) AS n, COUNT(*) FILTER (WHERE prs_Age >= 50) - COUNT(*) FILTER (WHERE prs_Age >= 51) AS aged_50, "
            "COUNT(*) - COUNT(*) FILTER (WHERE prs_Age < 77) AS aged_77")
    attack = [block(P, 40, exp_Region="North", prs_Age=[30] * 20 + [50] * 3 + [60] * 16 + [77])]
    t = run([by_region(cols)], attack, tmp_path / "a")
    assert north(t, 0, "n") == 40 and north(t, 0, "aged_50") is None and north(t, 0, "aged_77") is None
    control = [block(P, 60, exp_Region="North", prs_Age=[30] * 20 + [50] * 10 + [60] * 20 + [77] * 10)]
    t = run([by_region(cols)], control, tmp_path / "c")
    assert (north(t, 0, "aged_50"), north(t, 0, "aged_77")) == (10, 10)


def test_two_subgroups_that_partition_the_cell_by_definition_are_released(tmp_path):
    """Control for a fix of the three-part attack: prs_Age < 40 and prs_Age >= 40 leave a third part that the
    definitions force to be empty (prs_Age is never NULL); the values must stay released."""
    world = [block(P, 40, exp_Region="North", prs_Age=[20] * 12 + [50] * 28)]
    t = run([by_region(f"COUNT(*) AS n, {YOUNG}, COUNT(*) FILTER (WHERE prs_Age >= 40) AS old")], world, tmp_path)
    assert (north(t, 0, "n"), north(t, 0, "young"), north(t, 0, "old")) == (40, 12, 28)


def _padded_subgroup(ngo_77: int) -> list:
    """The police pads North with 12 invented rows aged 77 beside 20 real ones; the NGO holds 20 North clients,
    `ngo_77` of them aged 77. East is big everywhere."""
    return [block(P, 20, exp_Region="North", prs_Age=30), block(P, 12, exp_Region="North", prs_Age=77),
            block(N, 20 - ngo_77, exp_Region="North", prs_Age=30, person_id=range(1000, 1020 - ngo_77)),
            block(N, ngo_77, exp_Region="North", prs_Age=77, person_id=range(2000, 2000 + ngo_77)),
            block(P, 40, exp_Region="East", prs_Age=[30, 77]), block(N, 40, exp_Region="East", prs_Age=[30, 77],
                                                                     person_id=range(3000, 3040))]


def test_padding_a_subgroup_reveals_nothing(tmp_path):
    """The zero rule for filter.rows on the complement: with 12 invented rows aged 77, the police sees the same
    table whether the NGO has 0, 1 or 9 clients aged 77 in the North (released vs withheld would tell)."""
    query = by_region("COUNT(*) AS n, COUNT(*) FILTER (WHERE prs_Age >= 77) AS old", frm=UNION)
    views = []
    for ngo_77 in (0, 1, 9):
        plan, _, table = releases([query], _padded_subgroup(ngo_77), CAT, tmp_path / str(ngo_77))[0]
        views.append(view(table))
    assert views[0] == views[1] == views[2]
    t = run([query], _padded_subgroup(10), tmp_path / "control")
    assert north(t, 0, "old") == 22


def test_percent_within_a_partition_does_not_depend_on_its_suppressed_cell(tmp_path):
    """pct(COUNT(*)) OVER (PARTITION BY exp_Region), region x minor: the North cell of minors holds 0 or 3 rows
    (suppressed either way); the percents of the North's released cell are the same in both worlds."""
    query = ("SELECT exp_Region, minor_at_recruitment, pct(COUNT(*)) OVER (PARTITION BY exp_Region) AS p "
             "FROM police_victims GROUP BY exp_Region, minor_at_recruitment;")
    views = []
    for minors in (0, 3):
        world = [block(P, 20, exp_Region="North"), block(P, minors, exp_Region="North", minor_at_recruitment=True),
                 block(P, 40, exp_Region="East", minor_at_recruitment=[True, False])]
        views.append(view(releases([query], world, CAT, tmp_path / str(minors))[0][2]))
    assert views[0] == views[1]



def test_coalesce_in_a_share_does_not_hide_the_nulls(tmp_path):
    """AVG(coalesce(hours > 40, TRUE)) counts the rows without hours among its TRUE rows; beside
    COUNT(*) FILTER (WHERE hours > 40) the two counts differ by that one row: withheld in one query
    (counts.pair), and suppressed by the guard across two (the later subgroup inside the earlier one)."""
    world = [block(P, 40, exp_Region="North", hours_worked_week=[20] * 12 + [50] * 27 + [None])]
    share = "AVG(coalesce(hours_worked_week > 40, TRUE)) AS s"
    longer = "COUNT(*) FILTER (WHERE hours_worked_week > 40) AS h"
    t = run([by_region(f"COUNT(*) AS n, {share}, {longer}")], world, tmp_path / "one")
    assert north(t, 0, "n") == 40 and north(t, 0, "s") is None and north(t, 0, "h") is None
    t = run([by_region(f"COUNT(*) AS n, {share}"), by_region(f"COUNT(*) AS n, {longer}")], world, tmp_path / "two")
    assert north(t, 0, "s") == pytest.approx(0.7) and north(t, 1, "h") is None


def test_arithmetic_on_a_subgroup_count_under_rounding_is_refused():
    """Unlike a SUM, a subgroup count in arithmetic under rounding is refused (IQ321), FILTER and CASE alike."""
    for col in ("COUNT(*) FILTER (WHERE caller_is_victim) * 1", "SUM(CASE WHEN caller_is_victim THEN 1 ELSE 0 END) + 0"):
        text = q(f"SELECT exp_Type, {col} AS s FROM helpline_reports GROUP BY exp_Type;")
        assert "IQ321" in [d.code for d in compile_source(text, "q.iq", CAT).diagnostics], col
