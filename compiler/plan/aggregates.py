"""Lowering of each aggregate (stdlib/aggregates.py declares them): the slots its owners
pre-aggregate per cell, and the secure nodes that finish it from the combined slots.

Each aggregate registers two parts under its name: `plan` declares slots on the circuit builder
(equal slots are shared: MEDIAN and PERCENTILE of one column read one histogram) and returns
their names; `finish` builds the value node, its release flag and how the public stage reads it
({node, flag, scale, post, count, sum_unit}). COUNT(*) and COUNT(DISTINCT key) lower as
`count_rows` and `count_distinct`. A JOIN plans its slots in compiler/plan/linkage.py (JoinBuilder),
for the aggregates declared `join`; the finish parts are the same.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from insightql.stdlib.aggregates import AGGREGATES

from insightql.compiler.syntax import ast as A
from insightql.compiler.syntax.formatter import expr
from insightql.compiler.check.checker import filtered_count
from insightql.compiler.diagnostics import Diagnostic, PlanError
from insightql.compiler.plan import guard

FORMS = ("count_rows", "count_distinct", "count_if", "share_if")
"""COUNT(*), COUNT(DISTINCT key), a count of a subgroup (COUNT(*) FILTER (WHERE p), SUM(CASE WHEN p
THEN 1 ELSE 0 END); `arg` is the indicator: 1 where p holds, else NULL) and AVG(b) of a boolean b
(`arg` is b): the share of the rows with a value of b where it is TRUE."""
MAX_HISTOGRAM = 2048  # steps of a MEDIAN / PERCENTILE value range (one secret row per step)


@dataclass
class Lowering:
    plan: Callable | None = None  # (builder, AggregateSpec) -> {part: slot name}
    finish: Callable | None = None  # (builder, AggregateSpec, slots) -> value dict


LOWERING: dict[str, Lowering] = {}


def lowers(part: str, *names: str):
    """Decorator: the `plan` or `finish` part of the named aggregates."""
    def deco(fn):
        for n in names:
            if n not in AGGREGATES and n not in FORMS:
                raise KeyError(f"{n!r} is not a declared aggregate (stdlib/aggregates.py)")
            setattr(LOWERING.setdefault(n, Lowering()), part, fn)
        return fn
    return deco


def consts(a) -> tuple:
    """The literal arguments after the column (PERCENTILE's percent), checked by the checker."""
    return tuple(int(x.value) for x in a.ast.args[1:])


# -- plan: slots ---------------------------------------------------------------------------------
@lowers("plan", "count_rows")
def _plan_rows(b, a) -> dict:
    return {}


@lowers("plan", "count_distinct")
def _plan_distinct(b, a) -> dict:
    return {"distinct": b.slot("distinct", a.arg)}


@lowers("plan", "count")
def _plan_count(b, a) -> dict:
    return {"count": b.slot("count", a.arg)}


@lowers("plan", "count_if")
def _plan_count_if(b, a) -> dict:
    return {"count": b.slot("count", a.arg), **_subgroup_persons(b, a.arg, _is_null(a.arg))}


@lowers("plan", "share_if")
def _plan_share_if(b, a) -> dict:
    hits = indicator(a.arg)
    return {"count": b.slot("count", a.arg), "hits": b.slot("count", hits),
            **_subgroup_persons(b, hits, {"op": "not", "args": [a.arg], "type": a.arg["type"]})}


def _subgroup_persons(b, hits: dict, others: dict) -> dict:
    """With a person key: the persons of the subgroup (the rows where `hits` has a value) and of its
    complement (the rows where `others` is TRUE), each dataset counting its own."""
    pk = b.lp.person_key
    if not pk:
        return {}
    return {"persons_in": b.slot("persons_where", _not(_is_null(hits)), column=pk),
            "persons_out": b.slot("persons_where", others, column=pk)}


def indicator(cond: dict) -> dict:
    """Row IR: 1 where cond is TRUE, else NULL; its COUNT counts the subgroup."""
    one = {"kind": "int", "nullable": False, "lo": 1, "hi": 1}
    return {"op": "case", "whens": [[cond, {"lit": 1, "type": one}]], "else": None, "type": {**one, "nullable": True}}


def _is_null(arg: dict) -> dict:
    return {"op": "is_null", "args": [arg], "type": {"kind": "bool", "nullable": False}}


def _not(arg: dict) -> dict:
    return {"op": "not", "args": [arg], "type": {"kind": "bool", "nullable": False}}


def counted(a, p: dict) -> list[tuple[str, dict, str]]:
    """(count slot, row IR counted, label) of every count of a part of the cell an aggregate reveals
    (the rows with a value of a nullable column, a subgroup): the pair rule, values.persons and the
    guard apply to each."""
    if a.func == "count_if":
        return [(p["count"], a.arg, subgroup_text(a.ast))]
    if a.func == "share_if":
        own = [(p["count"], a.arg, column_text(a.ast.args[0]))] if a.arg_type.nullable else []
        return own + [(p["hits"], indicator(a.arg), subgroup_text(a.ast))]
    if "count" in p and a.arg_type is not None and a.arg_type.nullable:
        return [(p["count"], a.arg, column_text(a.ast.args[0]))]
    return []


@lowers("plan", "sum", "avg", "var", "stddev")
def _plan_sums(b, a) -> dict:
    ex = b.value_slots(a)
    p = {"count": b.slot("count", a.arg), "sum": b.slot("sum", a.arg, **ex)}
    if a.func in ("var", "stddev"):
        p["sumsq"] = b.slot("sumsq", a.arg, **ex)
    if a.func == "sum" and b.lp.policy.dominance_n:
        p["top"] = b.slot("top", a.arg, n=b.lp.policy.dominance_n, **ex, **b.per_person())
        p["abssum"] = b.slot("abssum", a.arg, **ex)
    return p


def _counted_in_range(b, a) -> tuple[dict, dict, float, float]:
    """(the value slots' attributes, {count}, the scaled, clamped value range) of an order statistic."""
    ex = b.value_slots(a)
    lo, hi = b._arg_range({"arg": a.arg, **ex})
    return ex, {"count": b.slot("count", a.arg)}, lo, hi


@lowers("plan", "min", "max")
def _plan_extreme(b, a) -> dict:
    ex, p, lo, hi = _counted_in_range(b, a)
    p["ext"] = b.slot(a.func, a.arg, empty=int(hi + 1 if a.func == "min" else lo - 1), **ex)
    return p


@lowers("plan", "median", "percentile")
def _plan_histogram(b, a) -> dict:
    ex, p, lo, hi = _counted_in_range(b, a)
    if hi - lo + 1 > MAX_HISTOGRAM:
        raise PlanError(Diagnostic("IQ403", f"{a.func.upper()} needs a value range of at most {MAX_HISTOGRAM} "
                                   "steps", a.ast.span, [f"{a.func} is computed from a secret histogram; use a "
                                                         "column with a small range, or AVG"]))
    p["hist"] = b.slot("hist", a.arg, lo=int(lo), size=int(hi - lo + 1), **ex, **b.per_person())
    return p


# -- finish: secure nodes ------------------------------------------------------------------------
@lowers("finish", "count_rows")
def _rows(b, a, p) -> dict:
    return {"node": b.combined[b.slot("rows")], "flag": b.released, "scale": 0, "count": True}


@lowers("finish", "count_distinct")
def _distinct(b, a, p) -> dict:
    d = b.combined[p["distinct"]]
    ok = b.rules.at_least("distinct.keys", d)
    return {"node": d, "flag": b.rules.all_of([b.released, ok]), "scale": 0, "count": True}


def _value(b, a, p) -> tuple[str, str, int]:
    """(count node, the value's release flag, decimal scale): the own-count rules of the column."""
    flag = b.rules.value_flag(b.released, b.slot("rows"), p["count"], column_text(a.ast.args[0]),
                              a.arg_type.nullable)
    return b.combined[p["count"]], flag, a.arg_type.scale if a.arg_type.kind == "decimal" else 0


def _range(b, a, scale: int) -> tuple[float, float]:
    return b._arg_range({"arg": a.arg, "scale": scale, "clamp": a.clamp})


@lowers("finish", "count")
def _count(b, a, p) -> dict:
    cnt, flag, _ = _value(b, a, p)
    return {"node": cnt, "flag": flag, "scale": 0, "count": True}


@lowers("finish", "count_if")
def _count_if(b, a, p) -> dict:
    flag = b.rules.subgroup_flag(b.released, b.slot("rows"), p["count"], p, subgroup_text(a.ast))
    return {"node": b.combined[p["count"]], "flag": flag, "scale": 0, "count": True}


@lowers("finish", "share_if")
def _share_if(b, a, p) -> dict:
    """hits / count: the share is released when both counts would be (the rows with a value of b
    under the own-count rules, its TRUE rows and the FALSE rows beside them under filter.rows)."""
    cnt, flag, _ = _value(b, a, p)
    flag = b.rules.subgroup_flag(flag, p["count"], p["hits"], p, subgroup_text(a.ast))
    node = b.secure("div", [b.combined[p["hits"]], cnt], 0, 1, guard=flag)
    return {"node": node, "flag": flag, "scale": 0}


@lowers("finish", "sum")
def _sum(b, a, p) -> dict:
    _, flag, scale = _value(b, a, p)
    if "top" in p:  # sum.dominance on the cell, then guard.dominance on its differences with earlier releases
        flag = guard.apply_sums(b, p, b.rules.dominance(p["top"], p["abssum"], flag))
    lo, hi = _range(b, a, scale)
    return {"node": b.combined[p["sum"]], "flag": flag, "scale": scale, "sum_unit": max(abs(lo), abs(hi), 1)}


@lowers("finish", "avg")
def _avg(b, a, p) -> dict:
    cnt, flag, scale = _value(b, a, p)
    lo, hi = _range(b, a, scale)
    return {"node": b.secure("div", [b.combined[p["sum"]], cnt], lo, hi, guard=flag), "flag": flag, "scale": scale}


@lowers("finish", "var", "stddev")
def _variance(b, a, p) -> dict:
    cnt, flag, scale = _value(b, a, p)
    lo, hi = _range(b, a, scale)
    flag = b.rules.all_of([flag, b.rules.at_least("variance.rows", cnt, AGGREGATES[a.func].min_values((), 1))])
    node = b.secure("variance", [b.combined[p["sum"]], b.combined[p["sumsq"]], cnt], 0, (hi - lo) ** 2 / 4 + 1,
                    guard=flag)
    return {"node": node, "flag": flag, "scale": 2 * scale, "post": "sqrt" if a.func == "stddev" else None}


@lowers("finish", "min", "max")
def _extreme(b, a, p) -> dict:
    _, flag, scale = _value(b, a, p)
    return {"node": b.combined[p["ext"]], "flag": flag, "scale": scale}


@lowers("finish", "median")
def _median(b, a, p) -> dict:
    _, flag, scale = _value(b, a, p)
    lo, hi = _range(b, a, scale)
    counted = b.rules.part(p["hist"], b.lp.datasets, "total")  # values (one per person) in the histogram
    node = b.secure("median", [b.combined[p["hist"]], counted], lo, hi, lo_value=int(lo))
    return {"node": node, "flag": flag, "scale": scale}


@lowers("finish", "percentile")
def _percentile(b, a, p) -> dict:
    _, flag, scale = _value(b, a, p)
    lo, hi = _range(b, a, scale)
    counted = b.rules.part(p["hist"], b.lp.datasets, "total")
    need = AGGREGATES["percentile"].min_values(consts(a), b.rules.base)
    flag = b.rules.all_of([flag, b.rules.at_least("percentile.rank", counted, need)])
    node = b.secure("percentile", [b.combined[p["hist"]], counted], lo, hi, lo_value=int(lo), percent=consts(a)[0])
    return {"node": node, "flag": flag, "scale": scale}


def subgroup_text(e: A.FuncCall) -> str:
    """How the leakage report names a counted subgroup: `rows where <condition>`."""
    cond = filtered_count(e)
    return f"rows where {expr(cond if cond is not None else e.args[0])}"


def column_text(e: A.Expr) -> str:
    if isinstance(e, A.ColumnRef):
        return f"{e.qualifier}.{e.name}" if e.qualifier else e.name
    return "the argument"
