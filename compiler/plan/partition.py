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

import json
import math
from fractions import Fraction
from itertools import product

import numpy as np

from insightql.compiler.check.observer import maximal
from insightql.compiler.plan.aggregates import _is_null, _not, counted, indicator
from insightql.compiler.plan.lower_expr import columns_used
from insightql.compiler.plan.structure import relate

MAX_PARTS = 12
"""Parts of one cell whose atoms are related exactly (2**12 atoms); above it every atom is tested on
its own (>= k'), which implies every union passes."""

BOOL = {"kind": "bool", "nullable": False}


def _in(ir: dict) -> dict:
    """TRUE on the rows in a part (its indicator or column has a value)."""
    return _not(_is_null(ir))


_out = _is_null  # TRUE on the rows outside a part


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


def derivable(atoms: list[tuple], rows: list[list], skip: set[frozenset], tested: list[frozenset]) -> list[frozenset]:
    """The unions of `atoms` (the possibly nonempty ones of a cell) whose size the revealed sums
    determine (`rows`: each one's coefficient per atom: 1 for a count of the atom's rows, a value for
    a SUM), smallest first, leaving out the empty and the whole union, `skip` (each part and its
    rest: 2.4 and 2.13 test them), and every union that contains a group tested strictly (`tested`,
    or found here: it then holds >= k'). A 0/1 vector lies in the span exactly when it is the
    combination of the reduced rows given by its own pivot entries, so the candidates are the
    2**rank choices of 0/1 on the pivot columns."""
    basis = _rref(rows)
    found = {frozenset(a for a, x in zip(atoms, v) if x) for v in _zero_one_combinations(basis, len(atoms))}
    out: list[frozenset] = []
    for u in sorted(found, key=lambda u: (len(u), repr(sorted(u, key=repr)))):
        if 0 < len(u) < len(atoms) and u not in skip and not any(t <= u for t in tested + out):
            out.append(u)
    return out


def _zero_one_combinations(basis: list[tuple[int, list[Fraction]]], n: int) -> list[list[int]]:
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


def part_rows(atoms: list[tuple], nparts: int) -> tuple[list[list], set[frozenset]]:
    """The cell's rows and each part's count as coefficient rows over `atoms` (whose first `nparts`
    entries are the part bits), and the parts and rests as sets of atoms."""
    rows = [[1] * len(atoms)] + [[a[i] for a in atoms] for i in range(nparts)]
    return rows, {frozenset(a for a in atoms if a[i] == side) for i in range(nparts) for side in (0, 1)}


MOMENTS = {"sum": 1, "avg": 1, "var": 2, "stddev": 2}
"""Powers of a column's values an aggregate reveals summed over the cell (with its count)."""
MAX_VALUES = 256
"""Integer columns with at most this many values have their value classes related exactly."""


def _canon(ir: dict) -> str:
    return json.dumps(ir, sort_keys=True)


def _value_ir(col: dict, v: int | None) -> dict:
    if v is None:
        return _out(col)
    return {"op": "=", "args": [col, {"lit": v, "type": {"kind": "int", "lo": v, "hi": v, "nullable": False}}],
            "type": BOOL}


class PartitionRule:
    """Declares the slots of filter.parts before the owners' partials are built, then the flags
    once the slots are shared (`flags`)."""

    def __init__(self, builder, agg_plans: list[dict]):
        self.b = builder
        lp = builder.lp
        seen: dict[str, tuple[str, dict]] = {}
        # groups tested strictly elsewhere, each {slot: 1 in the part / 0 out of it}: a part with a value
        # (values.rows), a subgroup and its rest in the cell (filter.rows) or, for AVG(b), in b's rows
        self.strict: list[dict[str, int]] = []
        self.counted_aggs: list[int] = []
        self.moments: dict[str, dict] = {}  # a summed integer column (its IR) -> degree, clamp, aggregates
        for i, (a, p) in enumerate(zip(lp.aggregates, agg_plans)):
            for slot, ir, _ in counted(a, p):
                seen.setdefault(slot, (slot, ir))
                self.strict.append({slot: 1})
                self.counted_aggs.append(i)
            if a.func == "count_if":
                self.strict.append({p["count"]: 0})
            if a.func == "share_if":
                self.strict.append({p["hits"]: 0, **({p["count"]: 1} if a.arg_type.nullable else {})})
            t = a.arg.get("type", {}) if a.func in MOMENTS else {}
            if t.get("kind") == "int" and t["hi"] - t["lo"] + 1 <= MAX_VALUES:
                m = self.moments.setdefault(_canon(a.arg), {"arg": a.arg, "degree": 0, "clamp": a.clamp, "aggs": []})
                m["degree"] = max(m["degree"], MOMENTS[a.func])
                m["aggs"].append(i)
        self.parts = list(seen.values())
        self.counted_aggs = sorted(set(self.counted_aggs))
        self.tests: list[dict] = []  # {slot, arg, persons, cells: where it applies (public), aggs}
        if getattr(lp.policy, "privacy", None) is not None:  # DP: no threshold rules
            return
        if len(self.parts) >= 2:
            self._analyse(None)
        for m in self.moments.values():
            if self._may_split(m):
                self._analyse(m)

    def _may_split(self, m: dict) -> bool:
        """Whether sums of the column's values and powers up to degree d can determine a group: only
        where some class of rows (a cell and a combination of parts) holds at most 2d distinct
        summed values (a polynomial of degree d with values in {0, 1} on 2d + 1 points is constant).
        A column that no WHERE, key or condition reads has its whole domain in every class."""
        lp, arg = self.b.lp, m["arg"]
        t = arg["type"]
        lo, hi = m["clamp"] if m["clamp"] is not None else (t["lo"], t["hi"])
        summed = len({min(max(v, lo), hi) for v in range(t["lo"], t["hi"] + 1)} | ({0} if t.get("nullable") else set()))
        if summed <= 2 * m["degree"]:
            return True
        read = set()
        # (the rows with a value of the column itself split off NULL only: the rest keep every value)
        for ir in [lp.where, *(k.expr for k in lp.keys), *(ir for _, ir in self.parts if _canon(ir) != _canon(arg))]:
            columns_used(ir, read)
        return bool(columns_used(arg) & read)

    def _analyse(self, m: dict | None) -> None:
        """The groups the parts' counts (and, with `m`, the sums of that column's values and their
        powers) determine, per pattern of atoms the definitions allow in a cell."""
        b, lp = self.b, self.b.lp
        irs = [ir for _, ir in self.parts]
        j = len(irs)
        ext = [{"expr": k.expr, "type": k.type.to_json(), "size": len(k.values)} for k in lp.keys]
        ext += [{"expr": _in(ir), "type": BOOL, "size": 2} for ir in irs]
        values: list = [None]
        if m is not None:
            t = m["arg"]["type"]
            values = list(range(t["lo"], t["hi"] + 1)) + ([None] if t.get("nullable") else [])
            ext.append({"expr": m["arg"], "type": t, "size": len(values)})
        atoms_all = [(*bits, v) for bits in product((0, 1), repeat=j) for v in values]
        aggs = sorted(set(self.counted_aggs) | set(m["aggs"] if m else []))
        q = {"datasets": sorted(lp.datasets), "where": lp.where, "keys": ext}
        rel = relate(b.catalog, q, q) if j <= MAX_PARTS else None
        cells = b.cells
        if rel is None:
            if m is None:  # undecided: each atom >= k' on its own (strict: which are empty is not known)
                for a in atoms_all:
                    self._declare(self._atom_ir(a, None), np.ones(cells, dtype=bool), aggs)
            return  # a column's value classes undecided: spec/disclosure.md 6.13
        possible = rel.new_nonempty.reshape(cells, len(atoms_all))
        index = {slot: i for i, (slot, _) in enumerate(self.parts)}
        by_pattern: dict[tuple, list[int]] = {}
        for c in range(cells):
            by_pattern.setdefault(tuple(bool(x) for x in possible[c]), []).append(c)
        lo, hi = m["clamp"] if m and m["clamp"] is not None else (None, None)
        clamp = (lambda v: v) if lo is None else (lambda v: min(max(v, lo), hi))
        for pattern, where in by_pattern.items():
            atoms = [a for a, ok in zip(atoms_all, pattern) if ok]
            if len(atoms) < 2:
                continue
            rows, skip = part_rows(atoms, j)
            for d in range(1, (m["degree"] if m else 0) + 1):
                rows.append([0 if a[-1] is None else clamp(a[-1]) ** d for a in atoms])
            mask = np.zeros(cells, dtype=bool)
            mask[where] = True
            tested = [frozenset(a for a in atoms if all(a[index[slot]] == bit for slot, bit in group.items()))
                      for group in self.strict]
            for u in derivable(atoms, rows, skip, [t for t in tested if t]):
                if m is not None and all(all(a in u for a in atoms if a[:j] == c) or
                                         not any(a in u for a in atoms if a[:j] == c) for c in {a[:j] for a in u}):
                    continue  # whole value classes: the parts alone determine it (the analysis without m)
                self._declare(_all("or", [self._atom_ir(a, m) for a in sorted(u, key=repr)]), mask, aggs)

    def _atom_ir(self, atom: tuple, m: dict | None) -> dict:
        conds = [_in(ir) if bit else _out(ir) for (_, ir), bit in zip(self.parts, atom)]
        if m is not None:
            conds.append(_value_ir(m["arg"], atom[-1]))
        return _all("and", conds) if conds else {"lit": True, "type": BOOL}

    def _declare(self, cond: dict, cells: np.ndarray, aggs: list[int]) -> None:
        b = self.b
        pk = b.lp.person_key
        slot = b.slot("count", indicator(cond))
        if any(t["slot"] == slot for t in self.tests):
            return
        self.tests.append({"slot": slot, "arg": indicator(cond), "cells": cells, "aggs": aggs,
                           "persons": b.slot("persons_where", cond, column=pk) if pk else None})

    def columns(self) -> dict[str, dict]:
        """{count slot: row IR} of the groups tested: released cells of their own for the differencing
        guard too, which compares them with every earlier release (spec/disclosure.md 3.2)."""
        return {t["slot"]: t["arg"] for t in self.tests}

    def flags(self, guarded) -> dict[int, str]:
        """{aggregate index: flag}: every group its revealed counts and sums determine passes where it
        applies; `guarded(slot, flag)` adds the differencing guard's tests of that group."""
        b, r = self.b, self.b.rules
        what = "rows of a group the counted parts of the cell determine"
        out: dict[int, list[str]] = {}
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
            if not t["cells"].all():
                fail = b.secure("not", [test], 0, 1)
                fail = b.add("linear", "secure", [fail], [b.cells], 0, 1,
                             pairs=[[int(i), int(i)] for i in np.flatnonzero(t["cells"])], size=b.cells)
                test = b.secure("not", [fail], 0, 1)
            test = guarded(t["slot"], test)
            for i in t["aggs"]:
                out.setdefault(i, []).append(test)
        return {i: r.all_of(fs) for i, fs in out.items()}
