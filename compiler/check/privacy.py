"""Differential privacy checks of a query (spec/privacy.md): is DP on, with which epsilon, and can
every aggregate be released with a DP mechanism? Does every dataset's owner keep a budget? IQ325-IQ328.

DP is on when the query says `@epsilon E` or when a dataset it reads has `privacy.require`. DP
replaces the owners' threshold rules and differencing guard with their budgets, so every dataset
read must have a `[policy.privacy]` (IQ328): without one nobody counts the spends, and the same
noisy query asked again and again (or at an epsilon of a million) releases exact counts. It
returns the `PrivacySpec` the circuit lowers (compiler/plan/dp_lower.py): the query's epsilon, the
unit of privacy and the bound on one person's rows. Under DP only COUNT(*), COUNT(x), SUM(x) and
AVG(x) (noisy SUM / noisy COUNT) have a mechanism; anything else is refused, not released exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from insightql.compiler.check.privacy_policy import fraction
from insightql.compiler.diagnostics import Diagnostic

DP_AGGREGATES = ("count", "sum", "avg")
"""Aggregates with a DP mechanism (and COUNT(*)): noisy counts and sums, AVG as their quotient."""


@dataclass(frozen=True)
class PrivacySpec:
    epsilon: Fraction  # the whole query's epsilon, split over its measurements by the circuit
    rows_per_person: tuple[tuple[str, int], ...]  # (dataset, R): one person's rows at most, per dataset
    noisy_threshold: bool
    required_by: tuple[str, ...]  # datasets whose policy requires DP

    @property
    def rows_bound(self) -> int:
        """L1 sensitivity of a count vector: a person may have R_d rows in every dataset read."""
        return sum(r for _, r in self.rows_per_person)

    @property
    def unit(self) -> str:
        return "record" if all(r == 1 for _, r in self.rows_per_person) and len(self.rows_per_person) == 1 \
            else "person (rows per person declared by the owners)"

    def to_json(self) -> dict:
        return {"epsilon": str(self.epsilon), "delta": "0", "unit": self.unit,
                "rows_per_person": dict(self.rows_per_person), "noisy_threshold": self.noisy_threshold,
                "required_by": list(self.required_by)}


def check_privacy(cq) -> tuple[PrivacySpec | None, list[Diagnostic]]:
    """The query's DP settings, or None when DP is off; diagnostics IQ325-IQ328."""
    from insightql.compiler.check.checker import filtered_count, share_of

    datasets = cq.datasets()
    pols = {d: cq.catalog.datasets[d].policy.privacy for d in datasets}
    required = tuple(d for d, p in pols.items() if p is not None and p.require)
    eps = cq.epsilon
    if eps is None and not required:
        return None, []
    q = cq.query
    span = (q.annotation("epsilon").span if q.annotation("epsilon") else q.select[0].span)
    diags = []
    if eps is None:
        diags.append(Diagnostic("IQ326", f"the policy of {', '.join(f'`{d}`' for d in required)} requires "
                                "differential privacy, and the query gives no `@epsilon`", q.select[0].span,
                                ["add `@epsilon 0.5` (or less than the policy's max_epsilon_per_query): "
                                 "spec/privacy.md"]))
        return None, diags
    unbudgeted = [d for d, p in pols.items() if p is None]
    if unbudgeted:  # DP replaces the threshold rules and the guard: only where the owner keeps a budget
        owners = "its owner keeps" if len(unbudgeted) == 1 else "their owners keep"
        diags.append(Diagnostic("IQ328", "`@epsilon` would replace the threshold rules and the differencing guard of "
                                f"{', '.join(f'`{d}`' for d in unbudgeted)} with a privacy budget, and {owners} none "
                                "(no `[policy.privacy]`): noisy releases repeated or differenced without a budget "
                                "reveal exact counts", span,
                                ["drop `@epsilon` (the owners' threshold rules then apply), or the owner adds "
                                 f"`[datasets.{unbudgeted[0]}.policy.privacy]` with an `epsilon_budget` "
                                 "(`require = false` keeps exact queries allowed): spec/privacy.md 7"]))
    for d, p in pols.items():
        if p is not None and eps > p.cap():
            diags.append(Diagnostic("IQ327", f"`@epsilon {_text(eps)}` is above the largest epsilon one query may "
                                    f"spend on `{d}` ({_text(p.cap())})", span,
                                    [f"ask for at most {_text(p.cap())}; the owner sets max_epsilon_per_query"]))
    if q.joins:
        diags.append(Diagnostic("IQ325", "a JOIN has no differential privacy mechanism yet", q.joins[0].span,
                                ["under DP, count or sum over one dataset or a UNION ALL (spec/privacy.md 8)"]))
    for a in cq.aggregates:
        name = "COUNT(DISTINCT)" if a.distinct else a.name.upper()
        if filtered_count(a) is not None or share_of(a, cq) is not None:
            name = f"{a.name.upper()} of a subgroup"
        elif a.star or (a.name in DP_AGGREGATES and not a.distinct):
            continue
        diags.append(Diagnostic("IQ325", f"{name} has no differential privacy mechanism, and DP is "
                                f"{'required by the policy of ' + ', '.join(required) if required else 'asked by @epsilon'}",
                                a.span, ["under DP use COUNT(*), COUNT(x), SUM(x) or AVG(x) (noisy sum / noisy "
                                         "count); order statistics, extremes and distinct counts are not released "
                                         "(spec/privacy.md 8)"]))
    if diags:
        return None, diags
    # the noisy threshold where any owner asks for it: the strictest policy, as for every UNION ALL
    return PrivacySpec(eps, tuple((d, p.max_rows_per_person) for d, p in pols.items()),
                       any(p.noisy_threshold for p in pols.values()), required), []


def _text(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{float(x):g}"


__all__ = ["PrivacySpec", "check_privacy", "fraction", "DP_AGGREGATES"]
