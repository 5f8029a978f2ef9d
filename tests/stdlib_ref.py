"""An independent plaintext reference for the stdlib functions, and random data that stresses them.

The reference is written from spec/stdlib.md, not from stdlib/functions.py: Python's Decimal for
half-even rounding of the decimal as written in the CSV, datetime for calendar parts, a small
interpreter of the query AST with SQL's three-valued logic for WHERE. Values are what a CSV holds:
None for an empty field, int, Decimal, date, str or bool.
"""
from __future__ import annotations

import csv
import datetime as dt
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from insightql.compiler.syntax import ast as A
from insightql.compiler.check.catalog import load_catalog

TESTS = Path(__file__).resolve().parent
CATALOG_PATH = TESTS / "stdlib_catalog.toml"
CAT = load_catalog(CATALOG_PATH)
COLUMNS = CAT.datasets["a"].columns

REGION = {"NL": "Europe", "RO": "Europe", "XK": "Europe", "NG": "Africa", "BR": "Americas", "VN": "Asia",
          "AU": "Oceania", "AQ": "Unknown", "OTHER": "Unknown"}
"""region() of the test catalog's countries, from the UN M49 tables by hand (AQ is in no region)."""

SPECIAL = {  # values at bounds, at rounding ties and at calendar edges
    "integer": [0, 1, -1, 5, -5, 15, -15, 25, -25, 35, 45, 17, 18, 24, 25, 64, 65, 50, -50],
    "decimal": ["0.000", "0.05", "-0.05", "2.675", "1.005", "-0.125", "0.145", "0.15", "-0.25", "0.35", "1.25",
                "12.5", "-12.5", "5", "-5", "15", "999.95", "-999.95", "0.5", "-0.5", "250.5", "60.5", "-100"],
    "date": ["2020-02-29", "2020-12-31", "2021-01-01", "2021-03-31", "2021-04-01", "2022-06-30",
             "2022-07-01", "2023-09-30", "2023-10-01", "2024-12-31"],
}


# -- data -------------------------------------------------------------------------------------
def random_rows(n: int, rng: np.random.Generator, null_rate: float, edge_rate: float) -> list[dict[str, str]]:
    """n CSV rows of the test catalog; edge_rate of the values are bounds or SPECIAL values."""
    rows = []
    for _ in range(n):
        row = {}
        for name, col in COLUMNS.items():
            if col.nullable and rng.random() < null_rate:
                row[name] = ""
                continue
            edge = rng.random() < edge_rate
            if col.type == "category":
                row[name] = str(rng.choice(col.domain))
            elif col.type == "boolean":
                row[name] = "true" if rng.random() < 0.5 else "false"
            elif col.type == "integer":
                pool = [col.min, col.max] + [v for v in SPECIAL["integer"] if col.min <= v <= col.max]
                row[name] = str(rng.choice(pool) if edge else rng.integers(col.min, col.max + 1))
            elif col.type == "decimal":
                f = 10 ** col.scale
                pool = [f"{col.min:.{col.scale}f}", f"{col.max:.{col.scale}f}"] + SPECIAL["decimal"]
                row[name] = str(rng.choice(pool)) if edge else \
                    f"{rng.integers(col.min * f, col.max * f + 1) / f:.{col.scale}f}"
            else:  # date
                span = (col.max - col.min).days
                pool = [col.min.isoformat(), col.max.isoformat()] + SPECIAL["date"]
                day = col.min + dt.timedelta(days=int(rng.integers(0, span + 1)))
                row[name] = str(rng.choice(pool)) if edge else day.isoformat()
        rows.append(row)
    return rows


@st.composite
def row_sets(draw, max_rows: int = 60, min_rows: int = 0, null_rates=(0.0, 0.2, 0.9), edge_rates=(0.0, 0.4, 0.9)):
    """Hypothesis: CSV rows of the test catalog, of a few sizes, null rates and shares of edge values."""
    seed = draw(st.integers(0, 2 ** 32 - 1))
    n = draw(st.sampled_from(sorted({min_rows, min(max(min_rows, 1), max_rows), max_rows}))
             | st.integers(min_rows, max_rows))
    rng = np.random.default_rng(seed)
    return random_rows(n, rng, draw(st.sampled_from(null_rates)), draw(st.sampled_from(edge_rates)))


def write_rows(path: Path, rows: list[dict[str, str]]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)
    return str(path)


def value(name: str, text: str):
    """A CSV field as a Python value."""
    if text == "":
        return None
    t = COLUMNS[name].type
    return {"integer": int, "decimal": Decimal, "date": dt.date.fromisoformat,
            "boolean": lambda s: s == "true"}.get(t, str)(text)


# -- the functions ------------------------------------------------------------------------------
def _num(x) -> str:
    return str(int(x)) if x == int(x) else str(x)


def band(v, edges, age_style: bool):
    if v is None:
        return None
    i = sum(1 for e in edges if Decimal(str(e)) <= Decimal(v))  # a value equal to an edge starts the next band
    if i == 0:
        return f"<{_num(edges[0])}"
    if i == len(edges):
        return f"{_num(edges[-1])}+"
    lo, hi = edges[i - 1], edges[i]
    return f"{_num(lo)}-{_num(hi - 1)}" if age_style and lo == int(lo) else f"[{_num(lo)},{_num(hi)})"


def round_half_even(v, digits: int = 0):
    if v is None:
        return None
    out = Decimal(v).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN)
    return int(out) if digits <= 0 else out


def _first(vals):
    return next((v for v in vals if v is not None), None)


def _non_null(vals):
    return [v for v in vals if v is not None]


FUNCS = {
    "age_band": lambda v, edges=(18, 25, 35, 50, 65): band(v, list(edges), True),
    "bucket": lambda v, edges: band(v, edges, False),
    "year": lambda d: None if d is None else d.year,
    "month": lambda d: None if d is None else d.month,
    "quarter": lambda d: None if d is None else (d.month - 1) // 3 + 1,
    "coalesce": lambda *vs: _first(vs),
    "abs": lambda v: None if v is None else abs(v),
    "least": lambda *vs: min(_non_null(vs), default=None),
    "greatest": lambda *vs: max(_non_null(vs), default=None),
    "round": round_half_even,
    "region": lambda c: None if c is None else REGION[c],
}


# -- a small interpreter of row expressions ---------------------------------------------------
def evaluate(e: A.Expr, row: dict):
    """The value of a row expression under SQL semantics (None is NULL)."""
    if isinstance(e, A.Literal):
        return Decimal(str(e.value)) if e.kind == "decimal" else e.value
    if isinstance(e, A.ColumnRef):
        return row[e.name]
    if isinstance(e, A.ListLiteral):
        return [evaluate(i, row) for i in e.items]
    if isinstance(e, A.FuncCall):
        return FUNCS[e.name](*(evaluate(a, row) for a in e.args))
    if isinstance(e, A.UnaryOp):
        v = evaluate(e.operand, row)
        return None if v is None else (not v if e.op == "not" else -v)
    if isinstance(e, A.IsNull):
        return (evaluate(e.operand, row) is None) != e.negated
    if isinstance(e, A.InList):
        v = evaluate(e.operand, row)
        return None if v is None else (v in [evaluate(i, row) for i in e.items]) != e.negated
    if isinstance(e, A.Between):
        v, lo, hi = evaluate(e.operand, row), evaluate(e.low, row), evaluate(e.high, row)
        return None if None in (v, lo, hi) else (lo <= v <= hi) != e.negated
    if isinstance(e, A.BinOp) and e.op in ("and", "or"):
        a, b = evaluate(e.left, row), evaluate(e.right, row)
        if e.op == "and":
            return False if False in (a, b) else None if None in (a, b) else True
        return True if True in (a, b) else None if None in (a, b) else False
    if isinstance(e, A.BinOp):
        a, b = evaluate(e.left, row), evaluate(e.right, row)
        if a is None or b is None:
            return None
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "=": lambda: a == b,
                "<>": lambda: a != b, "<": lambda: a < b, "<=": lambda: a <= b, ">": lambda: a > b,
                ">=": lambda: a >= b}[e.op]()
    raise AssertionError(f"the reference does not evaluate {e!r}")
