"""The typed AST of an .iq query: frozen dataclasses that keep their source spans.

Spans are excluded from equality, so `parse(format_query(q)) == q` compares structure only.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
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
    value: Union[str, tuple[str, ...]]
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
