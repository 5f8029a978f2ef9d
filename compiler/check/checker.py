"""Stage 2: AST -> CheckedQuery. Name resolution and type checking (IQ2xx diagnostics).

Every error in a query is collected; an expression that fails gets the `error` type so one
mistake does not cascade into many.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from insightql.stdlib.aggregates import AGGREGATES
from insightql.stdlib.functions import FUNCTIONS, FunctionError
from insightql.stdlib.types import BOOL, NULL, IQType, date_to_days, join_types

from insightql.compiler.syntax import ast as A
from insightql.compiler.check.catalog import Catalog, Dataset
from insightql.compiler.diagnostics import Diagnostic, Source, Span
from insightql.compiler.plaintext.results import split_post
from insightql.compiler.syntax.formatter import expr as format_expr

ERROR = IQType("error")
ANNOTATIONS = ("name", "description", "purpose", "receivers", "epsilon")  # epsilon: spec/privacy.md
MAX_MAGNITUDE = 10 ** 36
"""Largest bound a numeric expression may have; beyond it no secure integer can hold it (IQ217)."""


@dataclass
class Binding:
    """A name in FROM: one dataset, or a UNION ALL of datasets with one schema."""

    name: str
    datasets: list[str]
    columns: dict[str, IQType]


@dataclass
class OutputColumn:
    name: str
    expr: A.Expr  # what MPC computes and reveals (a pct() around it already stripped: `pct` below)
    type: IQType
    is_aggregate: bool
    pct: bool = False  # the item is pct(expr) or round(pct(...)): the public stage takes shares of the column
    pct_by: tuple[A.Expr, ...] = ()  # pct(...) OVER (PARTITION BY g, ...): the GROUP BY expressions g


@dataclass
class CheckedQuery:
    query: A.Query
    catalog: Catalog
    bindings: dict[str, Binding]
    types: dict[int, IQType] = field(default_factory=dict)
    columns: dict[int, tuple[str, str]] = field(default_factory=dict)  # id(ColumnRef) -> (binding, column)
    outputs: list[OutputColumn] = field(default_factory=list)
    group_by: list[A.Expr] = field(default_factory=list)
    aggregates: list[A.FuncCall] = field(default_factory=list)
    order_by: list[tuple[int, bool]] = field(default_factory=list)  # (output index, descending)
    having: A.Expr | None = None  # HAVING with SELECT aliases replaced by their expressions
    name: str = "query"
    description: str = ""
    purpose: str | None = None
    receivers: list[str] | None = None
    epsilon: Fraction | None = None  # `@epsilon 0.5`: differential privacy asked by the query (spec/privacy.md)

    def type_of(self, e: A.Expr) -> IQType:
        return self.types[id(e)]

    def datasets(self) -> list[str]:
        return [d for b in self.bindings.values() for d in b.datasets]


def suggest(name: str, candidates) -> list[str]:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return [f"did you mean `{close[0]}`?"] if close else []


def column_type(col) -> IQType:
    t = col.type
    if t == "integer":
        return IQType("int", col.min, col.max, nullable=col.nullable)
    if t == "decimal":
        return IQType("decimal", col.min, col.max, col.scale, nullable=col.nullable)
    if t == "boolean":
        return IQType("bool", nullable=col.nullable)
    if t == "category":
        return IQType("category", domain=tuple(col.domain), nullable=col.nullable)
    if t == "date":
        return IQType("date", date_to_days(col.min), date_to_days(col.max), nullable=col.nullable)
    return IQType("key", 0, 2 ** col.bits - 1, nullable=col.nullable)


class Checker:
    def __init__(self, catalog: Catalog, query: A.Query):
        self.catalog = catalog
        self.q = query
        self.diags: list[Diagnostic] = []
        self.cq = CheckedQuery(query, catalog, {})
        self.failed: set[str] = set()  # FROM names whose dataset is unknown: their columns are not reported again
        self.bound: set[int] = set()  # id() of the TableRefs that got a binding
        self.post_ok: set[int] = set()  # id() of the pct() calls that are whole SELECT items
        self.reported: set[int] = set()  # id() of expressions already reported: typed `error`, silently

    def error(self, code: str, msg: str, span: Span | None, hints: list[str] | None = None):
        self.diags.append(Diagnostic(code, msg, span, hints or []))

    # -- FROM -----------------------------------------------------------------------------
    def _dataset(self, ref: A.TableRef) -> Dataset | None:
        ds = self.catalog.datasets.get(ref.name)
        if ds is None:
            self.error("IQ201", f"unknown dataset `{ref.name}`", ref.span,
                       suggest(ref.name, self.catalog.datasets) + ["`iq catalog` lists the datasets"])
        return ds

    def bind_sources(self):
        q = self.q
        first = self._dataset(q.source)
        if q.unions:
            refs = [q.source, *q.unions]
            found = [(r, self._dataset(r)) for r in refs]
            if any(ds is None for _, ds in found):
                self.failed.add(q.source.binding)
                return
            cols = {n: column_type(c) for n, c in first.columns.items()}
            for ref, ds in found[1:]:
                names = set(ds.columns)
                if names != set(cols):
                    hints = [f"only in `{n}`: {_few(cs)}" for n, cs in
                             ((q.source.name, set(cols) - names), (ref.name, names - set(cols))) if cs]
                    self.error("IQ207", f"`{ref.name}` does not have the same columns as `{q.source.name}`", ref.span,
                               hints + ["the datasets in a UNION ALL must declare the same column names"])
                    continue
                for n, c in ds.columns.items():
                    j = join_types(cols[n], column_type(c))
                    if j is None or (j.kind == "key") != (cols[n].kind == "key"):
                        self.error("IQ207", f"column `{n}` has incompatible types across UNION ALL", ref.span)
                    else:
                        cols[n] = j
            name = q.source.alias or q.source.name
            self.cq.bindings[name] = Binding(name, [r.name for r in refs], cols)
            return
        refs = [q.source, *(j.table for j in q.joins)]
        for ref in refs:
            ds = first if ref is q.source else self._dataset(ref)
            if ds is None:
                self.failed.add(ref.binding)
                continue
            if ref.binding in self.cq.bindings:
                self.error("IQ206", f"`{ref.binding}` is used twice in FROM", ref.span, ["give each table its own alias"])
                continue
            self.bound.add(id(ref))
            self.cq.bindings[ref.binding] = Binding(ref.binding, [ref.name],
                                                    {n: column_type(c) for n, c in ds.columns.items()})

    # -- expressions ----------------------------------------------------------------------
    def resolve(self, ref: A.ColumnRef) -> IQType:
        b = self.cq.bindings
        if ref.qualifier is not None:
            if ref.qualifier in self.failed and ref.qualifier not in b:
                return ERROR
            if ref.qualifier not in b:
                self.error("IQ201", f"unknown table or alias `{ref.qualifier}`", ref.span, suggest(ref.qualifier, b))
                return ERROR
            binding = b[ref.qualifier]
            if ref.name not in binding.columns:
                self.error("IQ203", f"`{ref.qualifier}` has no column `{ref.name}`", ref.span,
                           suggest(ref.name, binding.columns))
                return ERROR
            self.cq.columns[id(ref)] = (binding.name, ref.name)
            return binding.columns[ref.name]
        owners = [bd for bd in b.values() if ref.name in bd.columns]
        if not owners:
            if self.failed:
                return ERROR  # it may belong to the unknown dataset, already reported
            every = {c for bd in b.values() for c in bd.columns}
            hints = suggest(ref.name, every) or ([f"columns are: {', '.join(sorted(every))}"] if every else [])
            if any(i.alias == ref.name for i in self.q.select):
                hints = [f"`{ref.name}` is a SELECT alias; only GROUP BY, HAVING and ORDER BY may use aliases"]
            self.error("IQ203", f"unknown column `{ref.name}`", ref.span, hints)
            return ERROR
        if len(owners) > 1:
            self.error("IQ202", f"column `{ref.name}` is ambiguous", ref.span,
                       [f"qualify it: {', '.join(f'{o.name}.{ref.name}' for o in owners)}"])
            return ERROR
        self.cq.columns[id(ref)] = (owners[0].name, ref.name)
        return owners[0].columns[ref.name]

    def expr(self, e: A.Expr, agg_ok: bool, in_agg: bool = False) -> IQType:
        t = self._expr(e, agg_ok, in_agg)
        if t.numeric and not _bounded(t):
            self.error("IQ217", "the value range of this expression is too large for secure computation", e.span,
                       [f"numeric values must stay within ±10^{len(str(MAX_MAGNITUDE)) - 1}"])
            t = ERROR
        self.cq.types[id(e)] = t
        return t

    def _expr(self, e, agg_ok, in_agg) -> IQType:
        if id(e) in self.reported:
            return ERROR
        if isinstance(e, A.Literal):
            return _literal_type(e)
        if isinstance(e, A.ColumnRef):
            return self.resolve(e)
        if isinstance(e, A.FuncCall):
            if e.partition is not None and getattr(FUNCTIONS.get(e.name), "cost", None) != "public":
                self.error("IQ221", f"OVER (PARTITION BY ...) is not allowed on `{e.name.upper() if e.name in AGGREGATES else e.name}`", e.span,
                           ["only pct() takes OVER (PARTITION BY ...): `pct(COUNT(*)) OVER (PARTITION BY region)` "
                            "is the percent of each released value within its region"])
                return ERROR
            if e.name in AGGREGATES:
                return self.aggregate(e, agg_ok, in_agg)
            return self.call(e, agg_ok, in_agg)
        if isinstance(e, A.UnaryOp):
            t = self.expr(e.operand, agg_ok, in_agg)
            if t is ERROR:
                return ERROR
            if e.op == "not":
                return self._want_bool(t, e.operand, "NOT") 
            if not t.numeric:
                self.error("IQ210", f"cannot negate {t.describe()}", e.span)
                return ERROR
            return IQType(t.kind, -t.hi, -t.lo, t.scale, nullable=t.nullable)
        if isinstance(e, A.BinOp):
            return self.binop(e, agg_ok, in_agg)
        if isinstance(e, (A.InList, A.Between)):
            return self.membership(e, agg_ok, in_agg)
        if isinstance(e, A.IsNull):
            self.expr(e.operand, agg_ok, in_agg)
            return BOOL
        if isinstance(e, A.Case):
            return self.case(e, agg_ok, in_agg)
        if isinstance(e, A.ListLiteral):
            self.error("IQ213", "a list [...] is only allowed as a function argument", e.span,
                       ["for membership tests write `x IN ('a', 'b')`"])
            return ERROR
        raise AssertionError(e)

    def _want_bool(self, t: IQType, e, ctx: str) -> IQType:
        if t is ERROR:
            return ERROR
        if t.kind != "bool":
            self.error("IQ211", f"{ctx} needs a true/false condition, not {t.describe()}", e.span)
            return ERROR
        return BOOL.with_nullable(t.nullable)

    def binop(self, e: A.BinOp, agg_ok, in_agg) -> IQType:
        lt, rt = self.expr(e.left, agg_ok, in_agg), self.expr(e.right, agg_ok, in_agg)
        if e.op in ("and", "or"):  # each side on its own, so an error on one does not hide the other's
            a, b = self._want_bool(lt, e.left, e.op.upper()), self._want_bool(rt, e.right, e.op.upper())
            return ERROR if ERROR in (a, b) else BOOL.with_nullable(lt.nullable or rt.nullable)
        if ERROR in (lt, rt):
            return ERROR
        if e.op in ("=", "<>", "<", "<=", ">", ">="):
            self.comparable(lt, e.left, rt, e.right, e, ordered=e.op not in ("=", "<>"))
            return BOOL.with_nullable(lt.nullable or rt.nullable)
        if not (lt.numeric and rt.numeric):
            bad = e.left if not lt.numeric else e.right
            self.error("IQ210", f"operator `{e.op}` needs numbers, not {(lt if not lt.numeric else rt).describe()}",
                       bad.span, ["arithmetic works on integer and decimal columns"])
            return ERROR
        return _arith(e.op, lt, rt)

    def comparable(self, lt: IQType, le, rt: IQType, re, whole, ordered: bool):
        """Check that two sides can be compared; category literals must be in the domain."""
        for t, other, oe in ((lt, rt, re), (rt, lt, le)):
            if t.kind == "category" and isinstance(oe, A.Literal) and oe.kind == "string":
                if oe.value not in t.domain:
                    self.error("IQ212", f"'{oe.value}' is not in the category's domain", oe.span,
                               suggest(oe.value, t.domain) + [f"the domain is {t.describe()}"])
                if ordered:
                    self.error("IQ214", "categories have no order; use = or IN", whole.span)
                return
        if lt.kind == "null" or rt.kind == "null":
            self.error("IQ215", "comparing with NULL is never true", whole.span, ["write `x IS NULL` or `x IS NOT NULL`"])
            return
        j = join_types(lt, rt)
        if j is None or (lt.kind == "key") != (rt.kind == "key"):
            kinds = {lt.kind, rt.kind}
            hints = ["date literals are written DATE 'YYYY-MM-DD'"] if kinds == {"date", "string"} else \
                ["keys are opaque: they can only be joined or counted with COUNT(DISTINCT ...)"] if "key" in kinds else \
                ["write numbers without quotes"] if kinds in ({"int", "string"}, {"decimal", "string"}) else []
            self.error("IQ210", f"cannot compare {lt.describe()} with {rt.describe()}", whole.span, hints)
        elif ordered and j.kind in ("bool", "category", "key"):
            self.error("IQ214", f"{j.kind} values have no order; use = or IN", whole.span)

    def membership(self, e, agg_ok, in_agg) -> IQType:
        t = self.expr(e.operand, agg_ok, in_agg)
        others = list(e.items) if isinstance(e, A.InList) else [e.low, e.high]
        for o in others:
            ot = self.expr(o, agg_ok, in_agg)
            if t is not ERROR and ot is not ERROR:
                self.comparable(t, e.operand, ot, o, e, ordered=isinstance(e, A.Between))
        return BOOL.with_nullable(t.nullable) if t is not ERROR else ERROR

    def case(self, e: A.Case, agg_ok, in_agg) -> IQType:
        out: IQType | None = None
        bad = False
        results = [v for _, v in e.whens] + ([e.else_] if e.else_ is not None else [])
        for c, _ in e.whens:
            bad |= self._want_bool(self.expr(c, agg_ok, in_agg), c, "WHEN") is ERROR
        for v in results:
            vt = self.expr(v, agg_ok, in_agg)
            if vt is ERROR:
                bad = True
                continue
            if vt.kind == "string":  # a string result makes the CASE a category
                vt = IQType("category", domain=(v.value,) if isinstance(v, A.Literal) else vt.domain,
                            nullable=vt.nullable)
            j = vt if out is None else join_types(out, vt)
            if j is None:
                self.error("IQ216", f"CASE results do not mix: {out.describe()} and {vt.describe()}", v.span)
                bad = True
            else:
                out = j
        if bad or out is None:
            return ERROR
        return out.with_nullable(out.nullable or e.else_ is None)

    def call(self, e: A.FuncCall, agg_ok, in_agg) -> IQType:
        spec = FUNCTIONS.get(e.name)
        if spec is None:
            self.error("IQ230", f"unknown function `{e.name}`", e.span,
                       suggest(e.name, [*FUNCTIONS, *AGGREGATES]) + ["spec/stdlib.md lists the functions"])
            return ERROR
        if not spec.min_args <= len(e.args) <= spec.max_args:
            self.error("IQ231", f"`{e.name}` takes {spec.min_args}"
                       + (f" to {spec.max_args}" if spec.max_args != spec.min_args else "")
                       + f" argument(s), got {len(e.args)}", e.span, [f"signature: {spec.signature}"])
            return ERROR
        if spec.cost == "public" and id(e) not in self.post_ok:
            self.error("IQ221", f"`{e.name}` is allowed only as a whole SELECT column", e.span,
                       [f"{e.name}() is computed on the released table, after aggregation: write "
                        f"`SELECT ..., {e.name}(COUNT(*)) AS share` (or `round({e.name}(COUNT(*)), 1)`) "
                        "and order by its alias"])
            return ERROR
        if spec.cost == "public" and not any(isinstance(x, A.FuncCall) and x.name in AGGREGATES
                                             for x in A.walk(e.args[0])):
            self.error("IQ232", f"{e.name}() takes an aggregate, e.g. {e.name}(COUNT(*))", e.args[0].span,
                       [f"signature: {spec.signature}"])
            return ERROR
        types, consts = [], []
        for a in e.args:
            if isinstance(a, A.ListLiteral):
                vals = [_const(i) for i in a.items]
                types.append(IQType("list"))
                consts.append(vals if all(v is not None for v in vals) else None)
                self.cq.types[id(a)] = IQType("list")
                continue
            types.append(self.expr(a, agg_ok, in_agg))
            consts.append(_const(a))
        if ERROR in types:
            return ERROR
        try:
            return spec.infer(types, consts)
        except FunctionError as err:
            self.error("IQ232", f"{e.name}(): {err}", e.span, [f"signature: {spec.signature}"])
            return ERROR

    def aggregate(self, e: A.FuncCall, agg_ok, in_agg) -> IQType:
        if in_agg:
            self.error("IQ220", f"aggregate `{e.name.upper()}` inside another aggregate", e.span,
                       ["aggregates cannot be nested; compute the inner value per row instead"])
            return ERROR
        if not agg_ok:
            self.error("IQ221", f"aggregate `{e.name.upper()}` is not allowed here", e.span,
                       ["aggregates belong in SELECT and HAVING; filter rows with WHERE on plain columns"])
            return ERROR
        self.cq.aggregates.append(e)
        if e.filter is not None:  # a row condition, like WHERE; its rules are the disclosure stage's
            if self._want_bool(self.expr(e.filter, agg_ok, True), e.filter, "FILTER (WHERE ...)") is ERROR:
                return ERROR
        if e.star:
            if e.name != "count":
                self.error("IQ233", f"`{e.name.upper()}(*)` is not an aggregate; only COUNT(*) is", e.span)
                return ERROR
            return IQType("int", 0, self.max_rows())
        spec = AGGREGATES[e.name]
        if len(e.args) != 1 + len(spec.consts):
            self.error("IQ231", f"`{e.name.upper()}` takes {_arguments(spec)}", e.span,
                       [f"write {spec.signature}"] if spec.consts else [])
            return ERROR
        t = self.expr(e.args[0], agg_ok, True)
        if t is ERROR:
            return ERROR
        consts = self.aggregate_consts(e, spec)
        if consts is None:
            return ERROR
        if e.distinct and (e.name != "count"):
            self.error("IQ234", f"DISTINCT is only supported in COUNT(DISTINCT key)", e.span)
            return ERROR
        if "any" in spec.takes:
            return spec.infer(t, self.max_rows(), consts)
        if t.kind == "key":
            self.error("IQ235", f"`{e.name.upper()}` of a key makes no sense", e.span,
                       ["keys support COUNT(DISTINCT key) and JOIN only"])
            return ERROR
        if e.name == "avg" and t.kind == "bool" and not e.distinct:  # the share of rows where it is TRUE
            return IQType("decimal", 0, 1, 4, nullable=True)
        if not (t.numeric and "number" in spec.takes) and not (t.kind == "date" and "date" in spec.takes):
            self.error("IQ232", f"`{e.name.upper()}` needs a number, not {t.describe()}", e.args[0].span)
            return ERROR
        return spec.infer(t, self.max_rows(), consts)

    def aggregate_consts(self, e: A.FuncCall, spec) -> tuple | None:
        """The literal arguments after the column (PERCENTILE's percent), checked against their range."""
        out = []
        for c, x in zip(spec.consts, e.args[1:]):
            if not (isinstance(x, A.Literal) and x.kind == "int" and c.lo <= x.value <= c.hi):
                self.error("IQ232", f"`{e.name.upper()}`'s {c.name} must be a whole number from {c.lo} to {c.hi}",
                           x.span, [f"write {spec.signature}, e.g. {e.name.upper()}(x, 90)"])
                return None
            out.append(int(x.value))
        return tuple(out)

    def max_rows(self) -> int:
        return sum(self.catalog.datasets[d].max_rows for d in self.cq.datasets()) or 1

    # -- clauses --------------------------------------------------------------------------
    def annotations(self):
        seen = set()
        for a in self.q.annotations:
            if a.name not in ANNOTATIONS:
                self.error("IQ104", f"unknown annotation `@{a.name}`", a.span,
                           suggest(a.name, ANNOTATIONS) + [f"annotations are: {', '.join('@' + n for n in ANNOTATIONS)}"])
                continue
            if a.name in seen:
                self.error("IQ104", f"`@{a.name}` is given twice", a.span)
            seen.add(a.name)
            if (a.name == "epsilon") != isinstance(a.value, Decimal) or (a.name == "epsilon" and a.value <= 0):
                self.error("IQ108", f"`@{a.name}` takes a positive number" if a.name == "epsilon" else
                           f"`@{a.name}` takes names or a 'quoted string', not a number", a.span,
                           ["write `@epsilon 0.5` (spec/privacy.md)"] if a.name == "epsilon" else [])
                continue
            if a.name == "epsilon":
                self.cq.epsilon = Fraction(str(a.value))
                continue
            if a.name in ("name", "purpose") and isinstance(a.value, tuple) and len(a.value) != 1:
                self.error("IQ108", f"`@{a.name}` takes one value, got {len(a.value)}", a.span,
                           [f"write `@{a.name} {a.value[0]}`, or one 'quoted string'"])
            value = a.value if isinstance(a.value, str) else " ".join(a.value)
            if a.name == "receivers" and isinstance(a.value, str) and not a.value.strip():
                self.error("IQ108", "`@receivers` needs at least one party", a.span, ["write `@receivers police, ngo`"])
            elif a.name == "receivers":
                names = list(a.value) if isinstance(a.value, tuple) else [n.strip() for n in a.value.split(",")]
                for r in names:
                    if r not in self.catalog.party_names():
                        self.error("IQ240", f"unknown party `{r}` in @receivers", a.span,
                                   suggest(r, self.catalog.party_names()))
                self.cq.receivers = names
            elif a.name == "purpose":
                self.cq.purpose = value
            elif a.name == "name":
                self.cq.name = value
            else:
                self.cq.description = value

    def is_grouped(self, e: A.Expr) -> bool:
        if any(e == g for g in self.cq.group_by) or isinstance(e, A.Literal) or id(e) in self.reported:
            return True
        if isinstance(e, A.FuncCall) and e.name in AGGREGATES:
            return True
        if isinstance(e, A.ColumnRef):
            return False
        return all(self.is_grouped(c) for c in A.children(e))

    def check(self) -> CheckedQuery:
        q = self.q
        self.annotations()
        self.bind_sources()
        if not self.cq.bindings:
            return self.cq
        for j in q.joins:
            if id(j.table) in self.bound:  # else its error is already reported
                self.join_condition(j)
        if q.where is not None:
            self._want_bool(self.expr(q.where, agg_ok=False), q.where, "WHERE")
        aliases = {i.alias: i.expr for i in q.select if i.alias and i.expr is not None}
        for g in q.group_by:
            if isinstance(g, A.ColumnRef) and g.qualifier is None and g.name in aliases \
                    and not any(g.name in b.columns for b in self.cq.bindings.values()):
                if any(isinstance(x, A.FuncCall) and x.name in AGGREGATES for x in A.walk(aliases[g.name])):
                    self.error("IQ221", f"GROUP BY `{g.name}` names an aggregate", g.span,
                               ["group by the columns the aggregate is computed over, not by the aggregate"])
                    continue
                g = aliases[g.name]  # GROUP BY a SELECT alias
            self.expr(g, agg_ok=False)
            self.cq.group_by.append(g)
        names = set()
        aggregated = bool(q.group_by) or q.having is not None or any(
            isinstance(x, A.FuncCall) and x.name in AGGREGATES
            for i in q.select if i.expr is not None for x in A.walk(i.expr))
        for k, item in enumerate(q.select):
            if item.expr is None:
                self.error("IQ301", "SELECT * would release individual rows", item.span,
                           ["select aggregates, e.g. `SELECT gender, COUNT(*) ... GROUP BY gender`"])
                continue
            value, pct = split_post(item.expr)  # what MPC reveals for this item, pct() applied afterwards
            if pct is not None:
                self.post_ok.add(id(pct))
            t = self.expr(item.expr, agg_ok=True)
            by = self.partition(pct, aliases) if pct is not None and pct.partition is not None else ()
            has_agg = any(isinstance(x, A.FuncCall) and x.name in AGGREGATES for x in A.walk(item.expr))
            if t is not ERROR and not self.is_grouped(value) and aggregated:  # a PARTITION BY is checked above
                self.error("IQ223", "this column is neither grouped nor aggregated", _first_ungrouped(value, self).span,
                           ["add it to GROUP BY, or wrap it in an aggregate such as COUNT or SUM"])
            name = item.alias or _default_name(item.expr, k)
            if name in names:
                self.error("IQ208", f"two output columns are named `{name}`", item.span, ["give one an alias with AS"])
            names.add(name)
            self.cq.outputs.append(OutputColumn(name, value, t, has_agg, pct=pct is not None, pct_by=by))
        if q.having is not None:
            having = self.cq.having = self.having_aliases(q.having, aliases)
            self._want_bool(self.expr(having, agg_ok=True), having, "HAVING")
            if not self.is_grouped(having):
                self.error("IQ223", "HAVING may only use grouped columns and aggregates",
                           _first_ungrouped(having, self).span)
        for o in q.order_by:
            self.order_item(o)
        return self.cq

    def partition(self, pct: A.FuncCall, aliases: dict) -> tuple[A.Expr, ...]:
        """The GROUP BY expressions of `pct(v) OVER (PARTITION BY g, ...)`. Each g must be a GROUP BY
        expression of the query, or the SELECT alias of one (as in GROUP BY): the percents are taken
        among the released cells with the same values of the g's, a partition of the result table."""
        out = []
        for g in pct.partition:
            if isinstance(g, A.ColumnRef) and g.qualifier is None and g.name in aliases \
                    and not any(g.name in b.columns for b in self.cq.bindings.values()):
                target = aliases[g.name]
            elif self.expr(g, agg_ok=False) is ERROR:
                continue
            else:
                target = g
            if any(target == k for k in self.cq.group_by):
                out.append(target)
                continue
            keys = ", ".join(f"`{format_expr(k)}`" for k in self.cq.group_by)
            self.error("IQ223", f"PARTITION BY `{format_expr(g)}`: not a GROUP BY expression of the query", g.span,
                       [f"partition by GROUP BY expressions ({keys})" if keys else "the query has no GROUP BY: "
                        "use pct(...) without OVER for the percent of the whole column",
                        "the percents are taken within each value of the partition, among the released cells"])
        return tuple(out)

    def having_aliases(self, h: A.Expr, aliases: dict) -> A.Expr:
        """HAVING with each SELECT alias (a name that is not a column) replaced by its expression:
        `HAVING n >= 20` is `HAVING COUNT(*) >= 20`. A pct() column is a share of the released table,
        computed after HAVING: its alias is IQ221 here."""
        def alias(x):
            if not (isinstance(x, A.ColumnRef) and x.qualifier is None and x.name in aliases) \
                    or any(x.name in b.columns for b in self.cq.bindings.values()):
                return None
            target = aliases[x.name]
            if any(isinstance(y, A.FuncCall) and getattr(FUNCTIONS.get(y.name), "cost", None) == "public"
                   for y in A.walk(target)):
                self.error("IQ221", f"HAVING `{x.name}` names a share of the released table", x.span,
                           ["pct() is computed after HAVING, on the released rows; filter on the aggregate"])
                self.reported.add(id(x))
                return x
            return target
        return A.rewrite(h, alias)

    def order_item(self, o: A.OrderItem):
        for k, out in enumerate(self.cq.outputs):
            if (isinstance(o.expr, A.ColumnRef) and o.expr.qualifier is None and o.expr.name == out.name) \
                    or o.expr == out.expr:
                self.cq.order_by.append((k, o.descending))
                return
        if isinstance(o.expr, A.Literal) and o.expr.kind == "int":
            if 1 <= o.expr.value <= len(self.q.select):
                if o.expr.value <= len(self.cq.outputs):
                    self.cq.order_by.append((o.expr.value - 1, o.descending))
                return
            self.error("IQ209", f"ORDER BY {o.expr.value}: the query has {len(self.q.select)} output column(s)",
                       o.expr.span, ["a number in ORDER BY is a position in the SELECT list, counted from 1"])
            return
        if self.expr(o.expr, agg_ok=True) is ERROR:
            return
        self.error("IQ306", "ORDER BY something the query does not release", o.span,
                   ["ordering by a value that is not in SELECT would leak it; order by an output column"])

    def join_condition(self, j: A.Join):
        on = j.on
        if not (isinstance(on, A.BinOp) and on.op == "=" and isinstance(on.left, A.ColumnRef)
                and isinstance(on.right, A.ColumnRef)):
            self.error("IQ250", "JOIN ... ON must be one equality of two columns", on.span,
                       ["write `ON a.person_key = b.person_key`"])
            return
        lt, rt = self.expr(on.left, agg_ok=False), self.expr(on.right, agg_ok=False)
        if ERROR in (lt, rt):
            return
        sides = {self.cq.columns[id(on.left)][0], self.cq.columns[id(on.right)][0]}
        if len(sides) != 2 or j.table.binding not in sides:
            self.error("IQ250", f"JOIN ... ON must compare a column of `{j.table.binding}` with a column of an "
                       "earlier table", on.span, ["write `ON a.person_key = b.person_key`"])
            return
        if lt.kind == "decimal" or rt.kind == "decimal":
            self.error("IQ251", "decimal columns cannot be join keys", on.span,
                       ["join on pseudonymous key columns, e.g. person_id"])
        elif lt.kind != rt.kind:
            self.error("IQ251", f"cannot join {lt.describe()} with {rt.describe()}", on.span,
                       ["join on pseudonymous key columns of the same kind"])


def filtered_count(e: A.FuncCall) -> A.Expr | None:
    """The condition p of a count of a subgroup of the cell, written `COUNT(*) FILTER (WHERE p)` or
    `SUM(CASE WHEN p THEN 1 ELSE 0 END)`; None for any other aggregate. (`AVG(b)` of a boolean b is
    the share of such a count: `checker.share_of`.)"""
    if e.name == "count" and e.star and e.filter is not None:
        return e.filter
    if e.name == "sum" and e.filter is None and len(e.args) == 1 and isinstance(e.args[0], A.Case):
        c = e.args[0]
        if len(c.whens) == 1 and _is_int(c.whens[0][1], 1) and c.else_ is not None and _is_int(c.else_, 0):
            return c.whens[0][0]
    return None


def share_of(e: A.FuncCall, cq: CheckedQuery) -> A.Expr | None:
    """b of `AVG(b)` when b is a boolean: the share of the rows with a value of b where it is TRUE."""
    if e.name == "avg" and len(e.args) == 1 and e.filter is None and id(e.args[0]) in cq.types \
            and cq.type_of(e.args[0]).kind == "bool":
        return e.args[0]
    return None


def _is_int(e: A.Expr, v: int) -> bool:
    return isinstance(e, A.Literal) and e.kind == "int" and e.value == v


def _few(names, limit: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _first_ungrouped(e: A.Expr, ch: Checker) -> A.Expr:
    for x in A.walk(e):
        if isinstance(x, A.ColumnRef) and not ch.is_grouped(x):
            return x
    return e


def _default_name(e: A.Expr, k: int) -> str:
    if isinstance(e, A.ColumnRef):
        return e.name
    if isinstance(e, A.FuncCall):
        inner = e.args[0].name if e.args and isinstance(e.args[0], A.ColumnRef) else ""
        return f"{e.name}_{inner}" if inner else e.name
    return f"col{k + 1}"


def _const(e):
    if isinstance(e, A.Literal) and e.kind in ("int", "decimal"):
        return int(e.value) if e.kind == "int" else float(e.value)
    if isinstance(e, A.UnaryOp) and e.op == "neg":
        v = _const(e.operand)
        return -v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if isinstance(e, A.Literal):
        return e.value
    return None


def _literal_type(e: A.Literal) -> IQType:
    if e.kind == "int":
        return IQType("int", e.value, e.value)
    if e.kind == "decimal":
        scale = len(str(e.value).split(".")[1]) if "." in str(e.value) else 0
        return IQType("decimal", float(e.value), float(e.value), scale)
    if e.kind == "bool":
        return BOOL
    if e.kind == "null":
        return NULL
    if e.kind == "date":
        d = date_to_days(e.value)
        return IQType("date", d, d)
    return IQType("string", domain=(e.value,))


def _arith(op: str, a: IQType, b: IQType) -> IQType:
    kind = "decimal" if "decimal" in (a.kind, b.kind) or op == "/" else "int"
    scale = max(a.scale, b.scale, 4 if op == "/" else 0)
    nullable = a.nullable or b.nullable
    if op == "+":
        lo, hi = a.lo + b.lo, a.hi + b.hi
    elif op == "-":
        lo, hi = a.lo - b.hi, a.hi - b.lo
    elif op == "*":
        prods = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        lo, hi = min(prods), max(prods)
    elif op == "%":  # |x % y| < |y|; the sign follows x or y depending on convention, so allow both
        m = max(abs(b.lo), abs(b.hi))
        bound = m - 1 if kind == "int" else m
        lo, hi = (-bound if a.lo < 0 or b.lo < 0 else 0), bound
        nullable = nullable or b.lo <= 0 <= b.hi  # x % 0 is NULL
    else:  # division: null when dividing by zero
        if b.lo > 0 or b.hi < 0:
            cands = [a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi]
            lo, hi = min(cands), max(cands)
        else:  # the divisor may be 0; the smallest other |divisor| is 1, or 10^-scale for decimals
            m = max(abs(a.lo), abs(a.hi)) * (10 ** b.scale if b.kind == "decimal" else 1)
            lo, hi = -m, m
        nullable = nullable or b.lo <= 0 <= b.hi  # x / 0 is NULL
    return IQType(kind, lo, hi, scale, nullable=nullable)


def _bounded(t: IQType) -> bool:
    return t.lo is None or (-MAX_MAGNITUDE <= t.lo <= MAX_MAGNITUDE and -MAX_MAGNITUDE <= t.hi <= MAX_MAGNITUDE)


def check(catalog: Catalog, query: A.Query, source: Source | None = None) -> tuple[CheckedQuery, list[Diagnostic]]:
    """Resolve names and types. Returns every diagnostic found, once each, sorted by position;
    `source` (the text the query was parsed from) is attached to them for rendering."""
    ch = Checker(catalog, query)
    cq = ch.check()
    unique: dict[tuple, Diagnostic] = {}
    for d in ch.diags:
        d.source = source
        unique.setdefault((d.code, d.message, d.span), d)
    ordered = sorted(unique.values(), key=lambda d: (d.span is None, d.span.start if d.span else 0,
                                                      d.span.end if d.span else 0))
    return cq, ordered


def _arguments(spec) -> str:
    """`exactly one argument`, or the column and its literal arguments."""
    if not spec.consts:
        return "exactly one argument"
    return "a column and " + " and ".join(f"{c.name} (a whole number from {c.lo} to {c.hi})" for c in spec.consts)
