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
the parts: over-suppression, never a released "nobody here"). Sums of numeric columns over few
values are counts too: they refine the atoms by value. Earlier releases of the same cells (the same
rows by definition: the same datasets, WHERE and keys, which the differencing guard skips, or written
otherwise) join the system with the parts and sums their ledger entries record; what they alone
determine is theirs, not tested again.
"""
from __future__ import annotations

import json
import math
from itertools import product

import numpy as np

from insightql.compiler.check.observer import maximal
from insightql.compiler.plan import partition_earlier as earlier
from insightql.compiler.plan.aggregates import _is_null, _not, counted, indicator
from insightql.compiler.plan.lower_expr import columns_used
from insightql.compiler.diagnostics import Diagnostic, PlanError
from insightql.compiler.plan.span import derivable, in_span, part_rows
from insightql.compiler.plan.span import rref as _rref, zero_one_combinations as _zero_one_combinations  # noqa: F401 (their tests)
from insightql.compiler.plan.structure import relate, value_starts

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


def _patterns(possible: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(cells with this pattern, as a mask; the pattern)] of the rows of `possible` (cells x classes),
    in the order of their first cell."""
    patterns, first, inverse = np.unique(possible, axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    return [(inverse == i, patterns[i]) for i in np.argsort(first)]


MOMENTS = {"sum": 1, "avg": 1, "var": 2, "stddev": 2}
"""Powers of a column's values an aggregate reveals summed over the cell (with its count)."""
MAX_CLASSES = 1 << 22
"""Cells x part combinations x value intervals of the summed columns decided at most (beyond: IQ329)."""
MAX_ATOMS = 4096
"""Value classes of one cell related at most (beyond: IQ329)."""
MAX_RANK = 20
"""Revealed sums of one cell related at most: 2**rank 0/1 choices are searched (beyond: IQ329)."""


def _canon(ir: dict) -> str:
    return json.dumps(ir, sort_keys=True)


def _moment(arg: dict, clamp, span) -> dict:
    """A summed numeric column: its IR, scale, domain and clamp in steps of 10**-scale (what the
    owners' partials sum), its degree and aggregates, and the degree earlier releases of the same
    cells revealed (`old`)."""
    t = arg["type"]
    scale = t.get("scale", 0) if t["kind"] == "decimal" else 0
    f = 10 ** scale
    clamp = None if clamp is None else (round(clamp[0] * f), round(clamp[1] * f))
    return {"arg": arg, "name": arg.get("col"), "scale": scale, "lo": math.ceil(t["lo"] * f),
            "hi": math.floor(t["hi"] * f), "clamp": clamp, "degree": 0, "old": 0, "aggs": [], "span": span}


def _image(m: dict, lo: int, hi: int) -> range:
    """The summed values (clamped) of the values lo..hi."""
    if m["clamp"] is not None:
        cl, ch = m["clamp"]
        lo, hi = min(max(lo, cl), ch), min(max(hi, cl), ch)
    return range(lo, hi + 1)


def _value_ir(m: dict, v: int | None) -> dict:
    """Row IR: TRUE on the rows whose summed value of m's column is v (scaled; None: NULL)."""
    col = m["arg"]
    if v is None:
        return _out(col)
    op = "="
    if m["clamp"] is not None and v == m["clamp"][0] > m["lo"]:
        op = "<="  # every value below the clamp is summed as its bound
    elif m["clamp"] is not None and v == m["clamp"][1] < m["hi"]:
        op = ">="
    if m["scale"]:
        x = v / 10 ** m["scale"]
        lit = {"lit": x, "type": {"kind": "decimal", "lo": x, "hi": x, "nullable": False, "scale": m["scale"]}}
    else:
        lit = {"lit": v, "type": {"kind": "int", "lo": v, "hi": v, "nullable": False}}
    return {"op": op, "args": [col, lit], "type": BOOL}


def _interval_key(m: dict, starts: list[int]) -> dict:
    """A key numbering the intervals that begin at `starts` (NULL: the extra last slot)."""
    f = 10 ** m["scale"]
    edges = [s / f if m["scale"] else s for s in starts[1:]]
    t = m["arg"]["type"]
    expr = {"fn": "bucket", "args": [m["arg"], None], "consts": [None, edges], "arg_types": [t, None],
            "type": {"kind": "category", "nullable": True, "domain": [str(i) for i in range(len(starts))]}}
    return {"expr": expr, "type": expr["type"], "size": len(starts) + 1}


def _kept(degrees: list[int], images: list[list], boxes: list[tuple], j: int) -> list[int]:
    """The columns whose sums can still tell value classes apart in a cell whose possible classes
    are `boxes` (part bits, then an interval per column). Column i tells nothing where one class
    of rows, all else fixed (the other columns' intervals), holds 2d + 1 summed values (NULL sums
    as 0): f = c(bits) + sum_i p_i(v_i) in {0, 1} there makes p_i constant. Dropping a column
    merges classes, so the test is repeated until nothing changes."""
    keep = list(range(len(degrees)))
    changed = True
    while changed:
        changed = False
        for i in list(keep):
            seen: dict[tuple, set] = {}
            for box in boxes:
                fixed = (box[:j], *(box[j + x] for x in keep if x != i))
                vals = seen.setdefault(fixed, set())
                vals.update(0 if v is None else v for v in images[i][box[j + i]][:2 * degrees[i] + 1])
                if len(vals) > 2 * degrees[i]:
                    keep.remove(i)
                    changed = True
                    break
    return keep


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
        self.moments: dict[str, dict] = {}  # a summed numeric column (its IR) -> _moment
        for i, (a, p) in enumerate(zip(lp.aggregates, agg_plans)):
            for slot, ir, _ in counted(a, p):
                seen.setdefault(slot, (slot, ir))
                self.strict.append({slot: 1})
                self.counted_aggs.append(i)
            if a.func == "count_if":
                self.strict.append({p["count"]: 0})
            if a.func == "share_if":
                self.strict.append({p["hits"]: 0, **({p["count"]: 1} if a.arg_type.nullable else {})})
            if a.func in MOMENTS and a.arg.get("type", {}).get("kind") in ("int", "decimal"):
                m = self.moments.setdefault(_canon(a.arg), _moment(a.arg, a.clamp, a.ast.span))
                m["degree"] = max(m["degree"], MOMENTS[a.func])
                m["aggs"].append(i)
        self.parts = list(seen.values())
        self.counted_aggs = sorted(set(self.counted_aggs))
        self.tests: list[dict] = []  # {slot, arg, persons, cells: where it applies (public), aggs}
        if getattr(lp.policy, "privacy", None) is not None:  # DP: no threshold rules
            return
        new_parts, parts, moments = bool(self.parts), self.parts, self.moments
        everywhere = [((), np.ones(builder.cells, dtype=bool))]
        # one analysis per group of cells that the same earlier releases of the same cells apply to
        for self.run, self.mask in earlier.groups(self) if new_parts or moments else everywhere:
            self.parts, self.moments = list(parts), {k: {**m, "aggs": list(m["aggs"])} for k, m in moments.items()}
            self.old_parts = earlier.add(self, [builder.earlier[i] for i in self.run], _moment)
            if len(self.parts) >= 2 and new_parts:
                self._analyse_parts()
            split = [m for m in self.moments.values() if self._may_split(m)]
            if split and (new_parts or any(m["aggs"] for m in split)):
                self._analyse_values(split)

    def _may_split(self, m: dict) -> bool:
        """Whether sums of the column's values and powers up to degree d can determine a group: only
        where some class of rows (a cell and a combination of parts) holds at most 2d distinct
        summed values (a polynomial of degree d with values in {0, 1} on 2d + 1 points is constant).
        A column that no WHERE, key or condition reads has its whole domain in every class."""
        lp, arg = self.b.lp, m["arg"]
        summed = len(_image(m, m["lo"], m["hi"])) + bool(arg["type"].get("nullable"))
        if summed <= 2 * m["degree"]:
            return True
        read = set()
        # (the rows with a value of the column itself split off NULL only: the rest keep every value)
        for ir in [lp.where, *(k.expr for k in lp.keys), *(ir for _, ir in self.parts if _canon(ir) != _canon(arg))]:
            columns_used(ir, read)
        return bool(columns_used(arg) & read)

    def _query(self, extra: list[dict]) -> dict:
        """The cells of GROUP BY (keys, p1, ..., pj, extra), as structure.relate reads a query."""
        lp = self.b.lp
        ext = [{"expr": k.expr, "type": k.type.to_json(), "size": len(k.values)} for k in lp.keys]
        ext += [{"expr": _in(ir), "type": BOOL, "size": 2} for _, ir in self.parts]
        return {"datasets": sorted(lp.datasets), "where": lp.where, "keys": ext + extra}

    def _possible(self, q: dict):
        """Which cells of q some row the definitions allow can reach (None: undecided)."""
        whole = {"datasets": q["datasets"], "where": None, "keys": []}
        rel = relate(self.b.catalog, q, whole)
        return None if rel is None else rel.new_nonempty

    def _analyse_parts(self) -> None:
        """The groups the parts' counts determine, per pattern of atoms the definitions allow in a cell."""
        j, cells = len(self.parts), self.b.cells
        atoms_all = list(product((0, 1), repeat=j))
        possible = self._possible(self._query([])) if j <= MAX_PARTS else None
        if possible is None:  # undecided: each atom >= k' on its own (strict: which are empty is not known)
            for a in atoms_all:
                self._declare(self._atom_ir(a, []), np.ones(cells, dtype=bool), self.counted_aggs)
            return
        for where, pattern in _patterns(possible.reshape(cells, -1)):
            atoms = [a for a, ok in zip(atoms_all, pattern) if ok]
            if len(atoms) >= 2:
                rows, skip = part_rows(atoms, j)
                for u in derivable(atoms, rows, skip, self._tested(atoms), self._known(rows, [])):
                    self._declare(_all("or", [self._atom_ir(a, []) for a in sorted(u, key=repr)]), where,
                                  self.counted_aggs)

    def _analyse_values(self, ms: list[dict]) -> None:
        """The groups the parts' counts and the sums of the columns `ms` (and their powers) determine
        together: the atoms are refined by each column's summed value wherever, in a cell, every
        class of rows holds at most 2d of them (else that column's sums determine nothing there).
        A column's values come in intervals no definition tells apart (structure.value_starts): an
        interval some row can reach holds rows of every value in it."""
        j, cells = len(self.parts), self.b.cells
        names = [m["name"] for m in ms]
        starts = value_starts(self.b.catalog, self._query([]), names) if None not in names else None
        if starts is None:
            self.refuse(ms, "a condition reads them in a way the compiler cannot enumerate")
        ivals = [list(zip(starts[m["name"]], [s - 1 for s in starts[m["name"]][1:]] + [m["hi"]])) for m in ms]
        shape = [2] * j + [len(iv) + 1 for iv in ivals]
        if cells * math.prod(shape) > MAX_CLASSES:
            self.refuse(ms, f"more than {MAX_CLASSES} classes of rows to decide")
        possible = self._possible(self._query([_interval_key(m, starts[m["name"]]) for m in ms]))
        if possible is None:
            self.refuse(ms, "the definitions leave classes of rows the compiler cannot decide")
        images = [[_image(m, lo, hi) for lo, hi in iv] + [[None]] for m, iv in zip(ms, ivals)]
        for where, pattern in _patterns(possible.reshape(cells, -1)):
            boxes = [tuple(int(x) for x in box) for box in np.argwhere(pattern.reshape(shape))]
            keep = _kept([m["degree"] for m in ms], images, boxes, j)
            if not keep:
                continue
            atoms = sorted({(*box[:j], *vs) for box in boxes
                            for vs in product(*(images[i][box[j + i]] for i in keep))}, key=repr)
            degrees = [ms[i]["degree"] for i in keep]
            if len(atoms) > MAX_ATOMS or 1 + j + sum(degrees) > MAX_RANK:
                self.refuse([ms[i] for i in keep], f"more than {MAX_ATOMS} value classes or {MAX_RANK} sums in a cell")
            if len(atoms) < 2:
                continue
            rows, skip = part_rows(atoms, j)
            powers = []  # (row, revealed by an earlier release of the same cells)
            for pos, d in enumerate(degrees):
                for e in range(1, d + 1):
                    powers.append(([0 if a[j + pos] is None else a[j + pos] ** e for a in atoms], e <= ms[keep[pos]]["old"]))
            rows += [r for r, _ in powers]
            aggs = sorted(set(self.counted_aggs).union(*(ms[i]["aggs"] for i in keep)))
            classes = sorted({a[:j] for a in atoms})
            counts = part_rows(classes, j)[0]
            for u in derivable(atoms, rows, skip, self._tested(atoms), self._known(rows, [r for r, old in powers if old])):
                whole = {c for c in classes if all(a in u for a in atoms if a[:j] == c)}
                if whole == {a[:j] for a in u}:  # whole classes of parts: as a union of them, unless
                    if in_span(counts, [int(c in whole) for c in classes]):  # the counts alone determine it
                        continue  # (_analyse_parts tests it, or it is a part, a rest, or holds a tested group)
                    self._declare(_all("or", [self._atom_ir(c, []) for c in sorted(whole)]), where, aggs)
                    continue
                atom_ir = [self._atom_ir(a[:j], [_value_ir(ms[i], v) for i, v in zip(keep, a[j:])])
                           for a in sorted(u, key=repr)]
                self._declare(_all("or", atom_ir), where, aggs)

    def _known(self, rows: list[list], powers: list[list]) -> list[list] | None:
        """The rows earlier releases of the same cells revealed (with the cell's: n, the parts they
        counted, `powers` of the columns they summed), or None where there are none."""
        if not self.old_parts and not powers:
            return None
        return [rows[0], *(rows[1 + i] for i in sorted(self.old_parts)), *powers]

    def _tested(self, atoms: list[tuple]) -> list[frozenset]:
        """The groups tested strictly elsewhere, as sets of these atoms (their first bits: the parts)."""
        index = {slot: i for i, (slot, _) in enumerate(self.parts)}
        groups = [frozenset(a for a in atoms if all(a[index[slot]] == bit for slot, bit in group.items()))
                  for group in self.strict]
        return [g for g in groups if g]

    def refuse(self, ms: list[dict], why: str) -> None:
        names = ", ".join(sorted(str(m["name"]) for m in ms))
        raise PlanError(Diagnostic(
            "IQ329", f"the value classes of the summed column(s) {names} cannot be related to the counts: {why}",
            ms[0]["span"], ["a sum over few values of a column is a count of each value (spec/disclosure.md 2.15): "
                            "compare these columns with literals (=, IN, BETWEEN, <), not with other columns, or "
                            "ask for fewer sums and conditions at once"]))

    def _atom_ir(self, bits: tuple, values: list[dict]) -> dict:
        conds = [_in(ir) if bit else _out(ir) for (_, ir), bit in zip(self.parts, bits)] + values
        return _all("and", conds) if conds else {"lit": True, "type": BOOL}

    def _declare(self, cond: dict, cells: np.ndarray, aggs: list[int]) -> None:
        b = self.b
        pk = b.lp.person_key
        cells = cells & self.mask  # the cells of this group (earlier.groups)
        if not cells.any():
            return
        slot = b.slot("count", indicator(cond))
        if any(t["slot"] == slot and t["run"] == self.run for t in self.tests):
            return
        self.tests.append({"slot": slot, "arg": indicator(cond), "cells": cells, "aggs": aggs, "run": self.run,
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
