"""filter.parts (spec/disclosure.md 2.15) restated for tests/test_differential.py's generated queries.

Written from the spec, apart from compiler/plan/partition.py and span.py (it imports neither): the
WHERE is at most two one-column conditions (IN, BETWEEN, IS NULL, each maybe negated, joined by AND
or OR); the aggregates are COUNT(*), COUNT(x), SUM(x), AVG(x). Per cell:

* what a row can hold: the WHERE as boxes (one per OR branch over different columns; conditions on
  one column intersected by AND, united by OR), each giving every column a set of values (NULL
  and intervals of values in steps of 10**-scale, dates as days, categories as sets); a box is
  possible in a cell when the cell's key values and every other column's set allow a row;
* the counted parts: the rows with a value of each nullable column the query aggregates; the
  summed columns: those of SUM and AVG, each read as its clamped value, NULL summing as 0. A
  summed column tells something only where the rows can hold at most two summed values (NULL as 0):
  then each of its values is a class of its own (with NULL where allowed);
* the classes ("atoms"): the combinations of these labels some possible box allows; the revealed
  sums are rows over them (n: 1; a part's count: 1 where the column has a value; a SUM: the value);
  a union of classes whose indicator is orthogonal to their null space is determined. Each such
  union other than the empty one, the whole cell, a part or its rest, and a superset of a part or
  of a smaller union already tested, must hold >= k' rows and some dataset >= k' persons, in the
  cell and on every largest observer's complement (strict); else the aggregates revealing a part
  are withheld, and, unless n and the parts' counts alone determine the union, the sums of the
  columns telling something as well.
"""
from __future__ import annotations

import datetime as dt
import itertools
import math
from fractions import Fraction

import numpy as np
from hypothesis import assume

from rules_ref import kprime, largest

MAX_CLASSES = 14  # classes of one cell searched exhaustively (2**14 unions); beyond: not restated


class Allowed:
    """The values a condition (or several) allows a column: NULL or not, and either a set of
    category values or integer intervals (scaled numbers, days)."""

    def __init__(self, null: bool, values=None, intervals=None):
        self.null, self.values, self.intervals = null, values, intervals

    def nonnull(self) -> bool:
        return bool(self.values) if self.values is not None else any(lo <= hi for lo, hi in self.intervals)

    def empty(self) -> bool:
        return not self.null and not self.nonnull()

    def __and__(self, o: "Allowed") -> "Allowed":
        if self.values is not None:
            return Allowed(self.null and o.null, self.values & o.values)
        return Allowed(self.null and o.null, intervals=[(max(a, c), min(b, d)) for a, b in self.intervals
                                                        for c, d in o.intervals if max(a, c) <= min(b, d)])

    def __or__(self, o: "Allowed") -> "Allowed":
        if self.values is not None:
            return Allowed(self.null or o.null, self.values | o.values)
        return Allowed(self.null or o.null, intervals=self.intervals + o.intervals)


def _factor(col) -> int:
    return 10 ** (col.scale or 0) if col.type == "decimal" else 1


def _point(col, v) -> int:
    if col.type == "date":
        return (v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))).toordinal()
    return round(v * _factor(col))


def full(col) -> Allowed:
    if col.type in ("category", "boolean"):
        return Allowed(bool(col.nullable), set(col.domain) if col.type == "category" else {True, False})
    return Allowed(bool(col.nullable), intervals=[(_point(col, col.min), _point(col, col.max))])


def allowed(col, cond: dict) -> Allowed:
    """What one generated condition (test_differential.conditions) allows its column."""
    whole = full(col)
    if cond["kind"] == "null":
        return Allowed(False, whole.values, whole.intervals) if cond["neg"] else \
            Allowed(True, set() if whole.values is not None else None, [] if whole.values is None else None)
    if cond["kind"] == "in":
        inside = set(cond["values"])
        return Allowed(False, whole.values - inside if cond["neg"] else inside)
    lo, hi = (_point(col, v) for v in cond["values"])
    if cond["neg"]:
        outside = Allowed(False, intervals=[(-math.inf, lo - 1), (hi + 1, math.inf)])
        return Allowed(False, intervals=(whole & outside).intervals)
    return Allowed(False, intervals=(whole & Allowed(False, intervals=[(lo, hi)])).intervals)


def boxes(cols: dict, conds: list[dict], glue: str) -> list[dict[str, Allowed]]:
    """The WHERE as a union of boxes {column: what it allows} (columns not named: anything)."""
    if not conds:
        return [{}]
    sets = [(c["column"], allowed(cols[c["column"]], c)) for c in conds]
    if glue.strip() == "AND" or len(sets) == 1:
        out: dict[str, Allowed] = {}
        for name, a in sets:
            out[name] = out[name] & a if name in out else a
        return [out]
    if sets[0][0] == sets[1][0]:
        return [{sets[0][0]: sets[0][1] | sets[1][1]}]
    return [{name: a} for name, a in sets]


def summed_values(col, a: Allowed, cap: int = 3) -> list[int]:
    """The clamped (scaled) values a summed column can hold under `a`, at most `cap` of them."""
    cl, ch = (_point(col, x) for x in (col.clamp or (col.min, col.max)))
    out: set[int] = set()
    for lo, hi in a.intervals:
        lo, hi = min(max(lo, cl), ch), min(max(hi, cl), ch)
        for v in range(int(lo), int(min(hi, lo + cap)) + 1):
            out.add(v)
        if len(out) >= cap:
            break
    return sorted(out)[:cap]


def determined(rows: list[list[int]], m: int) -> np.ndarray:
    """A (2**m) x m 0/1 array of every union of m classes, and a mask of those the rows determine
    (their indicator orthogonal to the rows' null space, computed exactly over the rationals)."""
    a = [[Fraction(x) for x in r] for r in rows]
    pivots, r = [], 0
    for c in range(m):
        p = next((i for i in range(r, len(a)) if a[i][c] != 0), None)
        if p is None:
            continue
        a[r], a[p] = a[p], a[r]
        a[r] = [x / a[r][c] for x in a[r]]
        for i in range(len(a)):
            if i != r and a[i][c] != 0:
                a[i] = [x - a[i][c] * y for x, y in zip(a[i], a[r])]
        pivots.append(c)
        r += 1
    null = []
    for f in (c for c in range(m) if c not in pivots):
        z = [Fraction(0)] * m
        z[f] = Fraction(1)
        for i, c in enumerate(pivots):
            z[c] = -a[i][f]
        den = math.lcm(*(x.denominator for x in z))
        null.append([int(x * den) for x in z])
    subsets = np.array(list(itertools.product((0, 1), repeat=m)), dtype=np.int64)
    if not null:
        return subsets, np.ones(len(subsets), dtype=bool)
    return subsets, ~(subsets.astype(object) @ np.array(null, dtype=object).T != 0).any(axis=1)


def parts_withheld(q, cols: dict, con, owners: dict, holds: list, k: int, base: int,
                   person_keys: dict[str, str | None]) -> dict[tuple, set[int]]:
    """{cell key tuple: indices of q.aggs filter.parts withholds} (cells with none left out)."""
    summed = sorted({a.column for a in q.aggs if a.func in ("sum", "avg")})
    counted = sorted({a.column for a in q.aggs if a.column and cols[a.column].nullable})
    if not summed and len(counted) < 2:
        return {}
    where = boxes(cols, q.where_conds, q.where_glue)
    domains = [cols[key].domain if cols[key].type == "category" else [0, 1] for key in q.keys]
    kk = kprime(k, base)
    out: dict[tuple, set[int]] = {}
    for combo in itertools.product(*domains):
        cell = dict(zip(q.keys, combo))
        live = [b for b in where if all(
            (cols[c].type == "category" and cell[c] in a.values) if c in cell else not a.empty()
            for c, a in b.items())]
        if not live:
            continue
        labels: dict[str, list] = {}  # the summed columns telling something: their values (and None)
        for x in summed:
            sets = [b.get(x, full(cols[x])) for b in live]
            vals = sorted({v for a in sets for v in summed_values(cols[x], a)})
            if len({0 if a.null else None for a in sets} - {None} | set(vals)) <= 2:
                labels[x] = vals
        names = sorted(set(labels) | set(counted))
        atoms = set()
        for b in live:
            per = []
            for c in names:
                a = b.get(c, full(cols[c]))
                per.append(([v for v in labels[c] if v in summed_values(cols[c], a)] if c in labels
                            else (["v"] if a.nonnull() else [])) + ([None] if a.null else []))
            atoms |= set(itertools.product(*per))
        atoms = sorted(atoms, key=repr)
        m = len(atoms)
        if m < 2:
            continue
        assume(m <= MAX_CLASSES)  # more classes than the reference searches: not restated (skipped)
        counts = [[1] * m] + [[int(a[names.index(c)] is not None) for a in atoms] for c in counted]
        sums = [[0 if a[names.index(x)] is None else a[names.index(x)] for a in atoms] for x in labels]
        subsets, ok = determined(counts + sums, m)
        _, by_counts = determined(counts, m)
        parts = [frozenset(i for i, a in enumerate(atoms) if a[names.index(c)] is not None) for c in counted]
        skip = set(parts) | {frozenset(range(m)) - p for p in parts}
        tested: list[frozenset] = [p for p in parts if p]
        found = []
        for u_vec, good, counts_only in sorted(zip(subsets.tolist(), ok, by_counts), key=lambda t: (sum(t[0]), t[0])):
            u = frozenset(i for i, x in enumerate(u_vec) if x)
            if not good or not 0 < len(u) < m or u in skip or any(t <= u for t in tested):
                continue
            tested.append(u)
            found.append((u, counts_only))
        for u, counts_only in found:
            if _holds(con, q, cell, [atoms[i] for i in u], names, cols, owners, holds, kk, person_keys):
                continue
            out.setdefault(combo, set()).update(
                i for i, a in enumerate(q.aggs) if a.column in counted or (not counts_only and a.column in labels
                                                                          and a.func in ("sum", "avg")))
    return out


def _atom_sql(atom: tuple, names: list[str], cols: dict) -> str:
    conds = []
    for c, label in zip(names, atom):
        col = cols[c]
        if label is None:
            conds.append(f'"{c}" IS NULL')
        elif label == "v":
            conds.append(f'"{c}" IS NOT NULL')
        else:
            cl, ch = col.clamp or (col.min, col.max)
            conds.append(f'ABS(MIN(MAX("{c}", {cl}), {ch}) * {_factor(col)} - {label}) < 0.5')
    return "(" + " AND ".join(conds) + ")"


def _holds(con, q, cell: dict, atoms: list[tuple], names, cols, owners, holds, kk: int, person_keys: dict) -> bool:
    """The union of `atoms` in this cell: >= k' rows and some dataset >= k' persons, on all rows and
    on every largest observer's complement."""
    rows, persons = {}, {}
    keys = "".join(f' AND "{k}" = ?' for k in q.keys)
    args = [int(v) if cols[k].type == "boolean" else v for k, v in cell.items()]
    where = f"({q.where_sql})" if q.where_sql else "1"
    union = " OR ".join(_atom_sql(a, names, cols) for a in atoms)
    person = any(person_keys.values())
    for d in q.datasets:
        pk = person_keys[d]
        r = con.execute(f'SELECT COUNT(*), {f"COUNT(DISTINCT {pk})" if pk else "0"} FROM "{d}" '
                        f"WHERE {where} AND ({union}){keys}", args).fetchone()
        rows[d], persons[d] = r
    for ds in [list(q.datasets)] + [[d for d in q.datasets if owners[d] not in h] for h in largest(holds)]:
        if sum(rows[d] for d in ds) < kk or (person and not any(persons[d] >= kk for d in ds)):
            return False
    return True

