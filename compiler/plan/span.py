"""Which unions of a cell's atoms a set of revealed sums determines (filter.parts, spec/disclosure.md
2.15): linear algebra over the rationals, exact. Each revealed count or sum is a row of coefficients
over the atoms (1 per row of the atom for a count, the atom's value for a SUM); the size of a union
is determined exactly when its 0/1 indicator lies in the rows' span.
"""
from __future__ import annotations

import math
from fractions import Fraction
from itertools import product

import numpy as np


def rref(rows: list[list[int]]) -> list[tuple[int, list[Fraction]]]:
    """Reduced row echelon form over the rationals: [(pivot column, row)]."""
    m = [[Fraction(x) for x in r] for r in rows]
    pivots, r = [], 0
    for c in range(len(m[0]) if m else 0):
        pivot = next((i for i in range(r, len(m)) if m[i][c] != 0), None)
        if pivot is None:
            continue
        m[r], m[pivot] = m[pivot], m[r]
        m[r] = [x / m[r][c] for x in m[r]]
        for i in range(len(m)):
            if i != r and m[i][c] != 0:
                f = m[i][c]
                m[i] = [x - f * y for x, y in zip(m[i], m[r])]
        pivots.append(c)
        r += 1
    return [(c, m[i]) for i, c in enumerate(pivots)]


def derivable(atoms: list[tuple], rows: list[list], skip: set[frozenset], tested: list[frozenset],
              known: list[list] | None = None) -> list[frozenset]:
    """The unions of `atoms` (the possibly nonempty ones of a cell) whose size the revealed sums
    determine (`rows`: each one's coefficient per atom: 1 for a count of the atom's rows, a value for
    a SUM), smallest first, leaving out the empty and the whole union, `skip` (each part and its
    rest: 2.4 and 2.13 test them), every union that contains a group tested strictly (`tested`,
    or found here: it then holds >= k'), and every union the rows `known` (earlier releases of the
    same cells) determine already: this release adds nothing to it. A 0/1 vector lies in the span
    exactly when it is the combination of the reduced rows given by its own pivot entries, so the
    candidates are the 2**rank choices of 0/1 on the pivot columns."""
    basis = rref(rows)
    found = {frozenset(a for a, x in zip(atoms, v) if x) for v in zero_one_combinations(basis, len(atoms))}
    old = rref(known) if known else []
    out: list[frozenset] = []
    for u in sorted(found, key=lambda u: (len(u), repr(sorted(u, key=repr)))):
        if 0 < len(u) < len(atoms) and u not in skip and not any(t <= u for t in tested + out) \
                and not (old and _reduces([int(a in u) for a in atoms], old)):
            out.append(u)
    return out


def _reduces(v: list[int], basis: list[tuple[int, list[Fraction]]]) -> bool:
    """Whether v is the combination of the reduced rows `basis` given by its pivot entries (in their span)."""
    return all(x == sum((v[c] * row[j] for c, row in basis), Fraction(0)) for j, x in enumerate(v))


def zero_one_combinations(basis: list[tuple[int, list[Fraction]]], n: int) -> list[list[int]]:
    """Every 0/1 combination of the reduced rows given by 0/1 pivot entries, exactly: in int64 over
    the rows scaled to one common denominator where that cannot overflow (a vectorised product of
    2**rank choices by the rows: the search stays fast with many parts), else row by row in
    rationals."""
    if not basis:
        return []
    choices = np.array(list(product((0, 1), repeat=len(basis))), dtype=np.int64)
    den = math.lcm(*(x.denominator for _, row in basis for x in row))
    scaled = [[int(x * den) for x in row] for _, row in basis]
    if max(abs(x) for row in scaled for x in row) * len(basis) < 2 ** 62:
        sums = choices @ np.array(scaled, dtype=np.int64)
        ok = ((sums == 0) | (sums == den)).all(axis=1)
        return (sums[ok] == den).astype(int).tolist()
    out = []
    for choice in choices:
        v = [sum((row[j] for (_, row), b in zip(basis, choice) if b), Fraction(0)) for j in range(n)]
        if all(x in (0, 1) for x in v):
            out.append([int(x) for x in v])
    return out


def in_span(rows: list[list[int]], v: list[int]) -> bool:
    """Whether v is a rational combination of `rows` (equal rank with and without it)."""
    return len(rref(rows + [v])) == len(rref(rows))


def part_rows(atoms: list[tuple], nparts: int) -> tuple[list[list], set[frozenset]]:
    """The cell's rows and each part's count as coefficient rows over `atoms` (whose first `nparts`
    entries are the part bits), and the parts and rests as sets of atoms."""
    rows = [[1] * len(atoms)] + [[a[i] for a in atoms] for i in range(nparts)]
    return rows, {frozenset(a for a in atoms if a[i] == side) for i in range(nparts) for side in (0, 1)}
