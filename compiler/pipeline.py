"""One public function per arrow of the pipeline, and the end-to-end `compile_source`.

source --parse--> AST --check--> CheckedQuery --check_disclosure--> EffectivePolicy
--to_logical--> LogicalPlan --CircuitBuilder--> DAG --make_plan--> plan JSON
"""
from __future__ import annotations

from dataclasses import dataclass, field

from insightql.compiler.check.catalog import Catalog
from insightql.compiler.check.checker import CheckedQuery, check
from insightql.compiler.plan.circuit import CircuitBuilder, PlanError
from insightql.compiler.diagnostics import Diagnostic, DiagnosticError, Source, has_errors
from insightql.compiler.check.disclosure import EffectivePolicy, check_disclosure
from insightql.compiler.plan.linkage import builder_class
from insightql.compiler.plan.logical import to_logical
from insightql.compiler.plan.passes import optimise
from insightql.compiler.plan.plan_io import make_plan
from insightql.compiler.syntax.parser import parse


@dataclass
class CompileResult:
    source: Source
    diagnostics: list[Diagnostic] = field(default_factory=list)
    checked: CheckedQuery | None = None
    policy: EffectivePolicy | None = None
    plan: dict | None = None

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)


def _attach(diags: list[Diagnostic], src: Source) -> list[Diagnostic]:
    for d in diags:
        d.source = src
    return sorted(diags, key=lambda d: (d.span.start if d.span else -1, d.code))


def check_source(text: str, name: str, catalog: Catalog) -> CompileResult:
    """Parse, name/type check and disclosure check: everything `iq check` reports."""
    src = Source(name, text)
    res = CompileResult(src)
    try:
        query = parse(text, name)
    except DiagnosticError as e:
        res.diagnostics = _attach(e.diagnostics, src)
        return res
    cq, diags = check(catalog, query)
    res.checked = cq
    if not has_errors(diags) and cq.bindings:
        res.policy, more = check_disclosure(cq)
        diags += more
    res.diagnostics = _attach(diags, src)
    return res


def compile_source(text: str, name: str, catalog: Catalog, earlier: list[dict] | None = None) -> CompileResult:
    """check_source, then lower to a plan when the query is clean. `earlier`: releases from a
    ledger (or a received plan's `guard`) for the differencing guard (compiler/plan/guard.py)."""
    res = check_source(text, name, catalog)
    if not res.ok or res.checked is None or res.policy is None:
        return res
    lp, diags = to_logical(res.checked, res.policy)
    if lp is None:
        res.diagnostics += _attach(diags, res.source)
        return res
    builder = builder_class(lp)(lp, catalog)  # compiler/plan/linkage.py: joins, distinct across owners
    builder.earlier = earlier or []
    try:
        builder.build()
        builder.g = optimise(builder.g)
    except PlanError as e:
        res.diagnostics += _attach([e.diag], res.source)
        return res
    res.plan = make_plan(cq=res.checked, policy=res.policy, builder=builder, source_text=text, source_name=name)
    return res
