"""Aggregate functions of the language, each declared once: signature, argument, result type,
whether a measure column allows it by default, the disclosure traits the checker enforces, and
its meaning on one cell's values (the plaintext reference the registry tests compare with).

The compiler lowers each aggregate (what owners pre-aggregate, which secure nodes finish it)
under the same name in compiler/plan/aggregates.py; tests/test_aggregate_registry.py fails when an
aggregate lacks a part or its row in spec/language.md. To add an aggregate: declare it here,
lower it there, and give it a test; the catalog, the checker and the disclosure rules read the
traits below.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .types import IQType


@dataclass(frozen=True)
class ConstArg:
    """A literal argument after the column, e.g. PERCENTILE's percent: a whole number in [lo, hi]."""
    name: str
    lo: int
    hi: int


@dataclass(frozen=True)
class AggregateFunction:
    name: str
    signature: str  # as spec/language.md writes it
    argument: str  # the argument, in words (spec/language.md)
    result: str  # the result type, in words
    bounds: str  # the result's bounds, in words
    takes: tuple[str, ...]  # argument kinds: "any", "number", "date"
    infer: Callable[[IQType, int, tuple], IQType]  # (argument type, max rows, constants) -> result type
    reference: Callable[[list, tuple], float | None]  # meaning on one cell's non-NULL values
    default: bool = False  # allowed on a measure column whose owner lists no aggregates
    needs_clamp: bool = False  # a sum of values: each row's contribution must be bounded (IQ305)
    hides_count: bool = False  # a quotient by the count: its size is not dominance-checked (IQ318), and it
    #                            gives the exact count away under rounding (IQ321)
    min_values: Callable[[tuple, int], int] | None = None  # fewest values (persons) its value needs
    one_value_per_person: bool = False  # an order statistic: owners reduce a person's rows to one value
    join: bool = False  # executable over a JOIN (compiler/plan/linkage.py)
    consts: tuple[ConstArg, ...] = ()


def _count(t: IQType, n: int, c: tuple) -> IQType:
    return IQType("int", 0, n)


def _sum(t: IQType, n: int, c: tuple) -> IQType:
    return IQType(t.kind, min(0, t.lo * n), max(0, t.hi * n), t.scale, nullable=True)


def _avg(t: IQType, n: int, c: tuple) -> IQType:
    return IQType("decimal", t.lo, t.hi, max(t.scale, 2), nullable=True)


def _var(t: IQType, n: int, c: tuple) -> IQType:
    spread = float(t.hi - t.lo)
    return IQType("decimal", 0, spread * spread / 4, 2, nullable=True)


def _stddev(t: IQType, n: int, c: tuple) -> IQType:
    return IQType("decimal", 0, float(t.hi - t.lo) / 2, 2, nullable=True)


def _same(t: IQType, n: int, c: tuple) -> IQType:
    return t.with_nullable(True)


def _mean(v: list) -> float | None:
    return sum(v) / len(v) if v else None


def _sample_var(v: list) -> float | None:
    if len(v) < 2:
        return None
    m = sum(v) / len(v)
    return sum((x - m) ** 2 for x in v) / (len(v) - 1)


def percentile_of(v: list, p: float) -> float | None:
    """The discrete p-th percentile: the smallest value with at least p% of the values at or below
    it (the inverted distribution function; p = 50 is the lower median)."""
    if not v:
        return None
    return sorted(v)[max(1, math.ceil(p * len(v) / 100)) - 1]


def interior_rank(c: tuple, base: int) -> int:
    """Values a percentile needs so that its rank ceil(p n / 100) is neither the first nor the
    last (it is then not a MIN or MAX); a multiple of the rounding base, so that whether a cell
    has them depends on no count finer than the base."""
    p = c[0]
    n = max(100 // p + 1, math.ceil(100 / (100 - p)))
    return math.ceil(n / base) * base


AGGREGATES: dict[str, AggregateFunction] = {f.name: f for f in [
    AggregateFunction("count", "COUNT(x)", "any: counts the rows where x is not NULL", "integer", "`[0, n]`",
                      ("any",), _count, lambda v, c: len(v), default=True, join=True),
    AggregateFunction("sum", "SUM(x)", "number", "type of x, nullable", "`[min(0, lo*n), max(0, hi*n)]`",
                      ("number",), _sum, lambda v, c: sum(v) if v else None, default=True, needs_clamp=True,
                      join=True),
    AggregateFunction("avg", "AVG(x)", "number", "decimal, scale at least 2, nullable", "`[lo, hi]`",
                      ("number",), _avg, lambda v, c: _mean(v), default=True, needs_clamp=True,
                      hides_count=True, join=True),
    AggregateFunction("var", "VAR(x)", "number", "decimal, nullable", "`[0, (hi-lo)^2/4]`", ("number",), _var,
                      lambda v, c: _sample_var(v), default=True, needs_clamp=True, hides_count=True,
                      min_values=lambda c, base: 2),
    AggregateFunction("stddev", "STDDEV(x)", "number", "decimal, nullable", "`[0, (hi-lo)/2]`", ("number",),
                      _stddev, lambda v, c: None if _sample_var(v) is None else math.sqrt(_sample_var(v)),
                      default=True, needs_clamp=True, hides_count=True, min_values=lambda c, base: 2),
    AggregateFunction("min", "MIN(x)", "number or date", "type of x, nullable", "`[lo, hi]`", ("number", "date"),
                      _same, lambda v, c: min(v) if v else None, one_value_per_person=True),
    AggregateFunction("max", "MAX(x)", "number or date", "type of x, nullable", "`[lo, hi]`", ("number", "date"),
                      _same, lambda v, c: max(v) if v else None, one_value_per_person=True),
    AggregateFunction("median", "MEDIAN(x)", "number or date", "type of x, nullable", "`[lo, hi]`",
                      ("number", "date"), _same, lambda v, c: percentile_of(v, 50), default=True,
                      one_value_per_person=True),
    AggregateFunction("percentile", "PERCENTILE(x, p)", "number or date; p a whole percent from 1 to 99",
                      "type of x, nullable", "`[lo, hi]`", ("number", "date"), _same,
                      lambda v, c: percentile_of(v, c[0]), one_value_per_person=True,
                      min_values=interior_rank, consts=(ConstArg("p", 1, 99),)),
]}
"""Every aggregate. COUNT(*) and COUNT(DISTINCT key) are forms of COUNT (the checker tells them
apart; compiler/plan/aggregates.py lowers them as `count_rows` and `count_distinct`)."""

DEFAULT_MEASURE_AGGREGATES = tuple(n for n, f in AGGREGATES.items() if f.default)
