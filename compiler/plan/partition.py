"""filter.parts (spec/disclosure.md 2.15): a query that counts several parts of one cell.

Each count of a part of a cell that a query reveals (a subgroup: `COUNT(*) FILTER (WHERE p)`,
`SUM(CASE WHEN p ...)`, the TRUE rows of `AVG(b)`; the rows with a value of a nullable column) is,
with the cell's rows, a sum over the *atoms* of the partition the parts generate (the rows in
exactly these parts and in none of the others). The rules of 2.4 and 2.13 test each part and its
rest. With two parts or more an observer can solve for more: where the definitions (catalog
domains, WHERE, the conditions) leave some atoms empty, `n - young - mid` is exactly the persons
aged 77 or more. So every union of atoms whose size is a linear combination of the revealed
counts, other than the groups 2.4 and 2.13 already test, must hold >= k' rows and some dataset
>= k' persons, in the cell and on every observer's complement, as the cells of GROUP BY (keys,
p1, ..., pj) would (strict: the zero rule). Which atoms are empty by definition is decided per
cell over the public domain (structure.relate); where that cannot be decided, every atom must
hold >= k' rows (strict too, so an atom empty by a definition the procedure cannot read withholds
the parts: over-suppression, never a released "nobody here").
"""
from __future__ import annotations

from fractions import Fraction
from itertools import product

import numpy as np

from insightql.compiler.check.observer import maximal
from insightql.compiler.plan.aggregates import counted, indicator
from insightql.compiler.plan.structure import relate

MAX_PARTS = 12
"""Parts of one cell whose atoms are related exactly (2**12 atoms); above it every atom is tested on
its own (>= k'), which implies every union passes."""

BOOL = {"kind": "bool", "nullable": False}


def _in(ir: dict) -> dict:
    return {"op": "not", "args": [{"op": "is_null", "args": [ir], "type": BOOL}], "type": BOOL}


def _out(ir: dict) -> dict:
    return {"op": "is_null", "args": [ir], "type": BOOL}


def _all(op: str, args: list[dict]) -> dict:
    out = args[0]
    for a in args[1:]:
        out = {"op": op, "args": [out, a], "type": BOOL}
    return out


def atom_ir(parts: list[dict], bits: tuple[int, ...]) -> dict:
    """Row IR: TRUE on the rows in exactly the parts whose bit is 1."""
    return _all("and", [_in(p) if b else _out(p) for p, b in zip(parts, bits)])


def _rref(rows: list[list[int]]) -> list[tuple[int, list[Fraction]]]:
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


def derivable(atoms: list[tuple[int, ...]], nparts: int, tested: list[frozenset]) -> list[frozenset]:
    """The unions of `atoms` (the possibly nonempty ones of a cell) whose size the revealed counts
    (the cell's rows and each part's) determine, smallest first, leaving out the empty and the whole
    union, each part and its rest (2.4 and 2.13 test them), and every union that contains a group
    tested strictly (`tested`, or found here: it then holds >= k'). A 0/1 vector lies in the span
    exactly when it is the combination of the reduced rows given by its own pivot entries, so the
    candidates are the 2**rank choices of 0/1 on the pivot columns."""
    basis = _rref([[1] * len(atoms)] + [[a[i] for a in atoms] for i in range(nparts)])
    parts = {frozenset(a for a in atoms if a[i] == side) for i in range(nparts) for side in (0, 1)}
    found = set()
    for choice in product((0, 1), repeat=len(basis)):
        v = [sum((row[j] for (_, row), b in zip(basis, choice) if b), Fraction(0)) for j in range(len(atoms))]
        if all(x in (0, 1) for x in v):
            found.add(frozenset(a for a, x in zip(atoms, v) if x == 1))
    out: list[frozenset] = []
    for u in sorted(found, key=lambda u: (len(u), sorted(u))):
        if 0 < len(u) < len(atoms) and u not in parts and not any(t <= u for t in tested + out):
            out.append(u)
    return out


class PartitionRule:
    """Declares the slots of filter.parts before the owners' partials are built (`plan`), then the
    flags once the slots are shared (`flags`)."""

    def __init__(self, builder, agg_plans: list[dict]):
        self.b = builder
        lp = builder.lp
        seen: dict[str, tuple[str, dict]] = {}
        # groups tested strictly elsewhere, each {slot: 1 in the part / 0 out of it}: a part with a value
        # (values.rows), a subgroup and its rest in the cell (filter.rows) or, for AVG(b), in b's rows
        self.strict: list[dict[str, int]] = []
        for a, p in zip(lp.aggregates, agg_plans):
            for slot, ir, _ in counted(a, p):
                seen.setdefault(slot, (slot, ir))
                self.strict.append({slot: 1})
            if a.func == "count_if":
                self.strict.append({p["count"]: 0})
            if a.func == "share_if":
                self.strict.append({p["hits"]: 0, **({p["count"]: 1} if a.arg_type.nullable else {})})
        self.parts = list(seen.values())
        self.tests: list[dict] = []  # {slot, arg, persons, cells: where the test applies (public)}
        if len(self.parts) >= 2 and getattr(lp.policy, "privacy", None) is None:  # DP: no threshold rules
            self._plan()

    def _plan(self) -> None:
        b, lp = self.b, self.b.lp
        irs = [ir for _, ir in self.parts]
        j = len(irs)
        keys = [{"expr": k.expr, "type": k.type.to_json(), "size": len(k.values)} for k in lp.keys]
        bits = list(product((0, 1), repeat=j))
        ext = keys + [{"expr": _in(ir), "type": BOOL, "size": 2} for ir in irs]
        q = {"datasets": sorted(lp.datasets), "where": lp.where, "keys": ext}
        rel = relate(b.catalog, q, q) if j <= MAX_PARTS else None
        cells = b.cells
        if j > MAX_PARTS or rel is None:
            for s in bits:  # undecided: each atom >= k' on its own (strict: which are empty is not known)
                self._declare(atom_ir(irs, s), np.ones(cells, dtype=bool))
            return
        possible = rel.new_nonempty.reshape(cells, 2 ** j)
        index = {slot: i for i, (slot, _) in enumerate(self.parts)}
        by_pattern: dict[tuple, list[int]] = {}
        for c in range(cells):
            by_pattern.setdefault(tuple(bool(x) for x in possible[c]), []).append(c)
        for pattern, where in by_pattern.items():
            atoms = [s for s, ok in zip(bits, pattern) if ok]
            mask = np.zeros(cells, dtype=bool)
            mask[where] = True
            tested = [frozenset(a for a in atoms if all(a[index[slot]] == bit for slot, bit in group.items()))
                      for group in self.strict]
            for u in derivable(atoms, j, [t for t in tested if t]):
                self._declare(_all("or", [atom_ir(irs, s) for s in sorted(u)]), mask)

    def _declare(self, cond: dict, cells: np.ndarray) -> None:
        b = self.b
        pk = b.lp.person_key
        self.tests.append({"slot": b.slot("count", indicator(cond)), "arg": indicator(cond), "cells": cells,
                           "persons": b.slot("persons_where", cond, column=pk) if pk else None})

    def columns(self) -> dict[str, dict]:
        """{count slot: row IR} of the groups tested: released cells of their own for the differencing
        guard too, which compares them with every earlier release (spec/disclosure.md 3.2)."""
        return {t["slot"]: t["arg"] for t in self.tests}

    def flags(self) -> str | None:
        """One flag over the cells: every derivable group passes where it applies (else None)."""
        if not self.tests:
            return None
        b, r = self.b, self.b.rules
        what = "rows of a group the counted parts of the cell determine"
        oks = []
        for t in self.tests:
            everyone = list(b.lp.datasets)
            scopes = [((), everyone)] + [(h, r.not_held(h)) for h in maximal(r.holdings)]
            flags = []
            for held, ds in scopes:
                who = {"who": list(held)} if held else {}
                x = b.combined[t["slot"]] if not held else r.part(t["slot"], ds)
                flags.append(r.at_least("filter.parts", x, what=what, **who))
                if t["persons"]:
                    flags.append(r.persons_ok(t["persons"], ds, strict=True, rule="filter.parts",
                                              what=what, **who))
            test = r.all_of(flags)
            if t["cells"].all():
                oks.append(test)
                continue
            fail = b.secure("not", [test], 0, 1)
            fail = b.add("linear", "secure", [fail], [b.cells], 0, 1,
                         pairs=[[int(i), int(i)] for i in np.flatnonzero(t["cells"])], size=b.cells)
            oks.append(b.secure("not", [fail], 0, 1))
        return r.all_of(oks)
