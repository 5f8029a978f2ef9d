"""filter.parts across releases of the same cells (spec/disclosure.md 2.15, 6.13).

Two releases with the same datasets, WHERE and keys are never compared by the differencing guard
(the same cells by definition), but their sums and counts are equations in the same value classes:
`SUM(prs_Age)` per region and later `SUM(hours_worked_week)` per region under a WHERE that pairs
their values are the joint equations 2.15 tests inside one query. Each release records which
columns it summed and which parts it counted (`sums`, `parts` in its guard signature), and a later
release of the same cells relates them with its own. Each attack is run by a receiver on the
plaintext oracle over a ledger sequence (tests/redteam_data.py); controls keep honest values.
Also here: guard.dominance reads the same field (a SUM after a COUNT-only release is not tested
against it), and the residual of 6.13 for releases whose cells differ.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.plan.guard import signature_of_plan

from conftest import CATALOG, assert_same_result, load_tables, run_mpc
from redteam_data import block, cells, q, releases, write_world

CAT = load_catalog(CATALOG)
STRICT = load_catalog(CATALOG.parent / "catalog_strict.toml")
K = 10
P = "police_victims"


def by_region(cols: str, where: str) -> str:
    return f"SELECT exp_Region, {cols} FROM {P} {where} GROUP BY exp_Region;"


def north(queries: list[str], world, folder: Path, cat=CAT) -> list[dict]:
    """The North cell of each release of the sequence."""
    return [cells(plan, table)[("North",)] for plan, _, table in releases(queries, world, cat, folder)]


def small(x) -> bool:
    """A derived number that is a group of 1..k-1 rows."""
    return x is not None and 1 <= round(x) <= K - 1


def solve(rows: list[list], values: list, unknown: int):
    """The `unknown`-th class count from the revealed equations (None when some value is withheld)."""
    if any(v is None for v in values):
        return None
    x = np.linalg.lstsq(np.array(rows, dtype=float), np.array(values, dtype=float), rcond=None)[0]
    return float(x[unknown])


# ------------------------------------------------------------------ two sums of the same cells
JOINT = ("WHERE (prs_Age = 20 AND hours_worked_week = 40) OR (prs_Age = 30 AND hours_worked_week = 60) "
         "OR (prs_Age = 40 AND hours_worked_week = 50)")
JOINT_1 = [block(P, 20, exp_Region="North", prs_Age=20, hours_worked_week=40),
           block(P, 19, exp_Region="North", prs_Age=30, hours_worked_week=60),
           block(P, 1, exp_Region="North", prs_Age=40, hours_worked_week=50)]
AGE = by_region("COUNT(*) AS n, SUM(prs_Age) AS a", JOINT)
HOURS = by_region("COUNT(*) AS n, SUM(hours_worked_week) AS h", JOINT)


def test_two_releases_sum_two_columns_of_the_same_cells(tmp_path):
    """Each release alone is two equations in three classes; together n, SUM(prs_Age) and
    SUM(hours_worked_week) give the one row aged 40 working 50 hours (2.15 inside one query)."""
    first, second = north([AGE, HOURS], JOINT_1, tmp_path)
    assert (first["n"], first["a"]) == (40, 20 * 20 + 19 * 30 + 40)  # alone: nothing to solve
    derived = solve([[1, 1, 1], [20, 30, 40], [40, 60, 50]], [first["n"], first["a"], second["h"]], 2)
    assert not small(derived), f"rows aged 40 working 50 hours: {derived}"
    assert second["n"] == 40  # the cell stays


def test_the_same_cells_written_otherwise(tmp_path):
    """The WHERE's OR branches in another order: the same cells over the public domain (structure.relate),
    so the same equations."""
    reordered = ("WHERE (prs_Age = 30 AND hours_worked_week = 60) OR (prs_Age = 20 AND hours_worked_week = 40) "
                 "OR (prs_Age = 40 AND hours_worked_week = 50)")
    first, second = north([AGE, by_region("COUNT(*) AS n, SUM(hours_worked_week) AS h", reordered)], JOINT_1, tmp_path)
    derived = solve([[1, 1, 1], [20, 30, 40], [40, 60, 50]], [first["n"], first["a"], second["h"]], 2)
    assert not small(derived), f"rows aged 40 working 50 hours: {derived}"


def test_the_same_cells_in_some_regions_only(tmp_path):
    """The first release keeps two regions: the North holds the same rows in both releases, the South
    does not (the second's South has rows the first's lacks), so the North's equations are related."""
    first, second = north([by_region("COUNT(*) AS n, SUM(prs_Age) AS a", JOINT + " AND exp_Region IN ('North', 'East')"),
                           HOURS], JOINT_1, tmp_path)
    derived = solve([[1, 1, 1], [20, 30, 40], [40, 60, 50]], [first["n"], first["a"], second["h"]], 2)
    assert first["a"] is not None and not small(derived), f"rows aged 40 working 50 hours: {derived}"


def test_the_same_cells_with_the_keys_in_another_order(tmp_path):
    both = "SELECT exp_Region, exp_Type, COUNT(*) AS n, SUM(prs_Age) AS a FROM police_victims {} GROUP BY exp_Region, exp_Type;"
    other = ("SELECT exp_Type, exp_Region, COUNT(*) AS n, SUM(hours_worked_week) AS h FROM police_victims {} "
             "GROUP BY exp_Type, exp_Region;")
    (p1, _, t1), (p2, _, t2) = releases([both.format(JOINT), other.format(JOINT)], JOINT_1, CAT, tmp_path)
    first, second = cells(p1, t1)[("North", "SexualExploitation")], cells(p2, t2)[("SexualExploitation", "North")]
    derived = solve([[1, 1, 1], [20, 30, 40], [40, 60, 50]], [first["n"], first["a"], second["h"]], 2)
    assert first["a"] is not None and not small(derived), f"rows aged 40 working 50 hours: {derived}"


def test_three_counted_parts_across_releases(tmp_path):
    """Counts only: n - young - mid is the persons aged 77 (2.15's first example), the FILTERs in two
    releases (the guard withholds it too: the first's rest, aged 40 or more, holds the second's subgroup)."""
    world = [block(P, 20, exp_Region="North", prs_Age=30), block(P, 19, exp_Region="North", prs_Age=50),
             block(P, 1, exp_Region="North", prs_Age=80)]
    first, second = north([by_region("COUNT(*) AS n, COUNT(*) FILTER (WHERE prs_Age < 40) AS y", ""),
                           by_region("COUNT(*) AS n, COUNT(*) FILTER (WHERE prs_Age >= 40 AND prs_Age < 77) AS m", "")],
                          world, tmp_path)
    assert first["y"] == 20
    old = None if second["m"] is None else second["n"] - first["y"] - second["m"]
    assert not small(old), f"persons aged 77 or more: {old}"


# ------------------------------------------------------------------ a sum beside another release's counts
DEBT = "WHERE debt_eur IN (100, 5000, 7000)"
DEBT_1 = [block(P, 20, exp_Region="North", debt_eur=100), block(P, 19, exp_Region="North", debt_eur=5000),
          block(P, 1, exp_Region="North", debt_eur=7000)]
FILTERED = by_region("COUNT(*) AS n, COUNT(*) FILTER (WHERE debt_eur = 100) AS m", DEBT)
SUMMED = by_region("COUNT(*) AS n, SUM(debt_eur) AS s", DEBT)


def _debt_7000(counts: dict, sums: dict):
    return solve([[1, 1, 1], [1, 0, 0], [100, 5000, 7000]], [counts["n"], counts["m"], sums["s"]], 2)


def test_a_sum_after_a_filter_count_of_the_same_cells(tmp_path):
    """n - m = rows with 5000 or 7000, SUM - 100 m = 5000 a + 7000 b: the one row with 7000."""
    counts, sums = north([FILTERED, SUMMED], DEBT_1, tmp_path)
    assert counts["m"] == 20
    assert not small(_debt_7000(counts, sums)), "rows with a debt of 7000"


def test_a_filter_count_after_a_sum_of_the_same_cells(tmp_path):
    """The same equations in the other order: the FILTER's count is withheld now."""
    sums, counts = north([SUMMED, FILTERED], DEBT_1, tmp_path)
    assert sums["s"] is not None
    assert not small(_debt_7000(counts, sums)), "rows with a debt of 7000"


def test_a_sum_beside_an_earlier_sum_and_filter_of_another_column(tmp_path):
    """Three releases: the earlier ones' equations together, then the new sum closes the system."""
    ages = by_region("COUNT(*) AS n, COUNT(*) FILTER (WHERE prs_Age = 20) AS m", JOINT)
    first, _, third = north([ages, by_region("COUNT(*) AS n", JOINT), HOURS], JOINT_1, tmp_path)
    derived = solve([[1, 1, 1], [1, 0, 0], [40, 60, 50]], [first["n"], first["m"], third["h"]], 2)
    assert not small(derived), f"rows working 50 hours: {derived}"


# ------------------------------------------------------------------ controls
def test_control_joint_classes_each_at_least_k(tmp_path):
    world = [block(P, 20, exp_Region="North", prs_Age=20, hours_worked_week=40),
             block(P, 10, exp_Region="North", prs_Age=30, hours_worked_week=60),
             block(P, 10, exp_Region="North", prs_Age=40, hours_worked_week=50)]
    first, second = north([AGE, HOURS], world, tmp_path)
    assert (first["a"], second["h"]) == (400 + 300 + 400, 800 + 600 + 500)


def test_control_the_same_query_twice(tmp_path):
    """Repeating a release adds no equation: its values stay."""
    first, second = north([AGE, AGE], JOINT_1, tmp_path)
    assert first["a"] == second["a"] == 20 * 20 + 19 * 30 + 40


def test_control_a_wide_sum_after_counts(tmp_path):
    """A range WHERE leaves the decimal thousands of values: the earlier counts determine nothing more."""
    wide = "WHERE debt_eur >= 100 AND debt_eur < 8000"
    counts, sums = north([by_region("COUNT(*) AS n, COUNT(*) FILTER (WHERE debt_eur < 1000) AS m", wide),
                          by_region("COUNT(*) AS n, SUM(debt_eur) AS s", wide)], DEBT_1, tmp_path)
    assert counts["m"] == 20 and sums["s"] == 20 * 100 + 19 * 5000 + 7000


@pytest.mark.mpc
def test_mpc_equals_the_oracle_on_a_ledger_sequence(tmp_path):
    """A FILTER count, then a SUM of the same cells, through real parties that each recompile the second
    plan against their own ledger (the plan hash must match): the sum withheld, the tables equal to the
    oracle's."""
    data = write_world(tmp_path, CAT, DEBT_1)
    sigs, got = [], []
    for i, text in enumerate([FILTERED, SUMMED]):
        plan = compile_source(q(text), f"q{i}", CAT, earlier=list(sigs)).plan
        table = run_mpc(plan, data, ledger_dir=tmp_path / "ledgers")
        assert_same_result(plan, table, run_plan_plaintext(plan, load_tables(plan, CAT, data)))
        sigs.append(signature_of_plan(plan))
        got.append(cells(plan, table)[("North",)])
    assert got[0]["m"] == 20 and got[1]["n"] == 40 and got[1]["s"] is None


# ------------------------------------------------------------------ the ledger field
def test_the_signature_records_sums_and_parts():
    plan = compile_source(q(by_region("COUNT(*) FILTER (WHERE debt_eur = 100) AS m, VAR(prs_Age) AS v, "
                                      "AVG(debt_eur) AS d", DEBT)), "q", CAT).plan
    sig = signature_of_plan(plan)
    assert sorted((s["arg"]["col"], s["degree"]) for s in sig["sums"]) == [("debt_eur", 1), ("prs_Age", 2)]
    # the FILTER's indicator and debt_eur's rows with a value; not the groups filter.parts tests
    assert sorted(p.get("col", p.get("op")) for p in sig["parts"]) == ["case", "debt_eur"]
    counts = signature_of_plan(compile_source(q(by_region("COUNT(*) AS n", DEBT)), "q", CAT).plan)
    assert counts["sums"] == [] and counts["parts"] == []


def test_an_older_ledger_entry_without_the_field_is_not_related(tmp_path):
    """An entry written before `sums` was recorded: its sums are unknown, so it is not related (the
    behaviour before; guard.dominance reads it as summed, the conservative choice)."""
    first = compile_source(q(FILTERED), "q0", CAT).plan
    sig = {k: v for k, v in signature_of_plan(first).items() if k not in ("sums", "parts")}
    old = compile_source(q(SUMMED), "q1", CAT, earlier=[sig]).plan
    new = compile_source(q(SUMMED), "q1", CAT, earlier=[signature_of_plan(first)]).plan
    rules = [{n["attrs"].get("rule") for n in p["nodes"]} for p in (old, new)]
    assert "filter.parts" not in rules[0] and "filter.parts" in rules[1]


# ------------------------------------------------------------------ guard.dominance reads which columns were summed
S = "shelter_stays"


def _dominance(queries: list[str], strip: bool = False) -> bool:
    sigs = []
    for i, text in enumerate(queries):
        plan = compile_source(q(text), f"q{i}", STRICT, earlier=list(sigs)).plan
        sig = signature_of_plan(plan)
        sigs.append({k: v for k, v in sig.items() if k not in ("sums", "parts")} if strip else sig)
    return any(n["attrs"].get("rule") == "guard.dominance" for n in plan["nodes"])


def test_a_sum_after_a_count_only_release_has_no_dominance_test():
    """The earlier release summed nothing: no difference of two sums to test."""
    assert not _dominance([f"SELECT region, COUNT(*) AS n FROM {S} GROUP BY region;",
                           f"SELECT region, SUM(support_eur) AS s FROM {S} WHERE stay_days < 30 GROUP BY region;"])


def test_a_sum_after_a_sum_release_keeps_its_dominance_test():
    assert _dominance([f"SELECT region, SUM(support_eur) AS s FROM {S} GROUP BY region;",
                       f"SELECT region, SUM(support_eur) AS s FROM {S} WHERE stay_days < 30 GROUP BY region;"])


def test_a_sum_after_an_older_count_only_entry_keeps_its_dominance_test():
    """An entry without the field may have summed the column: tested, as before."""
    assert _dominance([f"SELECT region, COUNT(*) AS n FROM {S} GROUP BY region;",
                       f"SELECT region, SUM(support_eur) AS s FROM {S} WHERE stay_days < 30 GROUP BY region;"],
                      strip=True)


# ------------------------------------------------------------------ residual: cells that differ (6.13)
def test_sums_of_releases_whose_cells_differ_solve_a_small_group(tmp_path):
    """residual, spec/disclosure.md 6.13: the guard relates the first release's rest (debt 5000 or 7000,
    20 rows) to the second's cell (5000, 7000 or 9000, 30 rows), not their sums: the second's n minus
    that rest is the ten rows with 9000, and its SUM minus 9000 times ten, beside the rest's 20 rows,
    gives the one row with 7000."""
    world = [*DEBT_1, block(P, 10, exp_Region="North", debt_eur=9000)]
    counts, sums = north([FILTERED, by_region("COUNT(*) AS n, SUM(debt_eur) AS s",
                                              "WHERE debt_eur IN (5000, 7000, 9000)")], world, tmp_path)
    rest = counts["n"] - counts["m"]
    c = sums["n"] - rest
    b = (sums["s"] - 9000 * c - 5000 * rest) / (7000 - 5000)
    assert (rest, c, b) == (20, 10, 1)


def test_the_leakage_report_names_guard_dominance_only_where_it_tests():
    """After a count-only release the SUM has no dominance test, and the leakage report's guard item must
    not list guard.dominance (a rule listed is a rule the plan applies); after a SUM release it does."""
    def rules(queries: list[str]) -> list[str]:
        sigs = []
        for i, text in enumerate(queries):
            plan = compile_source(q(text), f"q{i}", STRICT, earlier=list(sigs)).plan
            sigs.append(signature_of_plan(plan))
        return next(item["rules"] for item in plan["leakage"] if item["item"] == "guard_outcome")
    second = f"SELECT region, SUM(support_eur) AS s FROM {S} WHERE stay_days < 30 GROUP BY region;"
    assert "guard.dominance" not in rules([f"SELECT region, COUNT(*) AS n FROM {S} GROUP BY region;", second])
    assert "guard.dominance" in rules([f"SELECT region, SUM(support_eur) AS s FROM {S} GROUP BY region;", second])
