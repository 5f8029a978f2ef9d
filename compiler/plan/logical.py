"""Stage 4: CheckedQuery -> LogicalPlan, the relational shape of an insight query.

Scan(datasets) -> Filter(where) -> GroupAggregate(keys, aggregates) -> Protect(policy)
-> Project(outputs) -> Having -> Order/Limit. The circuit stage places each operator.
A query with a JOIN lowers to a JoinLogicalPlan (`to_logical_join`: which side's key is unique,
group keys / WHERE conjuncts / aggregates assigned to a side, or IQ405-IQ407); its circuit is
linkage.py's JoinBuilder.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from insightql.stdlib.aggregates import AGGREGATES
from insightql.stdlib.types import IQType

from insightql.compiler.syntax import ast as A
from insightql.compiler.check.checker import CheckedQuery, filtered_count, share_of
from insightql.compiler.diagnostics import Diagnostic
from insightql.compiler.check.disclosure import EffectivePolicy
from insightql.compiler.plan.lower_expr import Lowering
from insightql.compiler.plan.aggregates import indicator


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


def _group_key(low: Lowering, k: int, g: A.Expr, t: IQType) -> GroupKey:
    """GROUP BY expression number k, of type t, with its public domain (and None if it may be NULL)."""
    values = t.values() + ([None] if t.nullable else [])
    name = g.name if isinstance(g, A.ColumnRef) else f"key{k + 1}"
    return GroupKey(name, low.expr(g), t, values, g)


def _aggregates(cq: CheckedQuery) -> list[A.FuncCall]:
    """The query's aggregates, each once (equal calls are computed once)."""
    seen: list[A.FuncCall] = []
    for a in cq.aggregates:
        if not any(a == s for s in seen):
            seen.append(a)
    return seen


def _aggregate(func: str, low: Lowering, arg: A.Expr, t: IQType, column, a: A.FuncCall) -> AggregateSpec:
    """An aggregate of `arg`; `column`: the catalog column it reads (its clamp bounds the values), or None."""
    clamp = getattr(column, "clamp", None)
    return AggregateSpec(func, low.expr(arg), t, tuple(clamp) if clamp else None, a)


def _subgroup(cq: CheckedQuery, low: Lowering, a: A.FuncCall) -> AggregateSpec | None:
    """A count of a subgroup (`count_if`: COUNT(*) FILTER (WHERE p), SUM(CASE WHEN p THEN 1 ELSE 0
    END)) or the share of one (`share_if`: AVG(b) of a boolean b), or None."""
    cond = filtered_count(a)
    if cond is not None:
        return AggregateSpec("count_if", indicator(low.expr(cond)), IQType("int", 1, 1, nullable=True), None, a)
    b = share_of(a, cq)
    if b is not None:
        return AggregateSpec("share_if", low.expr(b), cq.type_of(b), None, a)
    return None


def to_logical(cq: CheckedQuery, policy: EffectivePolicy) -> tuple[LogicalPlan | None, list[Diagnostic]]:
    q = cq.query
    diags = []
    if q.joins:  # record linkage: the circuit is compiler/plan/linkage.py's JoinBuilder
        return to_logical_join(cq, policy)
    low = Lowering(cq)
    binding = next(iter(cq.bindings.values()))
    keys = [_group_key(low, k, g, cq.type_of(g)) for k, g in enumerate(cq.group_by)]
    aggs = []
    for a in _aggregates(cq):
        sub = _subgroup(cq, low, a)
        if sub is not None:
            aggs.append(sub)
            continue
        if a.star:
            aggs.append(AggregateSpec("count_rows", None, None, None, a))
            continue
        arg = a.args[0]
        func = "count_distinct" if a.distinct else a.name
        col = cq.catalog.datasets[binding.datasets[0]].columns[arg.name] if isinstance(arg, A.ColumnRef) else None
        aggs.append(_aggregate(func, low, arg, cq.type_of(arg), col, a))
    # COUNT(DISTINCT key) over a UNION ALL: counted across owners by compiler/plan/linkage.py
    used = set(binding.columns)
    person_keys = {cq.catalog.datasets[d].person_key for d in binding.datasets}
    person_key = person_keys.pop() if len(person_keys) == 1 else None
    where = low.expr(q.where) if q.where is not None else None
    plan = LogicalPlan(binding.datasets, {c: binding.columns[c] for c in sorted(used)}, where, keys, aggs, policy,
                       list(cq.outputs), cq.having, list(cq.order_by), q.limit,
                       person_key if policy.distinct_persons else None)
    return plan, diags


# -- JOIN (record linkage, spec/linkage.md) ---------------------------------------------------


@dataclass
class JoinSide:
    binding: str
    dataset: str
    owner: str
    key_column: str
    key_bits: int
    unique: bool
    where: dict | None = None
    keys: list[int] = field(default_factory=list)  # indices into the plan's keys


@dataclass
class JoinLogicalPlan(LogicalPlan):
    kind: str = "inner"
    u: JoinSide | None = None  # the side whose key is unique (index 0 in packed rows)
    m: JoinSide | None = None  # the other side: every joined row is one of its rows
    agg_sides: list = field(default_factory=list)  # per aggregate: 0 (u), 1 (m) or None


def _err(code, msg, span, hint) -> tuple[None, list[Diagnostic]]:
    return None, [Diagnostic(code, msg, span, [hint])]


def _sides_of(cq: CheckedQuery, e: A.Expr) -> set[str]:
    return {cq.columns[id(x)][0] for x in A.walk(e) if isinstance(x, A.ColumnRef) and id(x) in cq.columns}


def _conjuncts(e: A.Expr) -> list[A.Expr]:
    if isinstance(e, A.BinOp) and e.op == "and":
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]


def to_logical_join(cq: CheckedQuery, policy: EffectivePolicy) -> tuple[JoinLogicalPlan | None, list[Diagnostic]]:
    q, cat = cq.query, cq.catalog
    if len(q.joins) > 1:
        return _err("IQ406", "only one JOIN per query is executable", q.joins[1].span,
                    "join two datasets; combine more organisations' rows with UNION ALL first")
    j = q.joins[0]
    sides = {}
    for ref in (j.on.left, j.on.right):
        b, col = cq.columns[id(ref)]
        ds_name = cq.bindings[b].datasets[0]
        c = cat.datasets[ds_name].columns[col]
        if c.type != "key":
            return _err("IQ406", f"JOIN on `{col}`, which is not a key column", ref.span,
                        "join on pseudonymous key columns (type = \"key\"), e.g. person_id")
        sides[b] = JoinSide(b, ds_name, cat.datasets[ds_name].owner, col, c.bits, c.unique)
    left, right = sides[q.source.binding], sides[j.table.binding]
    if j.kind == "left":
        if not right.unique:
            return _err("IQ405", f"LEFT JOIN needs the key of `{right.binding}` declared unique", j.on.span,
                        f"declare `unique = true` on {right.dataset}.{right.key_column} in the catalog if each "
                        "key occurs once; a left row may otherwise match many right rows, which is not supported")
        u, m = right, left
    elif right.unique:
        u, m = right, left
    elif left.unique:
        u, m = left, right
    else:
        return _err("IQ405", "JOIN needs the key declared unique on at least one side", j.on.span,
                    "declare `unique = true` on the key column of a dataset with one row per key; "
                    "many-to-many joins are not supported (count overlaps with COUNT(DISTINCT key) over "
                    "UNION ALL instead)")
    person_key = None
    if policy.distinct_persons:
        if cat.datasets[u.dataset].person_key != u.key_column or cat.datasets[m.dataset].person_key != m.key_column:
            return _err("IQ407", "the distinct-person threshold of these datasets needs the JOIN to be on their "
                        "person keys", j.on.span, "join on the columns the catalog declares as `person_key`")
        person_key = m.key_column
    side_of = {u.binding: 0, m.binding: 1}
    low = Lowering(cq)
    keys = []
    for k, g in enumerate(cq.group_by):
        s = _sides_of(cq, g)
        if len(s) > 1:
            return _err("IQ406", "a GROUP BY expression of a JOIN must use columns of one side", g.span,
                        "group by columns of each side separately")
        side = side_of[s.pop()] if s else 1
        t = cq.type_of(g)
        if side == 0 and j.kind == "left":
            t = t.with_nullable(True)  # unmatched left rows have no right-side values
        keys.append(_group_key(low, k, g, t))
        (u if side == 0 else m).keys.append(k)
    where = {0: [], 1: []}
    for c in _conjuncts(q.where) if q.where is not None else []:
        s = _sides_of(cq, c)
        if len(s) > 1:
            return _err("IQ406", "a WHERE condition of a JOIN must use columns of one side", c.span,
                        "split the condition with AND into conditions on each side")
        side = side_of[s.pop()] if s else 1
        if side == 0 and j.kind == "left":
            return _err("IQ406", "WHERE on the right side of a LEFT JOIN is not executable", c.span,
                        "filter the left side only, or use an inner JOIN")
        where[side].append(low.expr(c))
    u.where, m.where = (_and_all(where[0]), _and_all(where[1]))
    aggs, agg_sides = [], []
    for a in _aggregates(cq):
        if a.star:
            aggs.append(AggregateSpec("count_rows", None, None, None, a))
            agg_sides.append(None)
            continue
        if filtered_count(a) is not None or share_of(a, cq) is not None:
            return _err("IQ406", "a count of a subgroup (FILTER, SUM(CASE ...), AVG of a condition) over a JOIN is "
                        "not executable", a.span, "filter the joined rows with WHERE, or group by the condition")
        func = "count_distinct" if a.distinct else a.name
        arg = a.args[0]
        if not (a.distinct or AGGREGATES[func].join) or not isinstance(arg, A.ColumnRef):
            usable = ", ".join(f"{f.name.upper()}(col)" for f in AGGREGATES.values() if f.join)
            return _err("IQ406", f"{a.name.upper()} over a JOIN is not executable", a.span,
                        f"over joined rows use COUNT(*), {usable} or COUNT(DISTINCT key)")
        b, col = cq.columns[id(arg)]
        side = side_of[b]
        if func == "count_distinct" and col != (u if side == 0 else m).key_column:
            return _err("IQ406", "COUNT(DISTINCT ...) over a JOIN must count the join key", a.span,
                        f"write COUNT(DISTINCT {arg.qualifier + '.' if arg.qualifier else ''}"
                        f"{(u if side == 0 else m).key_column})")
        if func == "sum" and policy.dominance_n:
            return _err("IQ406", "SUM under a dominance rule is not executable over a JOIN", a.span,
                        "the (n,k) dominance rule is not implemented for joined rows")
        t = cq.type_of(arg)
        if side == 0 and j.kind == "left":
            t = t.with_nullable(True)
        if t.nullable and func != "count_distinct" and not m.unique:
            return _err("IQ406", f"{a.name.upper()} of a column that may be NULL over a JOIN whose side "
                        f"`{m.binding}` repeats keys: its rows with a value cannot be counted in persons yet",
                        a.span, "one person's several rows with a value would pass k as several (spec/disclosure.md "
                        "6.12); aggregate a column without NULLs, or count with COUNT(*) / COUNT(DISTINCT key)")
        aggs.append(_aggregate(func, low, arg, t, cat.datasets[(u if side == 0 else m).dataset].columns[col], a))
        agg_sides.append(side)
    plan = JoinLogicalPlan([left.dataset, right.dataset], {}, None, keys, aggs, policy, list(cq.outputs),
                           cq.having, list(cq.order_by), q.limit, person_key, kind=j.kind, u=u, m=m,
                           agg_sides=agg_sides)
    return plan, []


def _and_all(irs: list[dict]) -> dict | None:
    if not irs:
        return None
    out = irs[0]
    for x in irs[1:]:
        out = {"op": "and", "args": [out, x], "type": {"kind": "bool", "nullable": True}}
    return out
