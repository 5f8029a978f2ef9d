"""filter.parts over the value classes of summed columns (spec/disclosure.md 2.15, formerly 6.13).

A WHERE (or FILTER) that leaves a summed column few values makes SUM, AVG or VAR beside COUNT
equations in the numbers of rows holding each value, whatever the column's declared width:
`WHERE debt_eur IN (100, 5000)` gives the rows with 5000 as (SUM - 100 n) / 4900. Each attack is
run by a receiver on the plaintext oracle (tests/redteam_data.py); the UNION forms are run by the
NGO, which contributed rows and subtracts its own (the observer's complement, 2.3). Controls:
honest queries keep their values.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source

from conftest import CATALOG
from redteam_data import block, cells, count_rows, q, releases

CAT = load_catalog(CATALOG)
K = 10
P, N = "police_victims", "ngo_clients"
UNION = f"{P} UNION ALL {N}"


def _wide_catalog(folder: Path):
    """catalog.toml plus a wide integer measure stay_days (0..100000) in police_victims."""
    path = folder / "wide.toml"
    path.write_text(CATALOG.read_text(encoding="utf-8").replace(
        'interview_notes_len = { type = "integer", min = 0, max = 100000, role = "hidden" }',
        'interview_notes_len = { type = "integer", min = 0, max = 100000, role = "hidden" }\n'
        'stay_days = { type = "integer", min = 0, max = 100000, role = "measure", clamp = [0, 100000] }', 1),
        encoding="utf-8")
    return load_catalog(path)


def north(queries: list[str], world, folder: Path, cat=CAT) -> dict:
    plan, _, table = releases(queries, world, cat, folder)[-1]
    return cells(plan, table)[("North",)]


def small(x) -> bool:
    """A derived number that is a group of 1..k-1 rows."""
    return x is not None and 1 <= round(x) <= K - 1


def solve(rows: list[list], values: list, unknown: int):
    """The `unknown`-th class count from the revealed equations (None when some value is withheld)."""
    if any(v is None for v in values):
        return None
    return float(np.linalg.lstsq(np.array(rows, dtype=float), np.array(values, dtype=float), rcond=None)[0][unknown])


def by_region(cols: str, where: str, frm: str = P) -> str:
    return f"SELECT exp_Region, {cols} FROM {frm} {where} GROUP BY exp_Region;"


# ------------------------------------------------------------------ one wide or decimal column, two values
DEBT_1 = [block(P, 39, exp_Region="North", debt_eur=100), block(P, 1, exp_Region="North", debt_eur=5000)]
DEBT_WHERES = {
    "in": "WHERE debt_eur IN (100, 5000)",
    "or": "WHERE debt_eur = 100 OR debt_eur = 5000",
    "between_and_in": "WHERE debt_eur BETWEEN 100 AND 5000 AND debt_eur IN (100, 5000, 7000)",
}


@pytest.mark.parametrize("name", sorted(DEBT_WHERES))
def test_sum_of_a_decimal_over_two_values(name, tmp_path):
    """(SUM - 100 n) / 4900 is the one row with a debt of 5000 (GROUP BY region, debt_eur would suppress it)."""
    t = north([by_region("COUNT(*) AS n, SUM(debt_eur) AS s", DEBT_WHERES[name])], DEBT_1, tmp_path)
    derived = solve([[1, 1], [100, 5000]], [t["n"], t["s"]], 1)
    assert not small(derived), f"rows with a debt of 5000: {derived}"


def test_avg_of_a_decimal_with_cents(tmp_path):
    """Decimals keep their scale: 100.25 and 100.5 are two classes 0.25 apart."""
    world = [block(P, 39, exp_Region="North", debt_eur=100.25), block(P, 1, exp_Region="North", debt_eur=100.5)]
    t = north([by_region("COUNT(*) AS n, AVG(debt_eur) AS a", "WHERE debt_eur IN (100.25, 100.5)")], world, tmp_path)
    s = None if t["a"] is None or t["n"] is None else t["a"] * t["n"]
    derived = solve([[1, 1], [100.25, 100.5]], [t["n"], s], 1)
    assert not small(derived), f"rows with a debt of 100.50: {derived}"


def test_sum_of_a_wide_integer_over_a_range_of_two(tmp_path):
    cat = _wide_catalog(tmp_path)
    world = [block(P, 39, exp_Region="North", stay_days=100), block(P, 1, exp_Region="North", stay_days=101)]
    t = north([by_region("COUNT(*) AS n, SUM(stay_days) AS s", "WHERE stay_days BETWEEN 100 AND 101")],
              world, tmp_path, cat)
    derived = solve([[1, 1], [100, 101]], [t["n"], t["s"]], 1)
    assert not small(derived), f"rows with a stay of 101 days: {derived}"


def test_variance_of_a_decimal_over_three_values(tmp_path):
    world = [block(P, 20, exp_Region="North", debt_eur=100), block(P, 20, exp_Region="North", debt_eur=200),
             block(P, 1, exp_Region="North", debt_eur=5000)]
    t = north([by_region("COUNT(*) AS n, SUM(debt_eur) AS s, VAR(debt_eur) AS v",
                         "WHERE debt_eur IN (100, 200, 5000)")], world, tmp_path)
    sq = None if None in (t["n"], t["s"], t["v"]) else t["v"] * (t["n"] - 1) + t["s"] ** 2 / t["n"]
    derived = solve([[1, 1, 1], [100, 200, 5000], [100 ** 2, 200 ** 2, 5000 ** 2]], [t["n"], t["s"], sq], 2)
    assert not small(derived), f"rows with a debt of 5000: {derived}"


def test_a_filter_and_a_decimal_sum(tmp_path):
    """The value classes split by a counted part: FILTER (WHERE debt_eur = 100) beside SUM over {100, 5000, 7000}
    leaves SUM - 100 m = 5000 a + 7000 b and n - m = a + b: the one row with 7000."""
    world = [block(P, 20, exp_Region="North", debt_eur=100), block(P, 19, exp_Region="North", debt_eur=5000),
             block(P, 1, exp_Region="North", debt_eur=7000)]
    t = north([by_region("COUNT(*) AS n, COUNT(*) FILTER (WHERE debt_eur = 100) AS m, SUM(debt_eur) AS s",
                         "WHERE debt_eur IN (100, 5000, 7000)")], world, tmp_path)
    derived = solve([[1, 1, 1], [1, 0, 0], [100, 5000, 7000]], [t["n"], t["m"], t["s"]], 2)
    assert not small(derived), f"rows with a debt of 7000: {derived}"


def test_sum_of_a_decimal_on_an_observers_complement(tmp_path):
    """The NGO contributed 30 rows (debt 100) to the UNION and subtracts them: the police's one row with 5000
    is read off although the cell holds >= k rows of each value."""
    world = [block(P, 19, exp_Region="North", debt_eur=100), block(P, 1, exp_Region="North", debt_eur=5000),
             block(N, 20, exp_Region="North", debt_eur=100, person_id=range(1000, 1020)),
             block(N, 10, exp_Region="North", debt_eur=5000, person_id=range(2000, 2010))]
    t = north([by_region("COUNT(*) AS n, SUM(debt_eur) AS s", "WHERE debt_eur IN (100, 5000)", UNION)],
              world, tmp_path)
    own_n = count_rows(CAT, world, N, exp_Region="North")
    own_s = 100 * 20 + 5000 * 10
    vals = [None if t["n"] is None else t["n"] - own_n, None if t["s"] is None else t["s"] - own_s]
    derived = solve([[1, 1], [100, 5000]], vals, 1)
    assert not small(derived), f"the police's rows with a debt of 5000: {derived}"


# ------------------------------------------------------------------ two summed columns related by the WHERE
JOINT = ("WHERE (prs_Age = 20 AND hours_worked_week = 40) OR (prs_Age = 30 AND hours_worked_week = 60) "
         "OR (prs_Age = 40 AND hours_worked_week = 50)")
JOINT_1 = [block(P, 20, exp_Region="North", prs_Age=20, hours_worked_week=40),
           block(P, 19, exp_Region="North", prs_Age=30, hours_worked_week=60),
           block(P, 1, exp_Region="North", prs_Age=40, hours_worked_week=50)]


def test_two_summed_columns_solve_three_classes(tmp_path):
    """Each column alone has three values (one sum cannot split them); the two sums and n are three independent
    equations in the classes (20, 40), (30, 60), (40, 50)."""
    t = north([by_region("COUNT(*) AS n, SUM(prs_Age) AS a, SUM(hours_worked_week) AS h", JOINT)], JOINT_1, tmp_path)
    derived = solve([[1, 1, 1], [20, 30, 40], [40, 60, 50]], [t["n"], t["a"], t["h"]], 2)
    assert not small(derived), f"rows aged 40 working 50 hours: {derived}"


def test_two_decimal_sums_over_pairs(tmp_path):
    """The same with one wide decimal: (debt, age) in {(100, 20), (5000, 30), (7000, 40)}."""
    where = ("WHERE (debt_eur = 100 AND prs_Age = 20) OR (debt_eur = 5000 AND prs_Age = 30) "
             "OR (debt_eur = 7000 AND prs_Age = 40)")
    world = [block(P, 20, exp_Region="North", debt_eur=100, prs_Age=20),
             block(P, 19, exp_Region="North", debt_eur=5000, prs_Age=30),
             block(P, 1, exp_Region="North", debt_eur=7000, prs_Age=40)]
    t = north([by_region("COUNT(*) AS n, SUM(debt_eur) AS d, AVG(prs_Age) AS a", where)], world, tmp_path)
    a = None if None in (t["a"], t["n"]) else t["a"] * t["n"]
    derived = solve([[1, 1, 1], [100, 5000, 7000], [20, 30, 40]], [t["n"], t["d"], a], 2)
    assert not small(derived), f"rows with a debt of 7000: {derived}"


# ------------------------------------------------------------------ controls: honest queries keep their values
def test_control_two_values_each_at_least_k(tmp_path):
    world = [block(P, 30, exp_Region="North", debt_eur=100), block(P, 10, exp_Region="North", debt_eur=5000)]
    t = north([by_region("COUNT(*) AS n, SUM(debt_eur) AS s", DEBT_WHERES["in"])], world, tmp_path)
    assert (t["n"], t["s"]) == (40, 30 * 100 + 10 * 5000)


def test_control_wide_sum_without_such_a_where(tmp_path):
    """A range WHERE leaves the decimal thousands of values: nothing to solve, the sum is released."""
    t = north([by_region("COUNT(*) AS n, SUM(debt_eur) AS s", "WHERE debt_eur >= 100 AND debt_eur < 6000")],
              DEBT_1, tmp_path)
    assert (t["n"], t["s"]) == (40, 39 * 100 + 5000)


def test_control_two_sums_over_wide_ranges(tmp_path):
    t = north([by_region("COUNT(*) AS n, SUM(prs_Age) AS a, SUM(hours_worked_week) AS h",
                         "WHERE prs_Age >= 18 AND hours_worked_week > 30")], JOINT_1, tmp_path)
    assert (t["n"], t["a"], t["h"]) == (40, 20 * 20 + 19 * 30 + 40, 20 * 40 + 19 * 60 + 50)


def test_control_joint_classes_each_at_least_k(tmp_path):
    world = [block(P, 20, exp_Region="North", prs_Age=20, hours_worked_week=40),
             block(P, 10, exp_Region="North", prs_Age=30, hours_worked_week=60),
             block(P, 10, exp_Region="North", prs_Age=40, hours_worked_week=50)]
    t = north([by_region("COUNT(*) AS n, SUM(prs_Age) AS a, SUM(hours_worked_week) AS h", JOINT)], world, tmp_path)
    assert (t["n"], t["a"], t["h"]) == (40, 400 + 300 + 400, 800 + 600 + 500)


# ------------------------------------------------------------------ whole classes that only the sums determine
def test_sums_determine_a_whole_class_of_parts(tmp_path):
    """Two FILTERs make four classes of parts, one value each (40, 45, 60, 70): n and the two counts leave one
    free direction, the SUM closes it. The class (>= 50, in (40, 60)) is the one row with 60 hours, a union of
    whole classes of parts that the counts alone do not determine."""
    world = [block(P, 12, exp_Region="North", hours_worked_week=40), block(P, 12, exp_Region="North", hours_worked_week=45),
             block(P, 1, exp_Region="North", hours_worked_week=60), block(P, 12, exp_Region="North", hours_worked_week=70)]
    cols = ("COUNT(*) AS n, COUNT(*) FILTER (WHERE hours_worked_week >= 50) AS hi, "
            "COUNT(*) FILTER (WHERE hours_worked_week IN (40, 60)) AS mid, SUM(hours_worked_week) AS s")
    t = north([by_region(cols, "WHERE hours_worked_week IN (40, 45, 60, 70)")], world, tmp_path)
    a = [[1, 1, 1, 1], [0, 0, 1, 1], [1, 0, 1, 0], [40, 45, 60, 70]]
    derived = solve(a, [t["n"], t["hi"], t["mid"], t["s"]], 2)
    assert not small(derived), f"rows with 60 hours: {derived}"
