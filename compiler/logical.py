"""Stage 4: CheckedQuery -> LogicalPlan, the relational shape of an insight query.

Scan(datasets) -> Filter(where) -> GroupAggregate(keys, aggregates) -> Protect(policy)
-> Project(outputs) -> Having -> Order/Limit. The circuit stage places each operator.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from insightql.stdlib.types import IQType

from . import ast as A
from .checker import CheckedQuery
from .diagnostics import Diagnostic
from .disclosure import EffectivePolicy
from .lower_expr import Lowering


@dataclass
class GroupKey:
    name: str
    expr: dict  # row-level IR
    type: IQType
    values: list  # enumerated public domain (+ None when nullable)
    ast: A.Expr | None = None


@dataclass
class AggregateSpec:
    func: str  # count | sum | avg | var | stddev | min | max | median | count_distinct | count_rows
    arg: dict | None  # row-level IR
    arg_type: IQType | None
    clamp: tuple | None
    ast: A.FuncCall


@dataclass
class LogicalPlan:
    datasets: list[str]  # the scanned datasets (one, or a UNION ALL)
    columns: dict[str, IQType]  # columns read, with the query's view of their types
    where: dict | None
    keys: list[GroupKey]
    aggregates: list[AggregateSpec]
    policy: EffectivePolicy
    outputs: list = field(default_factory=list)  # OutputColumn from the checker
    having: A.Expr | None = None
    order_by: list[tuple[int, bool]] = field(default_factory=list)
    limit: int | None = None
    person_key: str | None = None


def to_logical(cq: CheckedQuery, policy: EffectivePolicy) -> tuple[LogicalPlan | None, list[Diagnostic]]:
    q = cq.query
    diags = []
    if q.joins:  # record linkage: compiler/linkage.py
        from .linkage import to_logical_join
        return to_logical_join(cq, policy)
    low = Lowering(cq)
    binding = next(iter(cq.bindings.values()))
    keys = []
    for k, g in enumerate(cq.group_by):
        t = cq.type_of(g)
        values = t.values() + ([None] if t.nullable else [])
        name = g.name if isinstance(g, A.ColumnRef) else f"key{k + 1}"
        keys.append(GroupKey(name, low.expr(g), t, values, g))
    aggs, seen = [], []
    for a in cq.aggregates:
        if any(a == s for s in seen):
            continue
        seen.append(a)
        if a.star:
            aggs.append(AggregateSpec("count_rows", None, None, None, a))
            continue
        arg = a.args[0]
        func = "count_distinct" if a.distinct else a.name
        clamp = None
        if isinstance(arg, A.ColumnRef):
            col = cq.catalog.datasets[binding.datasets[0]].columns[arg.name]
            clamp = getattr(col, "clamp", None)
        aggs.append(AggregateSpec(func, low.expr(arg), cq.type_of(arg), tuple(clamp) if clamp else None, a))
    # COUNT(DISTINCT key) over a UNION ALL: counted across owners by compiler/linkage.py
    used = set(binding.columns)
    person_keys = {cq.catalog.datasets[d].person_key for d in binding.datasets}
    person_key = person_keys.pop() if len(person_keys) == 1 else None
    where = low.expr(q.where) if q.where is not None else None
    plan = LogicalPlan(binding.datasets, {c: binding.columns[c] for c in sorted(used)}, where, keys, aggs, policy,
                       list(cq.outputs), q.having, list(cq.order_by), q.limit,
                       person_key if policy.distinct_persons else None)
    return plan, diags
