"""Scalar functions of the language: signature, result type with bounds, plaintext kernel.

Kernels work on whole columns (`Vec`: numpy values + null mask), so a data owner evaluates a
function over its own rows in one vectorised call before anything is secret-shared. The one
function of cost class "public", pct(), has no kernel: it works on released values after MPC.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .regions import REGION_OF, REGIONS
from .types import IQType, days_to_date


@dataclass
class Vec:
    """A column of plaintext values with a null mask (category values are domain codes)."""

    values: np.ndarray
    null: np.ndarray

    @staticmethod
    def full(n: int, value, dtype=np.int64) -> "Vec":
        return Vec(np.full(n, value, dtype=dtype), np.zeros(n, dtype=bool))


class FunctionError(Exception):
    """A call that does not type-check; the checker turns it into IQ232."""


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    min_args: int
    max_args: int
    signature: str
    doc: str
    cost: str  # party-local | secure-linear | public
    infer: Callable[[list[IQType], list], IQType]
    kernel: Callable[[list[Vec], list[IQType], IQType, list], Vec]


def _need(t: IQType, kinds: tuple[str, ...], what: str):
    if t.kind not in kinds:
        raise FunctionError(f"{what} must be {' or '.join(kinds)}, not {t.describe()}")


def _number(x) -> bool:
    """A numeric literal; True and False are not numbers here, though Python says they are ints."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _edges(consts: list, i: int, what: str) -> list[float]:
    edges = consts[i] if i < len(consts) else None
    if isinstance(edges, list) and any(isinstance(e, bool) for e in edges):
        raise FunctionError("edges must be numbers, not true or false")
    if not isinstance(edges, list) or not edges or not all(_number(e) for e in edges):
        raise FunctionError(f"{what} needs a list of numeric edges, e.g. [18, 25, 35]")
    if sorted(edges) != edges or len(set(edges)) != len(edges):
        raise FunctionError("edges must be strictly increasing")
    return edges


def _band_labels(edges: list[float], age_style: bool) -> list[str]:
    def n(x):
        return str(int(x)) if float(x).is_integer() else str(x)
    labels = [f"<{n(edges[0])}"]
    for lo, hi in zip(edges, edges[1:]):
        labels.append(f"{n(lo)}-{n(hi - 1)}" if age_style and float(lo).is_integer() else f"[{n(lo)},{n(hi)})")
    labels.append(f"{n(edges[-1])}+")
    return labels


DEFAULT_AGE_EDGES = [18, 25, 35, 50, 65]


def _band_infer(age_style: bool):
    def infer(ts, consts):
        _need(ts[0], ("int", "decimal"), "the first argument")
        edges = DEFAULT_AGE_EDGES if age_style and len(ts) == 1 else _edges(consts, 1, "bucket")
        return IQType("category", domain=tuple(_band_labels(edges, age_style)), nullable=ts[0].nullable)
    return infer


def _band_kernel(age_style: bool):
    def kernel(args, ts, rt, consts):
        edges = DEFAULT_AGE_EDGES if age_style and len(args) == 1 else consts[1]
        codes = np.searchsorted(np.asarray(edges, dtype=float), args[0].values.astype(float), side="right")
        return Vec(codes.astype(np.int64), args[0].null.copy())
    return kernel


def _date_part(part: str):
    def infer(ts, consts):
        _need(ts[0], ("date",), f"{part}()'s argument")
        if part == "year":
            lo, hi = days_to_date(ts[0].lo).year, days_to_date(ts[0].hi).year
        else:
            lo, hi = 1, 12 if part == "month" else 4
        return IQType("int", lo, hi, nullable=ts[0].nullable)

    def kernel(args, ts, rt, consts):
        d = args[0].values.astype("datetime64[D]")
        years = d.astype("datetime64[Y]").astype(np.int64) + 1970
        months = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
        out = {"year": years, "month": months, "quarter": (months - 1) // 3 + 1}[part]
        return Vec(out.astype(np.int64), args[0].null.copy())
    return infer, kernel


def _numeric_all(ts, what):
    for t in ts:
        _need(t, ("int", "decimal"), what)


def _abs_infer(ts, consts):
    _numeric_all(ts, "abs()'s argument")
    t = ts[0]
    lo = 0 if t.lo <= 0 <= t.hi else min(abs(t.lo), abs(t.hi))
    return IQType(t.kind, lo, max(abs(t.lo), abs(t.hi)), t.scale, nullable=t.nullable)


def _extreme(fn):
    def infer(ts, consts):
        _numeric_all(ts, f"{fn}()'s arguments")
        kind = "decimal" if any(t.kind == "decimal" for t in ts) else "int"
        # nulls are skipped, so a nullable argument bounds nothing: least(x, y) may be y when x is null
        sure = [t for t in ts if not t.nullable] or ts
        if fn == "least":
            lo, hi = min(t.lo for t in ts), (min if sure is not ts else max)(t.hi for t in sure)
        else:
            lo, hi = (max if sure is not ts else min)(t.lo for t in sure), max(t.hi for t in ts)
        return IQType(kind, lo, hi, max(t.scale for t in ts), nullable=all(t.nullable for t in ts))

    def kernel(args, ts, rt, consts):
        vals = np.stack([a.values.astype(float) for a in args])
        nulls = np.stack([a.null for a in args])
        fill = np.inf if fn == "least" else -np.inf
        red = (np.min if fn == "least" else np.max)(np.where(nulls, fill, vals), axis=0)
        allnull = nulls.all(axis=0)
        red = np.where(allnull, 0, red)
        return Vec(red.astype(np.int64) if rt.kind == "int" else red, allnull)
    return infer, kernel


def _coalesce_infer(ts, consts):
    from .types import join_types
    # a string literal is a category of one value, as a CASE result is: coalesce(region, 'Unknown')
    # adds 'Unknown' to the domain when it is not already a member
    ts = [IQType("category", domain=t.domain, nullable=t.nullable) if t.kind == "string" else t for t in ts]
    out = ts[0]
    for t in ts[1:]:
        j = join_types(out, t)
        if j is None:
            raise FunctionError(f"coalesce() arguments do not mix: {out.describe()} and {t.describe()}")
        out = j
    return out.with_nullable(all(t.nullable for t in ts))


def _coalesce_kernel(args, ts, rt, consts):
    vals = [_recode(a, t, rt) for a, t in zip(args, ts)]
    out = vals[-1].values.copy()
    null = vals[-1].null.copy()
    for v in reversed(vals[:-1]):
        out = np.where(v.null, out, v.values)
        null = np.where(v.null, null, False)
    return Vec(out, null)


def _recode(v: Vec, t: IQType, rt: IQType) -> Vec:
    """Re-express v (of type t) in the representation of rt (category codes, decimal floats)."""
    if t.kind == "category" and rt.kind == "category" and t.domain != rt.domain:
        table = np.array([rt.domain.index(x) for x in t.domain], dtype=np.int64)
        return Vec(np.where(v.null, 0, table[np.where(v.null, 0, v.values)]), v.null)
    if rt.kind == "decimal":
        return Vec(v.values.astype(float), v.null)
    return v


MAX_DIGITS = 15
"""round()'s digits lie in [-15, 15]: beyond that a float64 has no digit left to round."""


def _digits(consts: list) -> int:
    digits = consts[1] if len(consts) > 1 else 0
    if not _number(digits) or not isinstance(digits, int) or abs(digits) > MAX_DIGITS:
        raise FunctionError(f"round()'s second argument must be an integer literal from -{MAX_DIGITS} to {MAX_DIGITS}")
    return digits


def _round_infer(ts, consts):
    _need(ts[0], ("int", "decimal"), "round()'s argument")
    digits, t = _digits(consts), ts[0]
    if digits > 0:  # bounds rounded outwards: round(0.04, 1) is 0.0, below a lower bound of 0.04
        f = 10 ** digits
        return IQType("decimal", math.floor(t.lo * f) / f, math.ceil(t.hi * f) / f, digits, nullable=t.nullable)
    step = 10 ** -digits  # round(x, -2) gives multiples of 100
    return IQType("int", math.floor(t.lo / step) * step, math.ceil(t.hi / step) * step, nullable=t.nullable)


def round_half_even(x: np.ndarray, digits: int) -> np.ndarray:
    """x rounded half to even at `digits` decimal places (negative: tens, hundreds, ...).

    A decimal such as 2.675 is stored as the float 2.67499999...; scaled values within 1e-9 of a
    half are taken as that half, so the tie rule applies to the decimal the data owner wrote."""
    x = np.asarray(x, dtype=float)
    scaled = x * 10.0 ** digits if digits >= 0 else x / 10.0 ** -digits
    half = np.rint(2 * scaled) / 2
    scaled = np.where(np.abs(scaled - half) <= 1e-9 * np.maximum(1.0, np.abs(scaled)), half, scaled)
    whole = np.rint(scaled)  # rint rounds half to even
    return whole / 10.0 ** digits if digits >= 0 else whole * 10.0 ** -digits


def _round_kernel(args, ts, rt, consts):
    v = round_half_even(args[0].values, consts[1] if len(consts) > 1 else 0)
    return Vec(v.astype(np.int64) if rt.kind == "int" else v, args[0].null.copy())


def _region_infer(ts, consts):
    _need(ts[0], ("category",), "region()'s argument")
    return IQType("category", domain=tuple(REGIONS), nullable=ts[0].nullable)


def _region_kernel(args, ts, rt, consts):
    table = np.array([REGIONS.index(REGION_OF.get(c, "Unknown")) for c in ts[0].domain], dtype=np.int64)
    return Vec(table[np.where(args[0].null, 0, args[0].values)], args[0].null.copy())


def _pct_infer(ts, consts):
    _need(ts[0], ("int", "decimal"), "pct()'s argument")
    if ts[0].lo < 0:
        raise FunctionError(f"pct() needs a value that cannot be negative, not {ts[0].describe()}")
    return IQType("decimal", 0, 100, 4, nullable=True)


def _pct_kernel(args, ts, rt, consts):
    raise AssertionError("pct() has no row kernel: the public stage computes it (compiler/plaintext/results.py)")


_year, _year_k = _date_part("year")
_month, _month_k = _date_part("month")
_quarter, _quarter_k = _date_part("quarter")
_least, _least_k = _extreme("least")
_greatest, _greatest_k = _extreme("greatest")

FUNCTIONS: dict[str, FunctionSpec] = {f.name: f for f in [
    FunctionSpec("age_band", 1, 2, "age_band(age, [edges])", "Age group labels such as '18-24'; default edges 18, 25, 35, 50, 65.",
                 "party-local", _band_infer(True), _band_kernel(True)),
    FunctionSpec("bucket", 2, 2, "bucket(x, [edges])", "Interval labels '[lo,hi)' for a numeric value.",
                 "party-local", _band_infer(False), _band_kernel(False)),
    FunctionSpec("year", 1, 1, "year(date)", "Calendar year of a date.", "party-local", _year, _year_k),
    FunctionSpec("month", 1, 1, "month(date)", "Month 1-12 of a date.", "party-local", _month, _month_k),
    FunctionSpec("quarter", 1, 1, "quarter(date)", "Quarter 1-4 of a date.", "party-local", _quarter, _quarter_k),
    FunctionSpec("coalesce", 2, 8, "coalesce(a, b, ...)", "The first argument that is not null.",
                 "party-local", _coalesce_infer, _coalesce_kernel),
    FunctionSpec("abs", 1, 1, "abs(x)", "Absolute value.", "party-local", _abs_infer,
                 lambda a, ts, rt, c: Vec(np.abs(a[0].values), a[0].null.copy())),
    FunctionSpec("least", 2, 8, "least(a, b, ...)", "Smallest non-null argument.", "party-local", _least, _least_k),
    FunctionSpec("greatest", 2, 8, "greatest(a, b, ...)", "Largest non-null argument.", "party-local", _greatest, _greatest_k),
    FunctionSpec("round", 1, 2, "round(x, [digits])", "Round half to even to the given number of digits.",
                 "party-local", _round_infer, _round_kernel),
    FunctionSpec("region", 1, 1, "region(country)", "UN M49 region of an ISO 3166 alpha-2 country code.",
                 "party-local", _region_infer, _region_kernel),
    FunctionSpec("pct", 1, 1, "pct(aggregate)", "Percent of the total of the released cells of a SELECT column.",
                 "public", _pct_infer, _pct_kernel),
]}
