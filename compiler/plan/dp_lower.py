"""Lowering of a differentially private query (spec/privacy.md): noisy counts and sums inside MPC.

Used by compiler/plan/circuit.py instead of the threshold rules when the effective policy has a
`privacy` spec. The query's epsilon is split evenly over its *measurements*: the noisy row count
of every cell (always: the noisy threshold and COUNT(*) read it), and one noisy vector per other
count or sum the outputs need (COUNT(x) of a nullable x, SUM(x); AVG(x) reuses them). Each
measurement is a `dp_noise` node over the whole cell vector: its L1 sensitivity Δ is what one
person can change in all cells together (R rows: R for a count, R * max|clamp| for a sum), and
its noise scale s is the smallest double >= Δ / ε_m, so ε_m' = Δ / s <= ε_m exactly. Everything
after the noise (threshold, mask, quotients, rounding, HAVING) reads noisy values only, but for
one exception: the differencing guard against earlier EXACT releases of the same datasets
(`exact_releases`), which tests exact counts like for an exact query (spec/privacy.md 5).
"""
from __future__ import annotations

import math
from fractions import Fraction

from insightql.compiler.plan import guard
from insightql.compiler.plan.aggregates import counted

TAIL = 40
"""The plan's value bounds allow each party's noise up to TAIL * scale (probability e^-40 beyond);
beyond it a value wraps in the secret integer type: a wrong number, but still a function of the
noisy value only, so never a privacy failure (spec/privacy.md 3)."""


def noise_scale(sensitivity: int, epsilon: Fraction) -> Fraction:
    """The smallest double s with s >= sensitivity / epsilon, as the exact rational it is."""
    want = Fraction(sensitivity) / epsilon
    s = float(want)
    while Fraction(s) < want:
        s = math.nextafter(s, math.inf)
    return Fraction(s)


def spent_epsilon(sensitivity: int, scale: Fraction) -> Fraction:
    """What a dp_noise node spends: exactly Δ / s (discrete Laplace: P(z) ∝ exp(-|z| / s))."""
    return Fraction(sensitivity) / scale


def exact_releases(releases: list[dict]) -> list[dict]:
    """The earlier releases a DP plan is compared with by the differencing guard: the exact ones.
    A DP release minus an exact one at a large epsilon is an exact difference (spec/disclosure.md
    6.15); two DP releases together are what the budget bounds. A signature without `dp` (also
    one recorded before DP releases were marked) counts as exact."""
    return [r for r in releases if not r.get("dp")]


def person_bound(b, dataset: str) -> dict:
    """`partials` attribute `bound`: with a person key, the owner keeps at most R_d of each person's
    rows (the first in its data's order) after WHERE, so the unit of privacy holds for its dataset
    whatever its data (spec/privacy.md 1). Without a person key R_d is the owner's declaration."""
    spec, pk = b.lp.policy.privacy, b.lp.person_key
    if pk is None:
        return {}
    return {"bound": {"column": pk, "rows": dict(spec.rows_per_person)[dataset]}}


def finish(b, agg_plans: list[dict]) -> None:
    """Sets b.released (the cell flag) and b.agg_list (each aggregate's value dict) from noisy values."""
    lp, spec = b.lp, b.lp.policy.privacy
    R = spec.rows_bound
    rows = b.slot("rows")
    measured: dict[str, tuple[int, str]] = {}  # slot -> (sensitivity, what)
    for a, p in zip(lp.aggregates, agg_plans):
        nullable = a.arg_type is not None and a.arg_type.nullable
        if spec.noisy_threshold or a.func == "count_rows" or (a.func in ("count", "avg") and not nullable):
            measured.setdefault(rows, (R, "COUNT(*)"))  # the noisy row count: only where something reads it
        if a.func in ("count", "avg") and nullable:
            measured.setdefault(p["count"], (R, f"COUNT({_text(a)})"))
        if a.func in ("sum", "avg"):
            lo, hi = _range(b, a)
            measured.setdefault(p["sum"], (R * max(abs(int(lo)), abs(int(hi)), 1), f"SUM({_text(a)})"))
    if spec.noisy_threshold or not measured:
        measured.setdefault(rows, (R, "COUNT(*)"))
    each = spec.epsilon / len(measured)
    # the noise is the sum of one sample per computing party; its bounds allow every party of the
    # catalog, so the circuit is the same whichever parties compute (tests/test_computing_set.py)
    m = len(b.catalog.party_names())
    noisy, info = {}, {}
    for slot, (sens, what) in measured.items():
        s = noise_scale(sens, each)
        lo, hi = b.bounds(b.combined[slot])
        tail = m * math.ceil(TAIL * s)
        noisy[slot] = b.secure("dp_noise", [b.combined[slot]], lo - tail, hi + tail, mechanism="discrete_laplace",
                               epsilon=_frac(spent_epsilon(sens, s)), delta="0", sensitivity=sens, scale=_frac(s),
                               what=what)
        info[slot] = {"mechanism": "discrete_laplace", "epsilon": _frac(spent_epsilon(sens, s)), "delta": "0",
                      "sensitivity": sens, "scale": _frac(s)}
    if rows in noisy and spec.noisy_threshold:
        b.released = b.secure("ge_const", [noisy[rows]], 0, 1, const=lp.policy.min_group_size, rule="dp.threshold")
    else:
        b.released = b.secure("const", [], 1, 1, value=1)
    b.released = guard.apply(b, b.released)  # earlier exact releases only (circuit.py: exact_releases)
    out = []
    for a, p in zip(lp.aggregates, agg_plans):
        nullable = a.arg_type is not None and a.arg_type.nullable
        cnt = p["count"] if "count" in p and nullable else rows
        if a.func in ("count_rows", "count"):
            out.append({"node": noisy[cnt], "flag": b.released, "scale": 0, "count": True, "dp": [info[cnt]]})
            continue
        scale = a.arg_type.scale if a.arg_type.kind == "decimal" else 0
        lo, hi = _range(b, a)
        if a.func == "sum":
            out.append({"node": noisy[p["sum"]], "flag": b.released, "scale": scale,
                        "sum_unit": max(abs(lo), abs(hi), 1), "dp": [info[p["sum"]]]})
            continue
        # avg: noisy SUM / noisy COUNT, released where the noisy count is at least 1 (post-processing)
        positive = b.secure("ge_const", [noisy[cnt]], 0, 1, const=1, rule="ratio.denominator")
        flag = b.secure("and", [b.released, positive], 0, 1)
        top = max(abs(x) for x in b.bounds(noisy[p["sum"]]))
        node = b.secure("div", [noisy[p["sum"]], noisy[cnt]], -top, top, guard=flag)
        out.append({"node": node, "flag": flag, "scale": scale, "dp": [info[p["sum"]], info[cnt]]})
    for a, p, v in zip(lp.aggregates, agg_plans, out):  # the guard on each subgroup counted (COUNT(x) of a nullable x)
        for slot in (slot for slot, _, _ in counted(a, p) if slot in b.value_columns):
            v["flag"] = guard.apply_values(b, slot, v["flag"])
    b.agg_list = out


def _range(b, a) -> tuple[float, float]:
    scale = a.arg_type.scale if a.arg_type.kind == "decimal" else 0
    return b._arg_range({"arg": a.arg, "scale": scale, "clamp": a.clamp})


def _text(a) -> str:
    from insightql.compiler.plan.aggregates import column_text
    return column_text(a.ast.args[0])


def _frac(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
