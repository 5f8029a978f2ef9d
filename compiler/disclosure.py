"""Stage 3: disclosure rules. Checks a CheckedQuery against every dataset's policy (IQ3xx)
and derives the effective (strictest) policy that the plan enforces inside MPC.
"""
from __future__ import annotations

from dataclasses import dataclass

from insightql.stdlib.functions import AGGREGATES

from . import ast as A
from .checker import CheckedQuery
from .diagnostics import Diagnostic

NEEDS_CLAMP = ("sum", "avg", "var", "stddev")


@dataclass(frozen=True)
class EffectivePolicy:
    """The strictest combination of the policies of every dataset a query reads."""

    min_group_size: int
    round_counts_to: int
    dominance_n: int | None
    dominance_k: float | None
    max_groups: int
    distinct_persons: bool
    receivers: tuple[str, ...]

    def to_json(self) -> dict:
        return {
            "min_group_size": self.min_group_size,
            "round_counts_to": self.round_counts_to,
            "dominance": None if self.dominance_n is None else {"n": self.dominance_n, "k": self.dominance_k},
            "max_groups": self.max_groups,
            "distinct_persons": self.distinct_persons,
            "receivers": list(self.receivers),
        }


def effective_policy(cq: CheckedQuery, receivers: list[str]) -> EffectivePolicy:
    pols = [cq.catalog.datasets[d].policy for d in cq.datasets()]
    doms = [p.dominance for p in pols if p.dominance is not None]
    return EffectivePolicy(
        min_group_size=max(p.min_group_size for p in pols),
        round_counts_to=max(p.round_counts_to for p in pols),
        dominance_n=max(d.n for d in doms) if doms else None,
        dominance_k=min(d.k for d in doms) if doms else None,
        max_groups=min(p.max_groups for p in pols),
        distinct_persons=any(cq.catalog.datasets[d].person_key for d in cq.datasets()),
        receivers=tuple(receivers),
    )


class DisclosureChecker:
    def __init__(self, cq: CheckedQuery):
        self.cq = cq
        self.diags: list[Diagnostic] = []

    def error(self, code, msg, span, hints):
        self.diags.append(Diagnostic(code, msg, span, hints))

    def column(self, ref: A.ColumnRef):
        """The catalog column behind a resolved reference (first dataset of a union)."""
        binding, name = self.cq.columns[id(ref)]
        ds = self.cq.catalog.datasets[self.cq.bindings[binding].datasets[0]]
        return ds.columns[name]

    def refs(self, e: A.Expr):
        return [x for x in A.walk(e) if isinstance(x, A.ColumnRef) and id(x) in self.cq.columns]

    def run(self) -> list[str]:
        cq, q = self.cq, self.cq.query
        # every column use: hidden columns may not appear at all
        for e in self._all_exprs():
            for ref in self.refs(e):
                if self.column(ref).role == "hidden":
                    self.error("IQ303", f"column `{ref.name}` is hidden by its owner", ref.span,
                               ["hidden columns may not appear in any query; ask the data owner"])
        if cq.outputs and not any(o.is_aggregate for o in cq.outputs) and not q.group_by:
            self.error("IQ301", "the query releases individual rows, not aggregates", q.select[0].span,
                       ["aggregate, e.g. `SELECT exp_Type, COUNT(*) ... GROUP BY exp_Type`"])
        for o, item in zip(cq.outputs, [i for i in q.select if i.expr is not None]):
            self.output_expr(o.expr, item)
        for g in cq.group_by:
            self.group_key(g)
        if q.where is not None:
            self.where(q.where)
        for agg in cq.aggregates:
            self.aggregate(agg)
        if q.having is not None:
            self.having(q.having)
        return self.receivers()

    def _all_exprs(self):
        q = self.cq.query
        yield from (i.expr for i in q.select if i.expr is not None)
        if q.where is not None:
            yield q.where
        yield from self.cq.group_by
        if q.having is not None:
            yield q.having
        yield from (o.expr for o in q.order_by)

    def output_expr(self, e: A.Expr, item: A.SelectItem):
        for x in A.walk(e):
            if isinstance(x, A.FuncCall) and x.name in AGGREGATES:
                continue
            if isinstance(x, A.ColumnRef) and id(x) in self.cq.columns and self.column(x).role == "key" \
                    and not _inside_aggregate(e, x):
                self.error("IQ302", f"key column `{x.name}` may not be released", x.span,
                           ["keys are for JOIN and COUNT(DISTINCT key) only"])

    def group_key(self, g: A.Expr):
        for ref in self.refs(g):
            col = self.column(ref)
            if col.role == "key":
                self.error("IQ302", f"cannot group by key column `{ref.name}`", ref.span,
                           ["grouping by a person key releases one cell per person"])
                return
        t = self.cq.type_of(g)
        if t.kind == "error":
            return
        card = t.cardinality()
        if card is None:
            self.error("IQ310", f"cannot group by {t.describe()}: its values cannot be enumerated", g.span,
                       ["group by a category, or band the value: `bucket(x, [0, 10, 100])`"])

    def where(self, w: A.Expr):
        for ref in self.refs(w):
            col = self.column(ref)
            if not col.where:
                self.error("IQ312", f"the owner does not allow filtering on `{ref.name}`", ref.span,
                           ["remove the condition on this column"])
        for x in A.walk(w):
            if isinstance(x, (A.BinOp, A.InList)) and _keys_vs_literal(x, self):
                self.error("IQ311", "a condition on a key value singles out a person", x.span,
                           ["keys may not be compared with literals; use JOIN or COUNT(DISTINCT key)"])

    def aggregate(self, agg: A.FuncCall):
        if agg.star:
            return
        arg = agg.args[0]
        if any(isinstance(x, A.Case) for x in A.walk(arg)):
            self.error("IQ313", "conditional aggregate (CASE inside an aggregate)", arg.span,
                       ["a conditional aggregate beside an unconditional one can difference out individuals; "
                        "filter with WHERE or group by the condition instead"])
        refs = self.refs(arg)
        if agg.distinct:
            if not (isinstance(arg, A.ColumnRef) and refs and self.column(refs[0]).role == "key"):
                self.error("IQ316", "COUNT(DISTINCT ...) is only allowed on a key column", arg.span,
                           ["count distinct persons with COUNT(DISTINCT person_id)"])
            return
        for ref in refs:
            col = self.column(ref)
            allowed = col.allowed_aggregates()
            if agg.name == "count":
                if col.role == "key":
                    self.error("IQ302", f"COUNT of key `{ref.name}` counts rows; use COUNT(DISTINCT {ref.name})",
                               agg.span, [f"write COUNT(DISTINCT {ref.name})"])
                continue
            if col.role != "measure" or agg.name not in allowed:
                self.error("IQ304", f"{agg.name.upper()} of `{ref.name}` is not allowed by its owner", agg.span,
                           [f"allowed on `{ref.name}`: {', '.join(a.upper() for a in allowed)}"])
            elif agg.name in NEEDS_CLAMP and getattr(col, "clamp", None) is None:
                self.error("IQ305", f"{agg.name.upper()} of `{ref.name}` needs clamp bounds in the catalog", agg.span,
                           ["the data owner must declare `clamp = [lo, hi]` to bound each person's contribution"])

    def having(self, h: A.Expr):
        k = effective_policy(self.cq, []).min_group_size
        for x in A.walk(h):
            if isinstance(x, A.BinOp) and x.op in ("<", "<=", "=", "<>"):
                side = [s for s in (x.left, x.right) if isinstance(s, A.FuncCall) and s.name == "count"]
                if side:
                    self.error("IQ309", "HAVING on an upper bound of a count selects small groups", x.span,
                               [f"groups below k={k} are suppressed anyway; use `HAVING COUNT(*) >= n`"])

    def receivers(self) -> list[str]:
        cq = self.cq
        allowed = None
        for d in cq.datasets():
            r = set(cq.catalog.datasets[d].receivers())
            allowed = r if allowed is None else allowed & r
        allowed = allowed or set()
        wanted = cq.receivers
        ann = cq.query.annotation("receivers")
        if wanted is None:
            wanted = [p for p in cq.catalog.party_names() if p in allowed]
            if not wanted:
                self.error("IQ307", "no party may receive the result of this query", None,
                           ["the datasets' policies allow no common receiver"])
        for r in wanted:
            if r not in allowed and r in cq.catalog.party_names():
                self.error("IQ307", f"party `{r}` may not receive results from these datasets",
                           ann.span if ann else None, [f"allowed receivers: {', '.join(sorted(allowed)) or 'none'}"])
        purpose = cq.purpose
        ann = cq.query.annotation("purpose")
        for d in cq.datasets():
            purposes = cq.catalog.datasets[d].policy.purposes
            if purposes and purpose is None:
                self.error("IQ308", f"dataset `{d}` requires a declared purpose", cq.query.span,
                           [f"add `@purpose {purposes[0]}` before SELECT (allowed: {', '.join(purposes)})"])
            elif purposes and purpose not in purposes:
                self.error("IQ308", f"purpose `{purpose}` is not allowed for dataset `{d}`", ann.span if ann else None,
                           [f"allowed purposes: {', '.join(purposes)}"])
        return list(wanted)


def _inside_aggregate(root: A.Expr, target: A.Expr) -> bool:
    for x in A.walk(root):
        if isinstance(x, A.FuncCall) and x.name in AGGREGATES and any(y is target for y in A.walk(x)):
            return True
    return False


def _keys_vs_literal(x, dc: DisclosureChecker) -> bool:
    if isinstance(x, A.InList):
        parts, lits = [x.operand], x.items
    else:
        if x.op not in ("=", "<>", "<", "<=", ">", ">="):
            return False
        parts, lits = [x.left, x.right], [x.left, x.right]
    has_key = any(isinstance(p, A.ColumnRef) and id(p) in dc.cq.columns and dc.column(p).role == "key" for p in parts)
    has_lit = any(isinstance(p, A.Literal) for p in lits)
    return has_key and has_lit


def check_disclosure(cq: CheckedQuery) -> tuple[EffectivePolicy | None, list[Diagnostic]]:
    dc = DisclosureChecker(cq)
    receivers = dc.run()
    pol = effective_policy(cq, receivers) if cq.datasets() else None
    if pol is not None:
        cells = 1
        for g in cq.group_by:
            c = cq.type_of(g).cardinality()
            if c is not None:
                cells *= c + (1 if cq.type_of(g).nullable else 0)
        if cells > pol.max_groups:
            dc.error("IQ310", f"GROUP BY makes {cells} cells, more than the {pol.max_groups} the policy allows",
                     cq.query.group_by[0].span if cq.query.group_by else None,
                     ["group by fewer or coarser columns (age_band, region, year)"])
    return pol, dc.diags
