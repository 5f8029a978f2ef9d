"""The release rules of spec/disclosure.md section 2, written again from the spec for the tests.

Shares nothing with compiler/plan/release.py or compiler/check/observer.py: the tests compute every
quantity themselves (sqlite3 or plain Python on the rows) and ask this module whether a cell or
a value is released. Per cell, everything is given per dataset, so the rules on every observer's
complement can be evaluated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations


def kprime(k: int, base: int) -> int:
    """k rounded up to the rounding base: the threshold every test uses (2.10)."""
    return math.ceil(k / base) * base


def down(x: int, base: int) -> int:
    return x - x % base


def zero_or_many(x: int, k: int, base: int = 1) -> bool:
    x = down(x, base)
    return x == 0 or x >= kprime(k, base)


def differ_ok(a: int, b: int, k: int, base: int = 1) -> bool:
    d = abs(down(a, base) - down(b, base))
    return d == 0 or d >= kprime(k, base)


def holdings(owners: set[str], receivers: set[str], n_parties: int) -> list[frozenset]:
    """Every non-empty proper subset S of the owners some observer can hold (1.2): a receiver in
    the observer, and at most t owners of S that are not receivers."""
    t = (n_parties - 1) // 2
    outsider = bool(receivers - owners)
    out = []
    owners = sorted(owners)
    for n in range(1, len(owners)):
        for s in combinations(owners, n):
            s = frozenset(s)
            if len(s - receivers) <= t and (outsider or s & receivers):
                out.append(s)
    return out


def largest(sets: list[frozenset]) -> list[frozenset]:
    return [s for s in sets if not any(s < o for o in sets)]


@dataclass
class Cell:
    """One cell's quantities, per dataset. `persons`: each dataset's own distinct persons (None:
    no person rule); `counts`: per nullable column, each dataset's rows with a value."""

    rows: dict[str, int]
    owner: dict[str, str]
    persons: dict[str, int] | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    linked_persons: int | None = None  # distinct persons across datasets, when the query counts them
    # with a person key, per dataset: the persons among the rows with / without a value of a column,
    # among the rows with exactly one of two columns' values, and the persons with repeat records
    with_value: dict[str, dict[str, int]] = field(default_factory=dict)
    without_value: dict[str, dict[str, int]] = field(default_factory=dict)
    one_of: dict[tuple, dict[str, int]] = field(default_factory=dict)
    repeaters: dict[str, int] | None = None

    def rest(self, held: frozenset) -> list[str]:
        return [d for d in self.rows if self.owner[d] not in held]


@dataclass
class Rules:
    k: int
    base: int = 1
    holds: list[frozenset] = field(default_factory=list)

    def cell(self, c: Cell) -> bool:
        """2.1 and 2.3."""
        kk = kprime(self.k, self.base)
        if sum(c.rows.values()) < kk:
            return False
        if c.persons is not None:
            if c.linked_persons is not None:
                if c.linked_persons < kk:
                    return False
            elif max(c.persons.values(), default=0) < kk:
                return False
        for held in largest(self.holds):
            rest = c.rest(held)
            if sum(c.rows[d] for d in rest) < kk:
                return False
            if c.persons is not None and max((c.persons[d] for d in rest), default=0) < kk:
                return False
        return True

    def persons_ok(self, per: dict[str, int] | None, datasets: list[str], strict: bool = False) -> bool:
        """values.persons: some dataset alone has k' persons, or (unless strict) none has any."""
        if per is None:
            return True
        kk = kprime(self.k, self.base)
        return any(per[d] >= kk for d in datasets) or (not strict and all(per[d] == 0 for d in datasets))

    def value(self, c: Cell, column: str | None, others: list[str] = ()) -> bool:
        """2.4 and 2.5 for an aggregate of a nullable `column` (None: not nullable); `others`:
        the other nullable columns the query aggregates."""
        if not self.cell(c):
            return False
        if column is None:
            return True
        k, b = self.k, self.base
        m = c.counts[column]
        rows = sum(c.rows.values())
        if sum(m.values()) < kprime(k, b) or not differ_ok(rows, sum(m.values()), k, b):
            return False
        everyone = list(c.rows)
        wv, wo = c.with_value.get(column), c.without_value.get(column)
        if not (self.persons_ok(wv, everyone, strict=True) and self.persons_ok(wo, everyone)):
            return False
        for held in self.holds:
            rest = c.rest(held)
            m_rest, r_rest = sum(m[d] for d in rest), sum(c.rows[d] for d in rest)
            if not (zero_or_many(m_rest, k, b) and differ_ok(r_rest, m_rest, k, b)):
                return False
            if not (self.persons_ok(wv, rest) and self.persons_ok(wo, rest)):
                return False
        for y in others:
            if y == column:
                continue
            scopes = [list(c.rows)] + [c.rest(h) for h in self.holds]
            if not all(differ_ok(sum(m[d] for d in ds), sum(c.counts[y][d] for d in ds), k, b) for ds in scopes):
                return False
            one = c.one_of.get(tuple(sorted((column, y))))
            if not all(self.persons_ok(one, ds) for ds in scopes):
                return False
        return True

    def distinct(self, c: Cell, d_count: int, per_dataset: dict[str, int] | None = None) -> bool:
        """2.1 (distinct.keys), 2.5 (rows against distinct) and, across owners, 2.6."""
        k, b = self.k, self.base
        kk = kprime(k, b)
        if not self.cell(c) or d_count < kk or not differ_ok(sum(c.rows.values()), d_count, k, b):
            return False
        if not self.persons_ok(c.repeaters, list(c.rows)):
            return False
        for held in (self.holds if per_dataset is not None else []):
            mine = [d for d in c.rows if c.owner[d] in held]
            rest = c.rest(held)
            shared_low = max(per_dataset[d] for d in mine) + max(per_dataset[d] for d in rest) - d_count
            unshared_low = d_count - sum(per_dataset[d] for d in rest)
            if shared_low < kk or unshared_low < kk:
                return False
        return True


def difference_dominated(parts: dict[str, tuple[int, int]], rule: tuple[int, int], new_released: bool,
                         old_certain: bool, old_possible: bool = True) -> bool:
    """guard.dominance (3.2) for one new cell and one earlier cell that nest, from the rows: `parts` gives
    (n largest contributions, sum of absolute values) of the rows in both queries ("both"), in the new
    query only ("new_only") and in the earlier only ("old_only"). The receiver subtracts the two sums:
    the earlier minus the new is the earlier-only rows, and the rows of both while the new sum is not
    released; the new minus the earlier is the new-only rows, and the rows of both while the earlier sum
    was not released (for the n largest: unless it surely was; for the absolute values: unless it
    possibly was). The n largest of a union are bounded by the sum of its parts' n largest. True when
    either difference breaks the rule 100 * top <= k% * abs (an empty difference keeps it)."""
    _, pct = rule
    zero = (0, 0)
    both, new, old = parts.get("both", zero), parts.get("new_only", zero), parts.get("old_only", zero)
    earlier_minus_new = (old[0] + (0 if new_released else both[0]), old[1] + (0 if new_released else both[1]))
    new_minus_earlier = (new[0] + (0 if old_certain else both[0]), new[1] + (0 if old_possible else both[1]))
    return any(100 * top > pct * absolute for top, absolute in (earlier_minus_new, new_minus_earlier))
