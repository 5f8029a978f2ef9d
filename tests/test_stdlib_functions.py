"""Stdlib functions against an independent reference (tests/stdlib_ref.py), without MPC.

1. Row by row: every function's lowered expression, evaluated by compiler/plaintext/local_eval.py on a CSV
   the runtime's loader reads, equals the reference on random rows with nulls, bounds, rounding
   ties and calendar edges; every value lies within the inferred type (bounds, category domain).
2. Whole queries: the plaintext oracle's released table (functions in WHERE and GROUP BY, pct)
   equals the reference's counts, cell rule and shares. tests/test_stdlib_mpc.py runs two of
   these queries through real MPC parties.
3. pct() on the public stage: suppressed cells, HAVING, LIMIT, rounded counts, a zero total; the
   columns are the ones the plan marks `pct`, whatever the source says; pct of a STDDEV.
"""
from __future__ import annotations

import math
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.check.checker import check, column_type
from insightql.compiler.plan.lower_expr import Lowering
from insightql.compiler.plaintext.local_eval import evaluate
from insightql.compiler.plaintext.results import Suppressed
from insightql.compiler.syntax.parser import parse
from insightql.runtime.data.loader import load_dataset
from insightql.stdlib.types import days_to_date

import stdlib_ref as ref
from rules_ref import Cell, Rules, holdings
from conftest import compile_plan, oracle_result
from stdlib_ref import row_sets
from tiers import examples

SETTINGS = settings(max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- 1. row by row ------------------------------------------------------------------------------
EXPRESSIONS = [
    "age_band(age)", "age_band(age, [0, 18, 60.5])", "age_band(amount, [-100, 0, 250.5])",
    "bucket(x, [-10, 0, 10])", "bucket(amount, [-500.25, 0, 0.5, 999])", "bucket(age, [18])",
    "year(day)", "month(day)", "quarter(day)",
    "coalesce(x, y)", "coalesce(x, y, 7)", "coalesce(x, amount)", "coalesce(status, 'none')",
    "coalesce(status, 'open')", "coalesce(status, status2)", "coalesce(day, DATE '2020-01-01')",
    "coalesce(flag, false)", "coalesce(NULL, x)",
    "abs(x)", "abs(amount)", "abs(x - 60)",
    "least(x, y)", "least(x, y, amount)", "greatest(x, y)", "greatest(x, -3)", "least(age, 40)",
    "round(amount)", "round(amount, 1)", "round(amount, 2)", "round(amount, -1)", "round(amount, -2)", "round(x, -1)",
    "round(age, -2)", "round(amount, 3)", "round(x, 1)",
    "region(country)", "region(coalesce(country, 'OTHER'))",
]


def lowered(expr: str):
    """(row-level IR, inferred type) of `expr` over dataset `a`."""
    q = parse(f"@purpose research\nSELECT COUNT(*) AS n FROM a WHERE ({expr}) IS NULL")
    cq, diags = check(ref.CAT, q)
    assert not diags, [d.message for d in diags]
    e = q.where.operand
    return Lowering(cq).expr(e), cq.type_of(e)


def decode(values, null, i: int, t):
    if null[i]:
        return None
    v = values[i]
    if t.kind == "category":
        return t.domain[int(v)]
    if t.kind == "date":
        return days_to_date(int(v))
    if t.kind == "bool":
        return bool(v)
    return int(v) if t.kind == "int" else float(v)


def load(rows: list[dict[str, str]]):
    columns = {n: column_type(c).to_json() for n, c in ref.COLUMNS.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = ref.write_rows(Path(tmp) / "a.csv", rows)
        return load_dataset(path, "a", ref.CAT.datasets["a"], columns)


def same(got, want) -> bool:
    if got is None or want is None or isinstance(want, (str, bool)) or not isinstance(got, float):
        return got == want
    return math.isclose(got, float(want), rel_tol=1e-12, abs_tol=1e-9)


def within(got, t) -> bool:
    if got is None:
        return t.nullable
    if t.kind == "category":
        return got in t.domain
    if t.kind in ("int", "decimal"):
        return t.lo - 1e-9 <= got <= t.hi + 1e-9
    return True


@pytest.mark.parametrize("expr", EXPRESSIONS)
@SETTINGS
@given(rows=row_sets())
def test_function_equals_reference_row_by_row(expr, rows):
    ir, t = lowered(expr)
    table, n = load(rows)
    out = evaluate(ir, table, n)
    e = parse(f"SELECT {expr} AS v FROM a").select[0].expr
    for i, raw in enumerate(rows):
        row = {name: ref.value(name, s) for name, s in raw.items()}
        want, got = ref.evaluate(e, row), decode(out.values, out.null, i, t)
        assert same(got, want), f"{expr} on {raw}: got {got!r}, reference {want!r}"
        assert within(got, t), f"{expr} = {got!r} is outside its type {t.describe()}"


def test_rounding_ties_follow_the_written_decimal():
    ir, _ = lowered("round(amount, 1)")
    table, n = load([dict(ref.random_rows(1, np.random.default_rng(0), 0, 0)[0], amount=v)
                     for v in ("0.05", "0.15", "0.25", "-0.35", "2.67", "999.95")])
    assert list(evaluate(ir, table, n).values) == [0.0, 0.2, 0.2, -0.4, 2.7, 1000.0]
    ir, _ = lowered("round(amount, 2)")  # 2.675 is stored as 2.67499999...; the owner wrote 2.675
    table, n = load([dict(ref.random_rows(1, np.random.default_rng(0), 0, 0)[0], amount=v)
                     for v in ("2.675", "1.005", "-0.125", "0.145")])
    assert list(evaluate(ir, table, n).values) == [2.68, 1.0, -0.12, 0.14]
    ir, t = lowered("round(x, -1)")
    table, n = load([dict(ref.random_rows(1, np.random.default_rng(0), 0, 0)[0], x=v)
                     for v in ("15", "25", "-15", "-25", "50", "-50")])
    assert list(evaluate(ir, table, n).values) == [20, 20, -20, -20, 50, -50]
    assert (t.lo, t.hi) == (-50, 50)


# -- 2. whole queries through the oracle --------------------------------------------------------
QUERIES = {
    "bands_and_years": """@purpose research
SELECT age_band(age, [0, 18, 60]) AS ab, year(day) AS yr, COUNT(*) AS n, round(pct(COUNT(*)), 2) AS share
FROM a UNION ALL b
WHERE (abs(x - 5) <= 40 OR greatest(x, y) IS NULL OR least(x, y) < -20)
  AND bucket(coalesce(x, y, 0), [-10, 0, 10]) <> '<-10' AND quarter(day) <> 2
GROUP BY ab, yr;""",
    "regions_and_labels": """@purpose research
SELECT region(coalesce(country, 'AQ')) AS r, coalesce(status2, status, 'none') AS st, COUNT(*) AS n,
       pct(COUNT(*)) AS share
FROM a UNION ALL b
WHERE (month(day) IN (1, 2, 3, 12) OR year(day) >= 2024) AND round(amount, -1) >= -500
  AND round(amount, 1) <> 0.5 AND round(age, -1) BETWEEN 10 AND 100
GROUP BY r, st;""",
    "quarters_and_countries": """@purpose research
SELECT quarter(day) AS q, region(country) AS r, coalesce(status, 'none') AS st, COUNT(*) AS n
FROM a UNION ALL b
WHERE country IN ('NL', 'AQ', 'XK', 'OTHER') OR greatest(age, hours) > 90
GROUP BY q, r, st;""",
}
MPC_QUERIES = ["bands_and_years", "regions_and_labels"]
"""The queries tests/test_stdlib_mpc.py runs through real parties (few cells, so some are released)."""


def expected(text: str, rows: dict[str, list[dict[str, str]]]):
    """{key tuple: count or None (suppressed)} and {key: share} from the reference."""
    q = parse(text)
    cq, _ = check(ref.CAT, q)
    datasets = [t.name for t in q.tables()]
    per = {d: Counter() for d in datasets}
    for d in datasets:
        for raw in rows[d]:
            row = {name: ref.value(name, s) for name, s in raw.items()}
            if q.where is None or ref.evaluate(q.where, row) is True:
                per[d][tuple(_label(ref.evaluate(g, row)) for g in cq.group_by)] += 1
    counts = sum(per.values(), Counter())
    k = ref.CAT.datasets[datasets[0]].policy.min_group_size
    owners = {d: ref.CAT.datasets[d].owner for d in datasets}  # both receive: each part must hold k rows
    rules = Rules(k, 1, holdings(set(owners.values()), {"police", "ngo"}, len(ref.CAT.party_names())))
    released = {key: c for key, c in counts.items() if rules.cell(Cell({d: per[d][key] for d in datasets}, owners))}
    total = sum(released.values())
    return released, {key: 100.0 * c / total for key, c in released.items()}


def _label(v):
    return v.isoformat() if hasattr(v, "isoformat") else v


def assert_oracle_matches_reference(name: str, rows: dict[str, list[dict[str, str]]]):
    text = QUERIES[name]
    plan = compile_plan(text, ref.CAT)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {d: ref.write_rows(Path(tmp) / f"{d}.csv", r) for d, r in rows.items()}
        table = oracle_result(plan, ref.CAT, paths)
    counts, shares = expected(text, rows)
    nk = len(parse(text).group_by)
    n_col = table.columns.index("n")
    seen = set()
    for r in table.rows:
        key = tuple(r[:nk])
        seen.add(key)
        if key not in counts:
            assert isinstance(r[n_col], Suppressed), f"{name} {key}: {r}"
            continue
        assert r[n_col] == counts[key], f"{name} {key}: oracle {r[n_col]}, reference {counts[key]}"
        if "share" in table.columns:
            s = r[table.columns.index("share")]
            digits = 2 if "round(pct" in text else None
            want = round(shares[key], digits) if digits else shares[key]
            assert math.isclose(s, want, abs_tol=1e-9), f"{name} {key}: share {s}, reference {want}"
    assert set(counts) <= seen, f"{name}: cells with rows missing from the table: {set(counts) - seen}"


@pytest.mark.parametrize("name", list(QUERIES))
@settings(max_examples=examples(10), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=row_sets(150), b=row_sets(150))
def test_query_oracle_equals_reference(name, a, b):
    assert_oracle_matches_reference(name, {"a": a, "b": b})


# -- 3. pct() on the public stage -----------------------------------------------------------------
def _rows(spec: dict[str, int]) -> list[dict[str, str]]:
    """Rows of dataset a: `count` rows per status (None: null status)."""
    base = ref.random_rows(1, np.random.default_rng(1), 0, 0)[0]
    return [dict(base, status=s or "", amount="1.00") for s, n in spec.items() for _ in range(n)]


def _run(text: str, rows: list[dict[str, str]]):
    plan = compile_plan("@purpose research\n" + text, ref.CAT)
    with tempfile.TemporaryDirectory() as tmp:
        return oracle_result(plan, ref.CAT, {"a": ref.write_rows(Path(tmp) / "a.csv", rows)})


def test_pct_leaves_suppressed_cells_out_of_the_total():
    t = _run("SELECT status, COUNT(*) AS n, pct(COUNT(*)) AS share FROM a GROUP BY status",
             _rows({"open": 30, "closed": 10, None: 2}))
    by = {r[0]: r[1:] for r in t.rows}
    assert by["open"] == [30, 75.0] and by["closed"] == [10, 25.0]
    assert isinstance(by[None][1], Suppressed)
    assert t.notes[-1] == "share: percent of the total of the 2 released value(s) in this column; " \
                          "the 1 suppressed are not in the total."


def test_pct_after_having_before_limit_and_ordered_by_alias():
    t = _run("SELECT status, COUNT(*) AS n, round(pct(COUNT(*)), 1) AS share FROM a GROUP BY status "
             "HAVING COUNT(*) >= 5 ORDER BY share DESC LIMIT 1", _rows({"open": 10, "closed": 20, None: 4}))
    assert t.rows == [["closed", 20, 66.7]]
    t = _run("SELECT status, round(pct(COUNT(*))) AS share, round(pct(COUNT(*)), -1) AS tens FROM a "
             "GROUP BY status", _rows({"open": 10, "closed": 20}))
    assert [r[1:] for r in t.rows if r[0]] == [[33, 30], [67, 70]]
    assert all(type(v) is int for r in t.rows if r[0] for v in r[1:])  # the columns' type is int


def test_pct_of_rounded_counts_and_of_a_zero_total(tmp_path):
    text = ref.CATALOG_PATH.read_text(encoding="utf-8").replace("min_group_size = 3\n",
                                                                 "min_group_size = 3\nround_counts_to = 5\n", 1)
    (tmp_path / "catalog.toml").write_text(text, encoding="utf-8")
    cat = load_catalog(tmp_path / "catalog.toml")
    plan = compile_plan("@purpose research\nSELECT status, COUNT(*) AS n, pct(COUNT(*)) AS share FROM a "
                        "GROUP BY status", cat)
    rows = _rows({"open": 12, "closed": 13})
    t = oracle_result(plan, cat, {"a": ref.write_rows(tmp_path / "a.csv", rows)})
    assert {r[0]: r[1:] for r in t.rows if r[0]} == {"open": [10, 50.0], "closed": [10, 50.0]}
    t = _run("SELECT status, SUM(hours) AS s, pct(SUM(hours)) AS share FROM a GROUP BY status",
             [dict(r, hours="0") for r in rows])
    assert [r[1:] for r in t.rows if r[0]] == [[0, None], [0, None]]


def test_pct_columns_are_marked_in_the_plan_not_read_from_the_source():
    plan = compile_plan("@purpose research\nSELECT status, COUNT(*) AS n, pct(COUNT(*)) AS share, "
                        "round(pct(COUNT(*)), 1) AS r FROM a GROUP BY status", ref.CAT)
    outs = next(n for n in plan["nodes"] if n["op"] == "table")["attrs"]["outputs"]
    assert [o.get("pct") for o in outs] == [None, None, True, True] and outs[3]["round"] == {"round": 1}
    plan["query"]["source"] = "-- the public stage does not read the source"
    with tempfile.TemporaryDirectory() as tmp:
        t = oracle_result(plan, ref.CAT, {"a": ref.write_rows(Path(tmp) / "a.csv", _rows({"open": 20, "closed": 10}))})
    assert {r[0]: r[1:] for r in t.rows if r[0]} == {"open": [20, pytest.approx(200 / 3), 66.7],
                                                      "closed": [10, pytest.approx(100 / 3), 33.3]}


def test_pct_of_a_standard_deviation_takes_the_root_first():
    rows = [dict(r, hours=str(h)) for r, h in zip(_rows({"open": 10, "closed": 10}), [10, 20] * 5 + [0, 40] * 5)]
    t = _run("SELECT status, STDDEV(hours) AS sd, pct(STDDEV(hours)) AS share FROM a GROUP BY status", rows)
    outs = next(n for n in compile_plan("@purpose research\nSELECT pct(STDDEV(hours)) AS p FROM a", ref.CAT)["nodes"]
                if n["op"] == "table")["attrs"]["outputs"]
    assert outs[0]["post"] == "sqrt" and outs[0]["pct"] is True
    by = {r[0]: r[1:] for r in t.rows if r[0]}
    assert by["open"][1] == pytest.approx(100 * by["open"][0] / (by["open"][0] + by["closed"][0]))
    assert by["open"][1] == pytest.approx(20.0, abs=1e-4) and by["closed"][1] == pytest.approx(80.0, abs=1e-4)


# -- 4. the examples of spec/stdlib.md run on the sample data -----------------------------------
def test_spec_examples_run_on_the_sample_data():
    import re

    root = Path(__file__).resolve().parents[1]
    cat = load_catalog(root / "examples" / "catalog.toml")
    data = {d: str(root / "examples" / "data" / f"{d}.csv") for d in cat.datasets}
    text = (root / "spec" / "stdlib.md").read_text(encoding="utf-8")
    for q in re.findall(r"```iq\n(.*?)```", text, flags=re.S):
        table = oracle_result(compile_plan(q, cat, "spec/stdlib.md"), cat, data)
        released = [r for r in table.rows if not any(isinstance(v, Suppressed) for v in r)]
        assert released, f"no released row:\n{q}"
        for name in (c for c in table.columns if "pct" in c):
            i = table.columns.index(name)
            assert sum(r[i] for r in released) == pytest.approx(100, abs=0.05 * len(released)), q
