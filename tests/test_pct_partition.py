"""pct(...) OVER (PARTITION BY g, ...): percents within groups of the released table (issue 17, item 2).

1. Syntax: parse, canonical form, round trip; OVER and PARTITION are keywords.
2. Checker: PARTITION BY takes GROUP BY expressions or their aliases (IQ223 otherwise), OVER only
   on pct() (IQ221), no aggregate inside (IQ221).
3. Plan: the pct column carries `pct_by` (key indices); nothing else of the plan changes.
4. Public stage (plaintext oracle): each partition's released values sum to 100; suppressed and
   withheld cells are left out of their partition's total and stay suppressed; HAVING before,
   LIMIT after; the result equals an independent computation on random counts.
"""
from __future__ import annotations

import math
import random
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.check.checker import check
from insightql.compiler.plaintext.results import Suppressed
from insightql.compiler.syntax.formatter import format_query
from insightql.compiler.syntax.parser import parse

import stdlib_ref as ref
from conftest import compile_plan, oracle_result

K = 3  # min_group_size of tests/stdlib_catalog.toml


# -- 1. syntax ---------------------------------------------------------------------------------
def test_over_partition_parses_and_formats_canonically():
    q = parse("select status, round(pct(count(*)) over (partition by status, status2), 1) as s "
              "from a group by status, status2")
    pct = q.select[1].expr.args[0]
    assert pct.name == "pct" and [g.name for g in pct.partition] == ["status", "status2"]
    text = format_query(q)
    assert "round(pct(COUNT(*)) OVER (PARTITION BY status, status2), 1) AS s" in text
    assert parse(text) == q and format_query(parse(text)) == text
    assert parse("SELECT pct(COUNT(*)) AS s FROM a").select[0].expr.partition is None
    assert parse('SELECT COUNT(*) AS "over", COUNT(*) AS "partition" FROM a').select[1].alias == "partition"


# -- 2. checker --------------------------------------------------------------------------------
def _codes(text: str) -> list[tuple[str, str]]:
    _, diags = check(ref.CAT, parse("@purpose research\n" + text))
    return [(d.code, d.message) for d in diags]


def test_partition_by_group_keys_or_their_aliases():
    assert _codes("SELECT status, status2, pct(COUNT(*)) OVER (PARTITION BY status) AS s FROM a "
                  "GROUP BY status, status2") == []
    assert _codes("SELECT coalesce(status, 'none') AS st, status2, pct(COUNT(*)) OVER (PARTITION BY st) AS s "
                  "FROM a GROUP BY st, status2") == []
    assert _codes("SELECT year(day) AS yr, status, pct(SUM(hours)) OVER (PARTITION BY year(day)) AS s "
                  "FROM a GROUP BY year(day), status") == []


def test_partition_by_anything_else_is_an_error_with_a_hint():
    _, diags = check(ref.CAT, parse("@purpose research\nSELECT status, pct(COUNT(*)) OVER (PARTITION BY status2) "
                                    "AS s FROM a GROUP BY status"))
    assert [d.code for d in diags] == ["IQ223"]
    assert "PARTITION BY `status2`" in diags[0].message and "`status`" in diags[0].hints[0]
    assert [c for c, _ in _codes("SELECT pct(COUNT(*)) OVER (PARTITION BY status) AS s FROM a")] == ["IQ223"]
    assert [c for c, _ in _codes("SELECT status, pct(COUNT(*)) OVER (PARTITION BY nope) AS s FROM a "
                                 "GROUP BY status")] == ["IQ203"]
    assert [c for c, _ in _codes("SELECT status, pct(COUNT(*)) OVER (PARTITION BY COUNT(*)) AS s FROM a "
                                 "GROUP BY status")] == ["IQ221"]


def test_over_only_on_pct_and_pct_only_as_a_whole_column():
    assert _codes("SELECT status, COUNT(*) OVER (PARTITION BY status) AS n FROM a GROUP BY status") == \
        [("IQ221", "OVER (PARTITION BY ...) is not allowed on `COUNT`")]
    assert [c for c, _ in _codes("SELECT status, COUNT(*) AS n FROM a GROUP BY status "
                                 "HAVING pct(COUNT(*)) OVER (PARTITION BY status) > 5")] == ["IQ221"]


# -- 3. plan -----------------------------------------------------------------------------------
def _table(plan: dict) -> dict:
    return next(n for n in plan["nodes"] if n["op"] == "table")["attrs"]


def test_plan_marks_the_partition_keys_and_reveals_the_count_as_without_it():
    text = "@purpose research\nSELECT status2, status, COUNT(*) AS n, {} AS s FROM a GROUP BY status, status2"
    with_by = compile_plan(text.format("round(pct(COUNT(*)) OVER (PARTITION BY status), 1)"), ref.CAT)
    without = compile_plan(text.format("round(pct(COUNT(*)), 1)"), ref.CAT)
    outs = _table(with_by)["outputs"]
    assert outs[3]["pct"] is True and outs[3]["pct_by"] == [0] and "pct_by" not in _table(without)["outputs"][3]
    assert [n for n in with_by["nodes"] if n["op"] != "table"] == [n for n in without["nodes"] if n["op"] != "table"]
    leak = [i["detail"] for i in with_by["leakage"] if i.get("column") == "s" and i["item"] == "output"]
    assert "within the cells with the same status" in leak[0]


# -- 4. public stage ---------------------------------------------------------------------------
def _rows(counts: dict[tuple, int]) -> list[dict[str, str]]:
    """Rows of dataset a: `n` rows per (status, status2); None is an empty (NULL) value."""
    base = ref.random_rows(1, np.random.default_rng(1), 0, 0)[0]
    return [dict(base, status=s or "", status2=s2 or "", hours="5", amount="1.00")
            for (s, s2), n in counts.items() for _ in range(n)]


def _run(text: str, rows: list[dict[str, str]]):
    plan = compile_plan("@purpose research\n" + text, ref.CAT)
    with tempfile.TemporaryDirectory() as tmp:
        return oracle_result(plan, ref.CAT, {"a": ref.write_rows(Path(tmp) / "a.csv", rows)})


QUERY = ("SELECT status, status2, COUNT(*) AS n, pct(COUNT(*)) OVER (PARTITION BY status) AS s, "
         "pct(COUNT(*)) AS whole FROM a GROUP BY status, status2")


def test_percent_within_each_partition_leaves_suppressed_cells_out():
    t = _run(QUERY, _rows({("open", "closed"): 30, ("open", "pending"): 10, ("open", None): 2,
                           ("closed", "closed"): 5, ("closed", "pending"): 15}))
    by = {tuple(r[:2]): r[2:] for r in t.rows}
    assert by[("open", "closed")][:2] == [30, 75.0] and by[("open", "pending")][:2] == [10, 25.0]
    assert isinstance(by[("open", None)][1], Suppressed)  # 2 < k: not in the open partition's total
    assert by[("closed", "closed")][:2] == [5, 25.0] and by[("closed", "pending")][:2] == [15, 75.0]
    assert by[("open", "closed")][2] == pytest.approx(50.0)  # the whole column: 30 of 60 released
    assert "s: percent of the total of the 4 released value(s) in this column within each of its 2 " \
           "partition(s) by status; the" in "\n".join(t.notes)


def test_having_before_and_limit_after_the_partitioned_percent():
    rows = _rows({("open", "closed"): 30, ("open", "pending"): 10, ("closed", "closed"): 6, ("closed", "pending"): 18})
    t = _run("SELECT status, status2, round(pct(COUNT(*)) OVER (PARTITION BY status), 1) AS s FROM a "
             "GROUP BY status, status2 HAVING COUNT(*) >= 8 ORDER BY s DESC LIMIT 2", rows)
    assert t.rows == [["closed", "pending", 100.0], ["open", "closed", 75.0]]  # closed/closed: HAVING


@pytest.mark.parametrize("seed", range(4))
def test_partitioned_percent_equals_an_independent_computation(seed):
    rnd = random.Random(seed)
    values = ["open", "closed", None]
    counts = {(s, s2): rnd.choice([0, 1, 2, 3, 5, 8, 20]) for s in values for s2 in ["closed", "pending", None]}
    rows = _rows(counts)
    t = _run(QUERY, rows)
    pooled = Counter((r["status"] or None, r["status2"] or None) for r in rows)
    # released: a cell with >= k rows (the cell rule of this one-owner catalog: rows and persons)
    released = {c: n for c, n in pooled.items() if n >= K}
    totals = Counter()
    for (s, _), n in released.items():
        totals[s] += n
    for r in t.rows:
        cell, n, share = tuple(r[:2]), r[2], r[3]
        if isinstance(n, Suppressed):
            assert cell not in released and isinstance(share, Suppressed)
            continue
        assert n == released[cell]
        assert math.isclose(share, 100.0 * n / totals[cell[0]], abs_tol=1e-9)
