"""The typed AST of an .iq query: frozen dataclasses that keep their source spans.

Spans are excluded from equality, so `parse(format_query(q)) == q` compares structure only.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Iterator, Union

from insightql.compiler.diagnostics import Span


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Literal:
    value: Union[int, Decimal, str, bool, None, dt.date]
    kind: str  # int | decimal | string | bool | null | date
    span: Span | None = _span()


@dataclass(frozen=True)
class ColumnRef:
    qualifier: str | None
    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class FuncCall:
    name: str  # lower-cased
    args: tuple["Expr", ...]
    distinct: bool = False
    star: bool = False  # COUNT(*)
    filter: "Expr | None" = None  # COUNT(*) FILTER (WHERE p): the rows of the cell where p holds
    partition: "tuple[Expr, ...] | None" = None  # pct(v) OVER (PARTITION BY g, ...): shares within each g
    span: Span | None = _span()


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / % = <> < <= > >= and or
    left: "Expr"
    right: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True)
class UnaryOp:
    op: str  # neg | not
    operand: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True)
class InList:
    operand: "Expr"
    items: tuple["Expr", ...]
    negated: bool = False
    span: Span | None = _span()


@dataclass(frozen=True)
class Between:
    operand: "Expr"
    low: "Expr"
    high: "Expr"
    negated: bool = False
    span: Span | None = _span()


@dataclass(frozen=True)
class IsNull:
    operand: "Expr"
    negated: bool = False
    span: Span | None = _span()


@dataclass(frozen=True)
class Case:
    whens: tuple[tuple["Expr", "Expr"], ...]
    else_: "Expr | None" = None
    span: Span | None = _span()


@dataclass(frozen=True)
class ListLiteral:
    items: tuple["Expr", ...]
    span: Span | None = _span()


Expr = Union[Literal, ColumnRef, FuncCall, BinOp, UnaryOp, InList, Between, IsNull, Case, ListLiteral]


@dataclass(frozen=True)
class Annotation:
    name: str  # lower-cased
    value: Union[str, tuple[str, ...], Decimal]  # Decimal: a number (`@epsilon 0.5`)
    span: Span | None = _span()


@dataclass(frozen=True)
class SelectItem:
    expr: Expr | None  # None for SELECT *
    alias: str | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class TableRef:
    name: str
    alias: str | None = None
    span: Span | None = _span()

    @property
    def binding(self) -> str:
        return self.alias or self.name


@dataclass(frozen=True)
class Join:
    kind: str  # inner | left
    table: TableRef
    on: Expr
    span: Span | None = _span()


@dataclass(frozen=True)
class OrderItem:
    expr: Expr
    descending: bool = False
    span: Span | None = _span()


@dataclass(frozen=True)
class Query:
    annotations: tuple[Annotation, ...]
    select: tuple[SelectItem, ...]
    source: TableRef
    unions: tuple[TableRef, ...] = ()
    joins: tuple[Join, ...] = ()
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    span: Span | None = _span()

    def tables(self) -> list[TableRef]:
        return [self.source, *self.unions, *(j.table for j in self.joins)]

    def annotation(self, name: str):
        for a in self.annotations:
            if a.name == name:
                return a
        return None


def children(e: Expr) -> Iterator[Expr]:
    """The direct sub-expressions of e, in source order."""
    if isinstance(e, (FuncCall, ListLiteral)):
        yield from e.args if isinstance(e, FuncCall) else e.items
        if isinstance(e, FuncCall) and e.filter is not None:
            yield e.filter
        if isinstance(e, FuncCall) and e.partition is not None:
            yield from e.partition
    elif isinstance(e, BinOp):
        yield e.left
        yield e.right
    elif isinstance(e, UnaryOp):
        yield e.operand
    elif isinstance(e, InList):
        yield e.operand
        yield from e.items
    elif isinstance(e, Between):
        yield e.operand
        yield e.low
        yield e.high
    elif isinstance(e, IsNull):
        yield e.operand
    elif isinstance(e, Case):
        for c, v in e.whens:
            yield c
            yield v
        if e.else_ is not None:
            yield e.else_


def walk(e: Expr) -> Iterator[Expr]:
    """e and all its sub-expressions, pre-order."""
    yield e
    for c in children(e):
        yield from walk(c)


def rewrite(e: Expr, fn) -> Expr:
    """e with every sub-expression x for which fn(x) is not None replaced by fn(x) (pre-order: a
    replaced node's own children are not visited). Unchanged subtrees are the same objects."""
    new = fn(e)
    if new is not None:
        return new
    if isinstance(e, FuncCall):
        args = tuple(rewrite(a, fn) for a in e.args)
        flt = rewrite(e.filter, fn) if e.filter is not None else None
        part = tuple(rewrite(a, fn) for a in e.partition) if e.partition is not None else None
        same = all(x is y for x, y in zip(args, e.args)) and flt is e.filter \
            and (part is None or all(x is y for x, y in zip(part, e.partition)))
        return e if same else replace(e, args=args, filter=flt, partition=part)
    if isinstance(e, ListLiteral):
        items = tuple(rewrite(a, fn) for a in e.items)
        return e if all(x is y for x, y in zip(items, e.items)) else replace(e, items=items)
    if isinstance(e, BinOp):
        left, right = rewrite(e.left, fn), rewrite(e.right, fn)
        return e if (left is e.left and right is e.right) else replace(e, left=left, right=right)
    if isinstance(e, (UnaryOp, IsNull)):
        operand = rewrite(e.operand, fn)
        return e if operand is e.operand else replace(e, operand=operand)
    if isinstance(e, InList):
        operand, items = rewrite(e.operand, fn), tuple(rewrite(a, fn) for a in e.items)
        same = operand is e.operand and all(x is y for x, y in zip(items, e.items))
        return e if same else replace(e, operand=operand, items=items)
    if isinstance(e, Between):
        parts = [rewrite(x, fn) for x in (e.operand, e.low, e.high)]
        same = all(x is y for x, y in zip(parts, (e.operand, e.low, e.high)))
        return e if same else replace(e, operand=parts[0], low=parts[1], high=parts[2])
    if isinstance(e, Case):
        whens = tuple((rewrite(c, fn), rewrite(v, fn)) for c, v in e.whens)
        else_ = rewrite(e.else_, fn) if e.else_ is not None else None
        same = else_ is e.else_ and all(a is c and b is v for (a, b), (c, v) in zip(whens, e.whens))
        return e if same else replace(e, whens=whens, else_=else_)
    return e
