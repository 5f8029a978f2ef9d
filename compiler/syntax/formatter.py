"""AST -> canonical .iq text (`format_query`), the inverse of `syntax.parse`.

Canonical form: annotations first, one per line; then one clause per line, the last ending in `;`; keywords and aggregate
names upper-case, scalar functions lower-case; the fewest parentheses that keep the tree;
strings in single quotes with '' for a quote; names in double quotes when they are keywords or not
plain ASCII names. For every query q that `parse` returns, `parse(format_query(q)) == q` and
formatting is idempotent (tests/test_formatter.py). `layout` gives the lines with the source construct
each starts with; `syntax/comments.py` uses it to put the source's comments back (`format_source`).
"""
from __future__ import annotations

import re
from decimal import Decimal

from insightql.stdlib.aggregates import AGGREGATES

from insightql.compiler.syntax import ast as A
from insightql.compiler.syntax.parser import KEYWORDS

WIDTH = 88
"""A SELECT, GROUP BY or ORDER BY list longer than this goes one item per line."""

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Binding strength of each node; an operand weaker than its slot needs parentheses.
_OR, _AND, _NOT, _PREDICATE, _SUM, _PRODUCT, _UNARY, _ATOM = range(1, 9)
_BINARY = {"or": _OR, "and": _AND, "+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT, "%": _PRODUCT,
           "=": _PREDICATE, "<>": _PREDICATE, "<": _PREDICATE, "<=": _PREDICATE, ">": _PREDICATE,
           ">=": _PREDICATE}


def ident(name: str) -> str:
    """A name as written in source: bare when plain and not a keyword, else double-quoted."""
    if _PLAIN.fullmatch(name) and name.lower() not in KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _decimal(value: Decimal) -> str:
    text = format(value, "f")
    return text if "." in text else text + ".0"


def literal(e: A.Literal) -> str:
    if e.kind == "int":
        return str(e.value)
    if e.kind == "decimal":
        return _decimal(e.value)
    if e.kind == "string":
        return string(e.value)
    if e.kind == "bool":
        return "TRUE" if e.value else "FALSE"
    if e.kind == "date":
        return f"DATE '{e.value.isoformat()}'"
    return "NULL"


def _strength(e: A.Expr) -> int:
    if isinstance(e, A.BinOp):
        return _BINARY[e.op]
    if isinstance(e, A.UnaryOp):
        return _NOT if e.op == "not" else _UNARY
    if isinstance(e, (A.InList, A.Between, A.IsNull)):
        return _PREDICATE
    return _ATOM


def expr(e: A.Expr, slot: int = _OR) -> str:
    """e as text, in parentheses when it binds more weakly than the slot it fills."""
    text = _expr(e)
    return f"({text})" if _strength(e) < slot else text


def _expr(e: A.Expr) -> str:
    if isinstance(e, A.Literal):
        return literal(e)
    if isinstance(e, A.ColumnRef):
        return (ident(e.qualifier) + "." if e.qualifier is not None else "") + ident(e.name)
    if isinstance(e, A.BinOp):
        level = _BINARY[e.op]
        # Left-associative chains: the left operand may be as weak as the node, the right one not;
        # comparisons do not chain, so both their sides must be sums.
        left = _SUM if level == _PREDICATE else level
        right = _SUM if level == _PREDICATE else level + 1
        op = e.op.upper() if e.op in ("and", "or") else e.op
        return f"{expr(e.left, left)} {op} {expr(e.right, right)}"
    if isinstance(e, A.UnaryOp):
        if e.op == "not":
            return f"NOT {expr(e.operand, _NOT)}"
        inner = expr(e.operand, _UNARY)
        return f"-({inner})" if inner.startswith("-") else f"-{inner}"  # `--` would start a comment
    if isinstance(e, A.InList):
        items = ", ".join(expr(i) for i in e.items)
        return f"{expr(e.operand, _SUM)} {'NOT IN' if e.negated else 'IN'} ({items})"
    if isinstance(e, A.Between):
        word = "NOT BETWEEN" if e.negated else "BETWEEN"
        return f"{expr(e.operand, _SUM)} {word} {expr(e.low, _SUM)} AND {expr(e.high, _SUM)}"
    if isinstance(e, A.IsNull):
        return f"{expr(e.operand, _SUM)} IS {'NOT NULL' if e.negated else 'NULL'}"
    if isinstance(e, A.FuncCall):
        return call(e)
    if isinstance(e, A.Case):
        parts = ["CASE"] + [f"WHEN {expr(c)} THEN {expr(v)}" for c, v in e.whens]
        if e.else_ is not None:
            parts.append(f"ELSE {expr(e.else_)}")
        return " ".join(parts + ["END"])
    if isinstance(e, A.ListLiteral):
        return "[" + ", ".join(expr(i) for i in e.items) + "]"
    raise TypeError(f"not an expression: {e!r}")


def call(e: A.FuncCall) -> str:
    name = e.name.upper() if e.name in AGGREGATES else ident(e.name)
    flt = f" FILTER (WHERE {expr(e.filter)})" if e.filter is not None else ""
    if e.partition is not None:
        flt += f" OVER (PARTITION BY {', '.join(expr(g) for g in e.partition)})"
    if e.star:
        return f"{name}(*){flt}"
    args = ", ".join(expr(a) for a in e.args)
    if e.distinct:
        return (f"{name}(DISTINCT {args})" if args else f"{name}(DISTINCT)") + flt
    return f"{name}({args}){flt}"


def annotation(a: A.Annotation) -> str:
    if not isinstance(a.value, (str, tuple)):  # a number (`@epsilon 0.5`)
        return f"@{ident(a.name)} {a.value}"
    value = string(a.value) if isinstance(a.value, str) else ", ".join(ident(v) for v in a.value)
    return f"@{ident(a.name)} {value}"


def table(t: A.TableRef) -> str:
    return ident(t.name) + (f" AS {ident(t.alias)}" if t.alias is not None else "")


def select_item(i: A.SelectItem) -> str:
    if i.expr is None:
        return "*"
    return expr(i.expr) + (f" AS {ident(i.alias)}" if i.alias is not None else "")


def order_item(o: A.OrderItem) -> str:
    return expr(o.expr) + (" DESC" if o.descending else "")


Line = tuple[tuple, str]
"""One output line: its anchor (the construct it starts with: ("select",), ("select", 2), ("join", 0),
("ann", 1), ...) and its text."""


def _clause(keyword: str, key: str, items: list[str], split: bool) -> list[Line]:
    line = f"{keyword} {', '.join(items)}"
    if len(line) <= WIDTH and not split:
        return [((key,), line)]
    last = len(items) - 1
    return [((key,), keyword)] + [((key, k), "    " + i + ("," if k < last else "")) for k, i in enumerate(items)]


def layout(q: A.Query, split: frozenset[str] = frozenset()) -> list[Line]:
    """The canonical lines of q; the lists named in `split` ("select", "group", "order") go one
    item per line even when they are short (a comment stands between their items)."""
    lines = [(("ann", k), annotation(a)) for k, a in enumerate(q.annotations)]
    lines += _clause("SELECT", "select", [select_item(i) for i in q.select], "select" in split)
    lines.append((("from",), "FROM " + table(q.source)))
    lines += [(("union", k), "UNION ALL " + table(u)) for k, u in enumerate(q.unions)]
    for k, j in enumerate(q.joins):
        kind = "LEFT JOIN" if j.kind == "left" else "JOIN"
        lines.append((("join", k), f"{kind} {table(j.table)} ON {expr(j.on)}"))
    if q.where is not None:
        lines.append((("where",), "WHERE " + expr(q.where)))
    if q.group_by:
        lines += _clause("GROUP BY", "group", [expr(g) for g in q.group_by], "group" in split)
    if q.having is not None:
        lines.append((("having",), "HAVING " + expr(q.having)))
    if q.order_by:
        lines += _clause("ORDER BY", "order", [order_item(o) for o in q.order_by], "order" in split)
    if q.limit is not None:
        lines.append((("limit",), f"LIMIT {q.limit}"))
    key, last = lines[-1]
    return lines[:-1] + [(key, last + ";")]


def format_query(q: A.Query) -> str:
    """The canonical text of q, ending in a newline."""
    return "\n".join(text for _, text in layout(q)) + "\n"
