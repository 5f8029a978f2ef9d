"""The differential privacy budget, kept by each party in its own hash-chained ledger (spec/privacy.md 7).

What a plan spends: per dataset it reads, the composition of its `dp_noise` measurements (each
spends its exact epsilon Δ/s, delta 0). Before a party reads its data (`check`, called from
party_checks.py preflight) it composes, for every dataset the plan reads whose policy has a privacy
section, the spends its own ledger records within the period with the new plan's, and refuses
when that exceeds the owner's budget or the plan exceeds the per-query cap. After every party
agreed (`record`, from party_checks.py started) it appends one entry per dataset the plan reads:
a `note` whose data is {"dp_spend": {dataset, epsilon, delta, query}} (exact fractions as text),
hash-chained like every entry, so an edited or removed spend fails `iq audit verify` and the
party refuses to run on that ledger.

Composition is OpenDP's `make_composition` (basic composition: it sums epsilons and deltas, each
rounded up to a double), not arithmetic written here. `spent_remaining` is what `iq audit` shows.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from fractions import Fraction


SPEND = "dp_spend"
SLACK = 1e-9
"""Relative slack of the comparisons with the budget and the cap: the composition rounds every
value up to a double (0.1 + 0.2 gives 0.30000000000000004), which must not refuse a plan that
spends exactly what the owner allows."""


def plan_spends(plan: dict) -> dict[str, tuple[Fraction, Fraction]]:
    """{dataset read: (epsilon, delta)} of a DP plan, exact; {} for a plan without DP."""
    if not plan.get("policy", {}).get("privacy"):
        return {}
    parts = [(Fraction(n["attrs"]["epsilon"]), Fraction(n["attrs"]["delta"]))
             for n in plan["nodes"] if n["op"] == "dp_noise"]
    eps, delta = compose(parts)
    return {d: (Fraction(eps), Fraction(delta)) for d, info in plan.get("datasets", {}).items()
            if not info.get("guard_only")}


def compose(spends: list[tuple[Fraction, Fraction]]) -> tuple[float, float]:
    """(epsilon, delta) of running every mechanism once, by OpenDP's basic composition; each
    exact value enters rounded up to a double, and OpenDP rounds its sums up."""
    if not spends:
        return 0.0, 0.0
    import opendp.prelude as dp

    dp.enable_features("contrib", "honest-but-curious")
    dom, met, measure = dp.atom_domain(T=bool), dp.discrete_distance(), dp.approximate(dp.max_divergence())
    meas = [dp.m.make_user_measurement(dom, met, measure, lambda x: x,
                                       lambda d_in, e=_up(e), d=_up(d): (e, d), TO=bool) for e, d in spends]
    eps, delta = dp.c.make_composition(meas).map(1)
    return float(eps), float(delta)


def _up(x: Fraction) -> float:
    f = float(x)
    return math.nextafter(f, math.inf) if Fraction(f) < x else f


def recorded(ledger, dataset: str, since: datetime | None = None) -> list[dict]:
    """The spends on `dataset` this ledger records (at or after `since`), oldest first."""
    out = []
    for e in ledger.entries() if ledger.path.exists() else []:
        spend = e.get("data", {}).get(SPEND) if e.get("kind") == "note" else None
        if spend and spend.get("dataset") == dataset and (since is None or _time(e["time"]) >= since):
            out.append({**spend, "time": e["time"], "plan_hash": e.get("plan_hash")})
    return out


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _window(policy, now: datetime) -> datetime:
    return now - timedelta(days=policy.period_days)


def check(plan: dict, ledger, catalog, me: str, now: datetime | None = None) -> list[str]:
    """Why this party must refuse the plan for the budgets of the datasets it reads ([] if it may run).

    Every computing party checks every dataset's budget, not only its own: each records every
    run's spends (`record`), and the owner computes in every run over its dataset, so another
    party's ledger holds a subset of the owner's spends and never refuses what the owner's would
    allow; but where the owner's ledger was deleted or replaced (a reset budget), the others still
    remember (spec/privacy.md 7)."""
    now = now or datetime.now(timezone.utc)
    new = plan_spends(plan)
    out = []
    for d, info in plan.get("datasets", {}).items():
        ds = catalog.datasets.get(d)
        pol = ds.policy.privacy if ds is not None else None
        if ds is None or pol is None or info.get("guard_only"):
            continue
        whose = "" if ds.owner == me else f" (as {me}'s ledger records; the owner {ds.owner}'s may have lost spends)"
        if d not in new:
            if pol.require:
                out.append(f"{d}: its policy requires differential privacy and the plan has none")
            continue
        eps, delta = new[d]
        if float(eps) > float(pol.cap()) * (1 + SLACK):
            out.append(f"{d}: the plan spends epsilon {float(eps):.6g}, above the per-query cap {float(pol.cap()):g}")
        past = [(Fraction(s["epsilon"]), Fraction(s["delta"])) for s in recorded(ledger, d, _window(pol, now))]
        total_eps, total_delta = compose(past + [(eps, delta)])
        if total_eps > pol.epsilon_budget * (1 + SLACK) or total_delta > pol.delta_budget * (1 + SLACK):
            spent = compose(past)
            out.append(f"{d}: the privacy budget would be exceeded: {len(past)} release(s) in the last "
                       f"{pol.period_days} days spent epsilon {spent[0]:.6g}, this plan {float(eps):.6g}, "
                       f"budget {pol.epsilon_budget:g}" + (f" (delta {spent[1]:.3g} + {float(delta):.3g} of "
                                                           f"{pol.delta_budget:g})" if delta or pol.delta_budget else "")
                       + whose)
    return out


def record(plan: dict, append) -> None:
    """Append one spend per dataset the plan reads (`append(kind, data)`: the party's ledger append)."""
    for d, (eps, delta) in plan_spends(plan).items():
        append("note", {SPEND: {"dataset": d, "epsilon": _text(eps), "delta": _text(delta),
                                "query": plan.get("query", {}).get("name")}})


def _text(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def spent_remaining(ledger, catalog, me: str | None = None, now: datetime | None = None) -> dict[str, dict]:
    """Per dataset with a privacy policy (owned by `me`, if given): spent and remaining epsilon and
    delta in the current period, as this ledger records them (for `iq audit`)."""
    now = now or datetime.now(timezone.utc)
    out = {}
    for d, ds in catalog.datasets.items():
        pol = ds.policy.privacy
        if pol is None or (me is not None and ds.owner != me):
            continue
        past = recorded(ledger, d, _window(pol, now))
        eps, delta = compose([(Fraction(s["epsilon"]), Fraction(s["delta"])) for s in past])
        out[d] = {"releases": len(past), "period_days": pol.period_days,
                  "spent_epsilon": eps, "spent_delta": delta,
                  "remaining_epsilon": max(0.0, pol.epsilon_budget - eps),
                  "remaining_delta": max(0.0, pol.delta_budget - delta),
                  "budget_epsilon": pol.epsilon_budget, "budget_delta": pol.delta_budget}
    return out
