"""Differential privacy in a dataset's policy (spec/privacy.md): the owner's budget and bounds.

`Policy.privacy` (compiler/check/catalog.py) holds one `PrivacyPolicy` or None. With `require`,
every query reading the dataset must be differentially private (`@epsilon` in the query); a query
may also ask for DP itself where the policy has no privacy section. The budget is enforced by the
owner's own party against its ledger (runtime/governance/budget.py), the per-query cap by the
compiler and again by the party. Epsilon and delta are decimals written as the owner means them;
the accounting turns them into exact fractions (`fraction`), never floats.
"""
from __future__ import annotations

from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PrivacyPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    require: bool = True
    """Every query over this dataset must be differentially private (`@epsilon`)."""
    epsilon_budget: float = Field(gt=0, le=100)
    """Total epsilon that all releases over this dataset may spend in one period."""
    delta_budget: float = Field(0.0, ge=0, lt=1)
    """Total delta over the period (0: only pure epsilon-DP mechanisms)."""
    period_days: int = Field(365, ge=1)
    """The budget renews this many days after the first spend of a period (rolling window)."""
    max_epsilon_per_query: float | None = Field(None, gt=0)
    """Largest epsilon one query may spend; None: the whole budget."""
    max_rows_per_person: int = Field(1, ge=1, le=1000)
    """Unit of privacy: a person with at most this many rows in the dataset (the owner's
    declaration; 1 = one record, the default). Sensitivities are multiplied by it."""
    noisy_threshold: bool = True
    """Suppress a cell whose NOISY row count is below min_group_size (post-processing; spec/privacy.md 5)."""

    @model_validator(mode="after")
    def _cap(self):
        if self.max_epsilon_per_query is not None and self.max_epsilon_per_query > self.epsilon_budget:
            raise ValueError("max_epsilon_per_query is larger than epsilon_budget")
        return self

    def cap(self) -> Fraction:
        return fraction(self.max_epsilon_per_query if self.max_epsilon_per_query is not None
                        else self.epsilon_budget)


def fraction(x) -> Fraction:
    """The exact value a decimal stands for: `0.1` is 1/10, not the binary float's 3602879701896397/2**55."""
    if isinstance(x, Fraction):
        return x
    return Fraction(repr(x)) if isinstance(x, float) else Fraction(str(x))


LARGE_EPSILON = Fraction(1)
"""Per-query epsilon above which `iq check` warns: the noise of one release has scale 1/epsilon, so
above 1 it is mostly smaller than one person (spec/disclosure.md 6.15)."""


def large_epsilon_warnings(catalog, source=None) -> list:
    """IQ006 warnings for every privacy section whose per-query cap (the budget when there is no cap)
    is above LARGE_EPSILON, one per section as written (datasets that inherit it through `like` are
    named with it): two DP releases are not compared by the guard, so at a large epsilon a DP count
    minus another DP count shows one person (spec/disclosure.md 6.15). A warning, not an error: the
    budget is the owner's choice."""
    from insightql.compiler.diagnostics import Diagnostic, Severity

    written: dict[str, list[str]] = {}
    for name in sorted(catalog.datasets):
        p = catalog.datasets[name].policy.privacy
        if p is not None and p.cap() > LARGE_EPSILON:
            written.setdefault(catalog.lineage(name).policy.get("privacy") or name, []).append(name)
    out = []
    for origin, names in sorted(written.items()):
        p = catalog.datasets[names[0]].policy.privacy
        field = "max_epsilon_per_query" if p.max_epsilon_per_query is not None else "epsilon_budget"
        out.append(Diagnostic(
            "IQ006", f"catalog field datasets.{origin}.policy.privacy.{field}: one query over {', '.join(names)} "
            f"may spend epsilon {float(p.cap()):g}; above {LARGE_EPSILON} the noise is mostly smaller than one "
            "person, and two DP releases are not compared by the differencing guard, so their difference can "
            "show one person", None,
            ["set max_epsilon_per_query = 1 or less (spec/privacy.md, spec/disclosure.md 6.15)"],
            Severity.WARNING, source))
    return out
