"""Value types with bounds, shared by the stdlib, the checker and the planner.

Every numeric type carries an interval [lo, hi] so later stages can size secure integers
and know value ranges; dates are days since 1970-01-01; decimals are scaled integers.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

EPOCH = dt.date(1970, 1, 1)

NUMERIC = ("int", "decimal")


def date_to_days(d: dt.date) -> int:
    return (d - EPOCH).days


def days_to_date(n: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(n))


@dataclass(frozen=True)
class IQType:
    """kind: int | decimal | bool | category | date | key | null."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    scale: int = 0
    domain: tuple[str, ...] = ()
    nullable: bool = False

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC

    def with_nullable(self, nullable: bool) -> "IQType":
        return replace(self, nullable=nullable)

    def cardinality(self) -> int | None:
        """How many distinct non-null values the type admits (None: too many to enumerate)."""
        if self.kind == "bool":
            return 2
        if self.kind == "category":
            return len(self.domain)
        if self.kind in ("int", "date") and self.lo is not None and self.hi is not None:
            return int(self.hi - self.lo + 1)
        return None

    def values(self) -> list:
        """The enumerated domain, for grouping (call only when cardinality() is small)."""
        if self.kind == "bool":
            return [False, True]
        if self.kind == "category":
            return list(self.domain)
        return list(range(int(self.lo), int(self.hi) + 1))

    def describe(self) -> str:
        if self.kind == "category":
            shown = ", ".join(repr(v) for v in self.domain[:6]) + (", ..." if len(self.domain) > 6 else "")
            s = f"category {{{shown}}}"
        elif self.kind in ("int", "decimal") and self.lo is not None:
            s = f"{self.kind} [{_num(self.lo)}, {_num(self.hi)}]"
        elif self.kind == "date" and self.lo is not None:
            s = f"date [{days_to_date(self.lo)}, {days_to_date(self.hi)}]"
        else:
            s = self.kind
        return s + (" (nullable)" if self.nullable else "")

    def to_json(self) -> dict:
        d: dict = {"kind": self.kind, "nullable": self.nullable}
        if self.lo is not None:
            d["lo"], d["hi"] = _num(self.lo), _num(self.hi)
        if self.kind == "decimal":
            d["scale"] = self.scale
        if self.kind == "category":
            d["domain"] = list(self.domain)
        return d


def _num(x):
    if x is None:
        return None
    return int(x) if float(x).is_integer() else float(x)


def join_types(a: IQType, b: IQType) -> IQType | None:
    """The least type holding values of both, or None when they do not mix."""
    if a.kind == "null":
        return b.with_nullable(True)
    if b.kind == "null":
        return a.with_nullable(True)
    nullable = a.nullable or b.nullable
    if a.numeric and b.numeric:
        kind = "decimal" if "decimal" in (a.kind, b.kind) else "int"
        return IQType(kind, min(a.lo, b.lo), max(a.hi, b.hi), max(a.scale, b.scale), nullable=nullable)
    if a.kind != b.kind:
        return None
    if a.kind == "category":
        dom = list(a.domain) + [v for v in b.domain if v not in a.domain]
        return IQType("category", domain=tuple(dom), nullable=nullable)
    if a.kind == "date":
        return IQType("date", min(a.lo, b.lo), max(a.hi, b.hi), nullable=nullable)
    return IQType(a.kind, nullable=nullable)


BOOL = IQType("bool")
NULL = IQType("null", nullable=True)
