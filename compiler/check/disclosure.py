"""Stage 3: disclosure rules. Checks a CheckedQuery against every dataset's policy (IQ3xx)
and derives the effective (strictest) policy that the plan enforces inside MPC.

spec/disclosure.md states every rule with an anti-pattern and a best-practice query.
Compile-time rules here reject query *shapes*; the cell rules (rows >= k, distinct persons,
own-count, dominance, rounding) depend on the data and are enforced inside MPC (circuit.py).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from insightql.stdlib.aggregates import AGGREGATES

from insightql.compiler.syntax import ast as A
from insightql.compiler.check.checker import CheckedQuery, filtered_count, share_of
from insightql.compiler.diagnostics import Diagnostic
from insightql.compiler.check.privacy import PrivacySpec, check_privacy

COMPARISONS = ("=", "<>", "<", "<=", ">", ">=")
NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "=": "<>", "<>": "="}
FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "<>": "<>"}


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
    privacy: PrivacySpec | None = None  # differential privacy (compiler/check/privacy.py)

    def to_json(self) -> dict:
        return {**({"privacy": self.privacy.to_json()} if self.privacy is not None else {}),
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


@dataclass(frozen=True)
class ColumnView:
    """A column as the disclosure rules see it. For a UNION ALL: the strictest declaration of
    every dataset (hidden > key > dimension > measure; WHERE only if all allow it; the
    aggregates all allow), and every distinct clamp declared."""

    name: str
    role: str
    where: bool
    aggregates: tuple[str, ...]
    clamps: tuple

    @property
    def clamp(self):
        return self.clamps[0] if len(self.clamps) == 1 else None


def column_view(catalog, datasets: list[str], name: str) -> ColumnView:
    cols = [catalog.datasets[d].columns[name] for d in datasets]
    roles = {c.role for c in cols}
    role = next((r for r in ("hidden", "key", "dimension") if r in roles), "measure")
    allowed = [a for a in cols[0].allowed_aggregates() if all(a in c.allowed_aggregates() for c in cols)]
    clamps = tuple(dict.fromkeys(tuple(c.clamp) if getattr(c, "clamp", None) else None for c in cols))
    return ColumnView(name, role, all(c.where for c in cols), tuple(allowed) if role == "measure" else ("count",),
                      clamps)


class DisclosureChecker:
    def __init__(self, cq: CheckedQuery):
        self.cq = cq
        self.diags: list[Diagnostic] = []
        self.pol = effective_policy(cq, []) if cq.datasets() else None

    def error(self, code, msg, span, hints):
        self.diags.append(Diagnostic(code, msg, span, hints))

    def column(self, ref: A.ColumnRef) -> ColumnView:
        """The catalog column behind a resolved reference (strictest over a UNION ALL)."""
        binding, name = self.cq.columns[id(ref)]
        return column_view(self.cq.catalog, self.cq.bindings[binding].datasets, name)

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
        for o in cq.outputs:
            self.output_expr(o.expr)
        for g in cq.group_by:
            self.group_key(g)
        if q.where is not None:
            self.where(q.where)
        for agg in cq.aggregates:
            self.aggregate(agg)
        if self.cq.having is not None:
            self.having(self.cq.having)
        if self.pol is not None:
            self.rounding()
            self.unions()
            self.row_counts()
            self.read_once()
        return self.receivers()

    def _all_exprs(self):
        q = self.cq.query
        yield from (i.expr for i in q.select if i.expr is not None)
        yield from (j.on for j in q.joins)
        if q.where is not None:
            yield q.where
        yield from self.cq.group_by
        if self.cq.having is not None:
            yield self.cq.having
        yield from (o.expr for o in q.order_by)

    # -- what is selected and grouped ------------------------------------------------------
    def output_expr(self, e: A.Expr):
        for x in A.walk(e):
            if isinstance(x, A.ColumnRef) and id(x) in self.cq.columns and self.column(x).role == "key" \
                    and not _inside_aggregate(e, x):
                self.error("IQ302", f"key column `{x.name}` may not be released", x.span,
                           ["keys are for JOIN and COUNT(DISTINCT key) only"])

    def group_key(self, g: A.Expr):
        for ref in self.refs(g):
            if self.column(ref).role == "key":
                self.error("IQ302", f"cannot group by key column `{ref.name}`", ref.span,
                           ["grouping by a person key releases one cell per person"])
                return
        t = self.cq.type_of(g)
        if t.kind == "error":
            return
        if t.cardinality() is None:
            self.error("IQ310", f"cannot group by {t.describe()}: its values cannot be enumerated", g.span,
                       ["group by a category, or band the value: `bucket(x, [0, 10, 100])`"])

    def where(self, w: A.Expr):
        for ref in self.refs(w):
            if not self.column(ref).where:
                self.error("IQ312", f"the owner does not allow filtering on `{ref.name}`", ref.span,
                           ["remove the condition on this column"])
        for x in A.walk(w):
            if isinstance(x, (A.BinOp, A.InList)) and _keys_vs_constant(x, self):
                self.error("IQ311", "a condition on a key value singles out a person", x.span,
                           ["keys may not be compared with constants; use JOIN or COUNT(DISTINCT key)"])

    # -- aggregates ------------------------------------------------------------------------
    def aggregate(self, agg: A.FuncCall):
        subgroup = filtered_count(agg)
        if subgroup is None:
            subgroup = share_of(agg, self.cq)
        if subgroup is not None:  # a count of the rows where a condition holds: the condition is a WHERE
            self.where(subgroup)  # (IQ311, IQ312); the subgroup and its complement: filter.rows (2.13)
            return
        if agg.filter is not None:
            self.error("IQ313", f"FILTER on {agg.name.upper()}: only COUNT(*) FILTER (WHERE ...) counts a subgroup",
                       agg.filter.span, ["count the subgroup with COUNT(*) FILTER (WHERE ...), or take its share "
                                         "with AVG(condition); filter other aggregates with WHERE"])
            return
        if agg.star:
            return
        arg = agg.args[0]
        if any(isinstance(x, A.Case) for x in A.walk(arg)):
            self.error("IQ313", "conditional aggregate (CASE inside an aggregate)", arg.span,
                       ["a conditional aggregate beside an unconditional one can difference out individuals; "
                        "filter with WHERE or group by the condition instead",
                        "a count of a subgroup is COUNT(*) FILTER (WHERE ...) (or SUM(CASE WHEN ... THEN 1 "
                        "ELSE 0 END)); its share is AVG(condition)"])
            return
        refs = self.refs(arg)
        if agg.distinct:
            if not (isinstance(arg, A.ColumnRef) and refs and self.column(refs[0]).role == "key"):
                self.error("IQ316", "COUNT(DISTINCT ...) is only allowed on a key column", arg.span,
                           ["count distinct persons with COUNT(DISTINCT person_id)"])
            return
        if not isinstance(arg, A.ColumnRef):
            self.error("IQ317", f"{agg.name.upper()} of a computed expression; aggregates take a column", arg.span,
                       ["aggregate the column itself, band it in GROUP BY (`bucket(x, [...])`), or combine "
                        "aggregates in SELECT (`SUM(x) - 48 * COUNT(x)`)",
                        "inside an aggregate an expression can count a subset no threshold protects, hide NULLs "
                        "from the own-count rule, or escape the owner's clamp"])
        for ref in refs:
            col = self.column(ref)
            allowed = col.aggregates
            if agg.name == "count":
                if col.role == "key":
                    self.error("IQ302", f"COUNT of key `{ref.name}` counts rows; use COUNT(DISTINCT {ref.name})",
                               agg.span, [f"write COUNT(DISTINCT {ref.name})"])
                continue
            if col.role != "measure" or agg.name not in allowed:
                self.error("IQ304", f"{agg.name.upper()} of `{ref.name}` is not allowed by its owner", agg.span,
                           [f"allowed on `{ref.name}`: {', '.join(a.upper() for a in allowed)}"])
                continue
            if len(col.clamps) > 1:
                self.error("IQ322", f"the datasets of this UNION ALL declare different clamp bounds for "
                           f"`{ref.name}`", agg.span,
                           ["the owners must declare the same `clamp = [lo, hi]`; the plan would apply one of them "
                            "to every party's rows"])
            elif AGGREGATES[agg.name].needs_clamp and col.clamp is None:
                self.error("IQ305", f"{agg.name.upper()} of `{ref.name}` needs clamp bounds in the catalog", agg.span,
                           ["the data owner must declare `clamp = [lo, hi]` to bound each person's contribution"])
            if AGGREGATES[agg.name].hides_count and self.pol is not None and self.pol.dominance_n is not None:
                name = ref.name
                self.error("IQ318", f"{agg.name.upper()} is not covered by the dominance rule of these datasets",
                           agg.span, [f"AVG, VAR and STDDEV reveal the size of a sum that may be dominated by one "
                                      f"record; write `SUM({name}) / COUNT({name})`, which is withheld when the "
                                      f"SUM is dominated"])

    # -- HAVING ----------------------------------------------------------------------------
    def having(self, h: A.Expr):
        self._having_bool(h, False)
        for agg in _aggregates_in(h):
            why = self._withheld_alone(agg)
            if why:
                self.error("IQ319", f"HAVING uses {agg.name.upper()}, which may be withheld in a released cell "
                           f"({why})", agg.span,
                           ["HAVING is evaluated on the exact value, so its outcome would leak a withheld value; "
                            "use COUNT(*) or an aggregate of a non-nullable column in HAVING"])

    def _having_bool(self, e: A.Expr, negated: bool):
        if isinstance(e, A.BinOp) and e.op in ("and", "or"):
            self._having_bool(e.left, negated)
            self._having_bool(e.right, negated)
        elif isinstance(e, A.UnaryOp) and e.op == "not":
            self._having_bool(e.operand, not negated)
        elif isinstance(e, A.BinOp) and e.op in COMPARISONS:
            self._having_compare(e, negated)
        elif any(_is_count(x) for x in A.walk(e)):
            self._iq309(e)

    def _having_compare(self, x: A.BinOp, negated: bool):
        if not any(_is_count(y) for y in A.walk(x)):
            return
        op = NEGATE[x.op] if negated else x.op
        if _is_count(x.left) and not _has_count(x.right):
            other = x.right
        elif _is_count(x.right) and not _has_count(x.left):
            other, op = x.left, FLIP[op]
        else:
            self._iq309(x)
            return
        if op not in (">=", ">"):
            self._iq309(x)
            return
        base = self.pol.round_counts_to if self.pol else 1
        m = _int_value(other)
        if base > 1 and (m is None or (m if op == ">=" else m + 1) % base != 0):
            self.error("IQ320", f"HAVING compares an exact count, but counts are rounded down to multiples of {base}",
                       x.span, [f"the outcome would undo the rounding; compare with a multiple of {base}: "
                                f"`HAVING COUNT(*) >= {base * 4}`"])

    def _iq309(self, x: A.Expr):
        k = self.pol.min_group_size if self.pol else 10
        self.error("IQ309", "HAVING on an upper bound of a count selects small groups", x.span,
                   [f"groups below k={k} are suppressed anyway; only `HAVING COUNT(...) >= n` is allowed"])

    def _withheld_alone(self, agg: A.FuncCall) -> str | None:
        """Why this aggregate may be withheld in a cell that is released, or None."""
        if filtered_count(agg) is not None or share_of(agg, self.cq) is not None:
            return "subgroup rule for a filtered count"
        if agg.star:
            return None
        if agg.distinct:
            return "distinct keys >= k"
        arg = agg.args[0]
        if self.cq.type_of(arg).nullable:
            return "own-count rule for a nullable column"
        if agg.name == "sum" and self.pol is not None and self.pol.dominance_n is not None:
            return "dominance rule"
        spec = AGGREGATES[agg.name]
        if spec.min_values and self.pol is not None:
            need = spec.min_values(tuple(int(x.value) for x in agg.args[1:]), self.pol.round_counts_to)
            if self.pol.min_group_size < need:
                return f"needs {need} values"
        return None

    # -- rounding, unions, row counts ------------------------------------------------------
    def rounding(self):
        """Counts are rounded only where they are output on their own (circuit.build_outputs)."""
        base = self.pol.round_counts_to
        if base <= 1:
            return
        sums, avgs = {}, {}
        for o in self.cq.outputs:
            e = o.expr
            if isinstance(e, A.FuncCall) and e.name == "round" and e.args:
                e = e.args[0]
            if not (isinstance(e, A.FuncCall) and e.name in AGGREGATES) and any(_is_count(x) for x in A.walk(e)):
                self.error("IQ321", f"`{o.name}` computes with a count, so it would not be rounded to a multiple "
                           f"of {base}", o.expr.span,
                           ["select the count on its own; only a bare COUNT is rounded"])
            elif not (isinstance(e, A.FuncCall) and e.name in AGGREGATES) and \
                    any(isinstance(x, A.FuncCall) and x.name == "sum" for x in A.walk(e)):
                self.error("IQ321", f"`{o.name}` computes with a SUM, so it would not be rounded: a WHERE that "
                           f"makes every value 1 turns a SUM into the exact count, which counts rounded to "
                           f"multiples of {base} hide", o.expr.span,
                           ["select the SUM on its own; only a bare SUM is rounded (to a multiple of "
                            f"{base} times the largest value one row adds)"])
            for x in _aggregates_in(o.expr):
                if x.name in ("sum", "avg") and x.args and isinstance(x.args[0], A.ColumnRef):
                    (sums if x.name == "sum" else avgs)[x.args[0].name] = x
        for o in self.cq.outputs:
            for x in _aggregates_in(o.expr):
                if AGGREGATES[x.name].hides_count:
                    self.error("IQ321", f"{x.name.upper()} reveals its exact count through its denominator, but "
                               f"counts are rounded to multiples of {base}", x.span,
                               ["a mean of integers with enough digits has one denominator that fits; release "
                                f"SUM and COUNT (rounded) instead, or use MEDIAN"])
        for name, avg in avgs.items():
            if name in sums:
                self.error("IQ321", f"SUM({name}) beside AVG({name}) reveals COUNT({name}) exactly, but counts are "
                           f"rounded to multiples of {base}", avg.span,
                           [f"release SUM({name}) and COUNT({name}) (rounded), or AVG({name}) alone"])

    def unions(self):
        cat = self.cq.catalog
        q = self.cq.query
        for b in self.cq.bindings.values():
            keys = {cat.datasets[d].person_key for d in b.datasets}
            if len(keys) > 1:
                ref = next((r for r in q.unions if r.name in b.datasets), q.source)
                self.error("IQ322", "the datasets of this UNION ALL declare different person keys ("
                           + ", ".join(sorted(str(k) for k in keys)) + ")", ref.span,
                           ["the distinct-person threshold needs one person key column in every dataset; "
                            "the owners must declare the same `person_key`"])

    def read_once(self):
        """source.once (spec/disclosure.md 2.2): every source row counts once toward k, rounding and
        dominance, so a dataset may be named once in FROM (UNION ALL or JOIN, whatever the alias)."""
        q = self.cq.query
        seen = set()
        for ref in [q.source, *q.unions, *(j.table for j in q.joins)]:
            if ref.name in seen:
                self.error("IQ324", f"dataset `{ref.name}` is read more than once", ref.span,
                           ["each of its rows would count twice toward k, rounding and dominance: a single record "
                            "could be released as a cell of k; name each dataset once"])
            seen.add(ref.name)

    def row_counts(self):
        q = self.cq.query
        if q.group_by or q.where is not None:
            return
        closed = [d for d in self.cq.datasets() if not self.cq.catalog.datasets[d].policy.allow_row_counts]
        if not closed:
            return
        for o in self.cq.outputs:
            for x in _aggregates_in(o.expr):
                if x.name == "count" and not x.distinct and (x.star or not self.cq.type_of(x.args[0]).nullable):
                    self.error("IQ323", f"COUNT over all rows reveals the row count of `{closed[0]}`, which its "
                               "owner does not allow", x.span,
                               ["count a subset (WHERE) or per group (GROUP BY)"])

    # -- receivers and purpose --------------------------------------------------------------
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
        listed = next((cq.catalog.datasets[d].policy.purposes for d in cq.datasets()
                       if cq.catalog.datasets[d].policy.purposes), [])
        if purpose is None and listed:  # owners who list purposes require one; a plain SELECT is fine otherwise
            self.error("IQ308", "the query declares no purpose", cq.query.span,
                       [f"add `@purpose {listed[0] if listed else 'research'}` before SELECT"
                        + (f" (allowed: {', '.join(listed)})" if listed else "")])
            return list(wanted)
        for d in cq.datasets():
            purposes = cq.catalog.datasets[d].policy.purposes
            if purposes and purpose not in purposes:
                self.error("IQ308", f"purpose `{purpose}` is not allowed for dataset `{d}`", ann.span if ann else None,
                           [f"allowed purposes: {', '.join(purposes)}"])
        return list(wanted)


def _inside_aggregate(root: A.Expr, target: A.Expr) -> bool:
    for x in A.walk(root):
        if isinstance(x, A.FuncCall) and x.name in AGGREGATES and any(y is target for y in A.walk(x)):
            return True
    return False


def _aggregates_in(e: A.Expr) -> list[A.FuncCall]:
    return [x for x in A.walk(e) if isinstance(x, A.FuncCall) and x.name in AGGREGATES]


def _is_count(e: A.Expr) -> bool:
    return isinstance(e, A.FuncCall) and (e.name == "count" or filtered_count(e) is not None)


def _has_count(e: A.Expr) -> bool:
    return any(_is_count(x) for x in A.walk(e))


def _int_value(e: A.Expr) -> int | None:
    if isinstance(e, A.Literal) and e.kind == "int":
        return int(e.value)
    if isinstance(e, A.UnaryOp) and e.op == "neg":
        v = _int_value(e.operand)
        return None if v is None else -v
    return None


def _keys_vs_constant(x, dc: DisclosureChecker) -> bool:
    """A key compared (=, <>, IN, ...) with something that reads no column: a constant."""
    if isinstance(x, A.InList):
        parts, others = [x.operand], list(x.items)
    else:
        if x.op not in COMPARISONS:
            return False
        parts, others = [x.left, x.right], [x.left, x.right]
    has_key = any(isinstance(p, A.ColumnRef) and id(p) in dc.cq.columns and dc.column(p).role == "key" for p in parts)
    has_const = any(not any(isinstance(y, A.ColumnRef) for y in A.walk(o)) for o in others)
    return has_key and has_const


def check_disclosure(cq: CheckedQuery) -> tuple[EffectivePolicy | None, list[Diagnostic]]:
    dc = DisclosureChecker(cq)
    receivers = dc.run()
    pol = effective_policy(cq, receivers) if cq.datasets() else None
    if pol is not None:
        privacy, more = check_privacy(cq)  # spec/privacy.md: IQ325-IQ328
        dc.diags += more
        pol = dataclasses.replace(pol, privacy=privacy) if privacy is not None else pol
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
