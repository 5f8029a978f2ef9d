"""What an observer can derive from InsightQL releases: a model written from spec/disclosure.md
(sections 1-3) alone, sharing nothing with the compiler's rules.

The test knows everything: the pooled rows of every dataset (each with an id, its dataset and its
owner) and the queries, in a small restricted form (`Query`) that this module evaluates itself in
plain Python with SQL's NULL logic. For each released cell it knows the exact set of rows behind
every released number. An observer holding the organisations S (1.1: its own rows; S empty is the
outsider) combines released numbers with its own rows; every number it can derive that is the size
(or value) of a concrete set of rows is judged against 1.2. The derivations (`Model.findings`):

(a) own rows (2.3, 2.4, 2.6): a released count or sum of a cell minus the observer's rows in it; a
    distinct count minus its own persons, and where the complement's persons are its rows (a key
    unique per row), the persons it shares with the complement and those it does not;
(b) one cell (2.4, 2.5): two counts of it, one inside the other (COUNT(*) - COUNT(x) by definition,
    COUNT(x) - COUNT(y) where nested in the data), also minus own rows; rows minus distinct persons;
(c) across releases (3.2): a group of released cells of one query minus every released cell of
    another that lies inside the group by definition (a cell in a cell, margins, groups that
    cross), for row counts, counts of a column and sums, also minus own rows;
(d) the parts of one cell (2.13, 2.15): the counts of a cell released together (COUNT(*), COUNT(x),
    subgroup counts `COUNT(*) FILTER (WHERE p)` and `SUM(CASE WHEN p THEN 1 ELSE 0 END)`), and the sum
    of hours, are sums over the atoms of the partition their conditions (and the hours) make; every
    union of atoms the definitions
    allow whose indicator lies in the span of the released counts' indicators is a derived set
    (brute force over the subsets of atoms), also on the rows the observer does not hold.

Each derived set is judged:

* `small`:   the set holds 1..k-1 rows;
* `persons`: it holds k or more rows but only 1..k-1 distinct persons;
* `zero`:    it is empty although the definitions do not force it empty, and the rule protecting it
             is strict (the zero rule, 1.2): an observer's complement (2.3), membership (2.6), a
             cross-query difference of cells (3.2). Parts of a released cell (2.4, 2.5) are
             two-sided: 0 is allowed there.

Containment "by definition" (3.1) is decided on representative points of the public domain
(`universe`): every category value (or the named ones plus one other), NULL, and for numbers the
domain bounds and b-1, b, b+1 around every literal b, between which no predicate changes.
"""
from __future__ import annotations

import itertools
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_CAT = tomllib.loads((Path(__file__).resolve().parent / "corpus" / "catalog.toml").read_text())
K = 10  # min_group_size of police_victims and ngo_clients
ORG = {d: _CAT["datasets"][d]["owner"] for d in ("police_victims", "ngo_clients")}
_COLS = _CAT["datasets"]["police_victims"]["columns"]  # ngo_clients declares the same columns
CATEGORIES = {c: list(v["domain"]) for c, v in _COLS.items() if v["type"] == "category"}
CATEGORIES["minor_at_recruitment"] = [False, True]
NUMBERS = {c: (v["min"], v["max"]) for c, v in _COLS.items() if v["type"] in ("integer", "decimal")}
NULLABLE = {c for c, v in _COLS.items() if v.get("nullable")}
CLAMP = {c: tuple(v["clamp"]) for c, v in _COLS.items() if "clamp" in v}
UNIQUE_PERSON = {d for d in ORG if _CAT["datasets"][d]["columns"]["person_id"].get("unique")}
OUTPUTS = {"n": "COUNT(*)", "h": "COUNT(hours_worked_week)", "dn": "COUNT(debt_eur)", "s": "SUM(hours_worked_week)",
           "a": "AVG(hours_worked_week)", "d": "COUNT(DISTINCT person_id)", "m": "MEDIAN(prs_Age)"}
ONLY = {"all": None, "H": "hours_worked_week", "D": "debt_eur"}  # a count's rows: all, or those with a value
FACT = {"n": ("rows", "all"), "h": ("rows", "H"), "dn": ("rows", "D"), "s": ("sum", "H"), "a": ("mean", "H"),
        "d": ("persons", "all")}


# -- the queries, and SQL evaluation -------------------------------------------------------------
@dataclass(frozen=True)
class Atom:
    """One predicate: op in 'in' '=' '<>' 'between' '<' '>=' (args: literals), 'is_null', 'true'."""
    col: str
    op: str
    args: tuple = ()
    negated: bool = False

    def text(self) -> str:
        lit = [repr(a) for a in self.args] or [""]
        body = {"in": f"{self.col} IN ({', '.join(lit)})", "between": f"{self.col} BETWEEN {lit[0]} AND {lit[-1]}",
                "is_null": f"{self.col} IS NULL", "true": self.col}.get(self.op) or f"{self.col} {self.op} {lit[0]}"
        return f"NOT {body}" if self.negated else body


@dataclass(frozen=True)
class Query:
    datasets: tuple
    where: tuple = ()  # AND of clauses, each an OR of atoms
    keys: tuple = ()  # a column name, or ("bucket", column, edges)
    outputs: tuple = ("n",)
    parts: tuple = ()  # subgroup counts: (form 'filter' | 'case', Atom), released as p0, p1, ...

    @property
    def names(self) -> tuple:
        return self.outputs + tuple(f"p{i}" for i in range(len(self.parts)))

    def text(self) -> str:
        keys = [k if isinstance(k, str) else f"bucket({k[1]}, [{', '.join(map(str, k[2]))}])" for k in self.keys]
        sel = [k if isinstance(k, str) else f"{k} AS key{i}" for i, k in enumerate(keys)]
        parts = [(f"COUNT(*) FILTER (WHERE {a.text()})" if form == "filter" else
                  f"SUM(CASE WHEN {a.text()} THEN 1 ELSE 0 END)") + f" AS p{i}" for i, (form, a) in enumerate(self.parts)]
        out = "@purpose research\nSELECT " + ", ".join(sel + [f"{OUTPUTS[o]} AS {o}" for o in self.outputs] + parts)
        out += "\nFROM " + " UNION ALL ".join(self.datasets)
        if self.where:
            out += "\nWHERE " + " AND ".join(
                "(" + " OR ".join(a.text() for a in c) + ")" if len(c) > 1 else c[0].text() for c in self.where)
        return out + ("\nGROUP BY " + ", ".join(keys) if keys else "") + ";"


def _atom(a: Atom, row: dict):
    v = row.get(a.col)
    if a.op == "is_null":
        r = v is None
    elif v is None:
        r = None  # unknown
    else:
        r = {"in": lambda: v in a.args, "=": lambda: v == a.args[0], "<>": lambda: v != a.args[0],
             "<": lambda: v < a.args[0], ">=": lambda: v >= a.args[0], "true": lambda: v is True,
             "between": lambda: a.args[0] <= v <= a.args[1]}[a.op]()
    return r if r is None or not a.negated else not r


def _any(vals) -> bool | None:
    vals = list(vals)
    return True if True in vals else None if None in vals else False


def passes(q: Query, row: dict) -> bool:
    """The row is read by q and its WHERE is TRUE (not FALSE, not unknown)."""
    clauses = [_any(_atom(a, row) for a in c) for c in q.where]
    return row["dataset"] in q.datasets and False not in clauses and None not in clauses


def bucket(v, edges) -> str | None:
    if v is None:
        return None  # a NULL key is its own cell
    if v < edges[0]:
        return f"<{edges[0]}"
    lo = max(e for e in edges if e <= v)
    hi = [e for e in edges if e > v]
    return f"[{lo},{hi[0]})" if hi else f"{lo}+"


def cell_of(q: Query, row: dict) -> tuple:
    return tuple(row.get(k) if isinstance(k, str) else bucket(row.get(k[1]), k[2]) for k in q.keys)


def universe(queries: list[Query]) -> list[dict]:
    """Representative points of the public domain for these queries (3.1): a point per dataset and
    combination of the columns they use; every other column does not change any cell."""
    lits, keyed = {"hours_worked_week": set()}, set()
    for q in queries:
        for a in [a for c in q.where for a in c] + [a for _, a in q.parts]:
            lits.setdefault(a.col, set()).update(a.args)
        for k in q.keys:
            col = k if isinstance(k, str) else k[1]
            keyed.add(col)
            lits.setdefault(col, set()).update(() if isinstance(k, str) else k[2])
        if "dn" in q.outputs:
            lits.setdefault("debt_eur", set())
    dims = {"dataset": list(ORG)}
    for col, named in sorted(lits.items()):
        if col in CATEGORIES:
            dom = CATEGORIES[col]
            whole = col in keyed or len(dom) == 2  # a boolean is used bare, without a literal
            dims[col] = dom if whole else [v for v in dom if v in named] + [v for v in dom if v not in named][:1]
        else:
            lo, hi = NUMBERS[col]
            dims[col] = sorted({lo, hi} | {b + d for b in named for d in (-1, 0, 1) if lo <= b + d <= hi})
            dims[col] = ([None] if col in NULLABLE else []) + dims[col]
    return [dict(zip(dims, combo)) for combo in itertools.product(*dims.values())]


# -- what is released, and what an observer derives ----------------------------------------------
@dataclass(frozen=True)
class Fact:
    """A released number: the size (measure 'rows'), sum or mean of a column ('sum', 'mean') or
    distinct persons ('persons') of the rows `rows` of one cell (all of them, or those with a value:
    `only`), whose definition allows the domain points `region`."""
    q: int
    cell: tuple
    measure: str
    only: str
    rows: frozenset
    region: frozenset


@dataclass(frozen=True)
class Finding:
    kind: str  # 'small' | 'persons' | 'zero'
    rule: str  # the derivation: '(a)' own rows (2.3, 2.4, 2.6), '(b)' one cell (2.4, 2.5), '(c)' across (3.2)
    text: str


class Model:
    """`rows`: every row of every dataset, dicts with 'id', 'dataset', 'person_id' and the columns.
    `released[i]`: {cell: {output: value}} of query i, only the values not suppressed."""

    def __init__(self, rows: list[dict], queries: list[Query], k: int = K, *, zero=True, persons_parts=True,
                 across_values=True, across_own=True, subgroups=True, persons_across=False, parts=True):
        """Switches, each a kind of derivation: `zero` the zero rule (1.2); `persons_parts` distinct
        persons of the parts of a released cell (rows with or without a value, repeat records: 2.4,
        2.5, section 5); `across_values` differences across releases of counts and sums of a column
        (3.2 on the rows that have a value); `across_own` a difference across releases minus the
        observer's own rows (3.2 with 2.3); `subgroups` a group of several cells across releases that
        is only part of a connected group of cells that cross (3.2: "a group of cells in a group");
        `persons_across` distinct persons of a difference across releases (off: a residual, 6.7);
        `parts` unions of the atoms of the counted parts of one cell (2.15)."""
        self.rows, self.queries, self.k = {r["id"]: r for r in rows}, queries, k
        self.zero, self.persons_parts, self.across_values = zero, persons_parts, across_values
        self.across_own, self.subgroups, self.persons_across = across_own, subgroups, persons_across
        self.parts = parts
        self.points = universe(queries)
        self.cells = [self._group(q, self.rows.items()) for q in queries]
        self.regions = [self._group(q, enumerate(self.points)) for q in queries]

    @staticmethod
    def _group(q: Query, items) -> dict:
        """{cell: ids of the rows (or points) in it}; evaluated once per combination of q's columns."""
        cols = ["dataset"] + sorted({a.col for c in q.where for a in c} | {k if isinstance(k, str) else k[1]
                                                                           for k in q.keys})
        out, memo = {}, {}
        for i, r in items:
            proj = tuple(r.get(c) for c in cols)
            if proj not in memo:
                memo[proj] = cell_of(q, r) if passes(q, r) else None
            if memo[proj] is not None:
                out.setdefault(memo[proj], set()).add(i)
        return {c: frozenset(v) for c, v in out.items()}

    def _only(self, ids, only: str, table) -> frozenset:
        return frozenset(i for i in ids if ONLY[only] is None or table[i][ONLY[only]] is not None)

    def persons(self, ids) -> set:
        return {self.rows[i]["person_id"] for i in ids}

    def check_values(self, i: int, released: dict, shown: set) -> list[str]:
        """The released numbers are those of the model's own cells (else the model is wrong);
        `shown`: every cell key in query i's table, released or not."""
        bad = []
        for cell, vals in released.items():
            rows = self.cells[i].get(cell, frozenset())
            hours = [min(max(self.rows[r]["hours_worked_week"], CLAMP["hours_worked_week"][0]),
                         CLAMP["hours_worked_week"][1]) for r in self._only(rows, "H", self.rows)]
            want = {"n": len(rows), "h": len(hours), "dn": len(self._only(rows, "D", self.rows)), "s": sum(hours),
                    "d": len(self.persons(rows)), "a": sum(hours) / len(hours) if hours else None}
            want |= {f"p{j}": sum(_atom(a, self.rows[r]) is True for r in rows)
                     for j, (_, a) in enumerate(self.queries[i].parts)}
            bad += [f"q{i} {cell} {o}: released {v}, model {want[o]}" for o, v in vals.items() if o in want and not (
                v == want[o] or (o == "a" and want[o] is not None and math.isclose(v, want[o], rel_tol=1e-3)))]
        return bad + [f"q{i}: model cell {c} not in the table" for c in self.cells[i] if c not in shown]

    def facts(self, released: list[dict]) -> list[Fact]:
        out = []
        for i, rel in enumerate(released):
            for cell, vals in rel.items():
                kinds = {FACT[o] for o in vals if o in FACT} | ({("sum", "H")} if {"a", "h"} <= set(vals) else set())
                for measure, only in sorted(kinds):
                    out.append(Fact(i, cell, measure, only, self._only(self.cells[i].get(cell, ()), only, self.rows),
                                    self._only(self.regions[i].get(cell, ()), only, self.points)))
        return out

    def findings(self, released: list[dict], S: frozenset) -> list[Finding]:
        """Everything an observer holding the organisations S derives from the releases."""
        facts, found = self.facts(released), []
        outside = lambda ids, table: frozenset(i for i in ids if ORG[table[i]["dataset"]] not in S)
        for f in facts:  # (a) own subtraction, 2.3 (rows), 2.4 (values), 2.6 (persons)
            rows, region = outside(f.rows, self.rows), outside(f.region, self.points)
            what = f"(a) q{f.q} {f.cell} {f.measure}/{f.only}" + (f" minus the rows of {sorted(S)}" if S else "")
            if f.measure == "mean" and S:
                continue  # a mean does not subtract; with COUNT(x) it is a sum
            if f.measure != "persons":
                found += self._judge(rows, region, f.only == "all" and f.measure == "rows", what,
                                     persons_rule=f.only == "all" or self.persons_parts)
                continue
            mine, theirs = self.persons(f.rows - rows), self.persons(rows)
            found += self._judge(theirs - mine, region, True, what + " (persons not held)", persons=True)
            n_known = any(g.q == f.q and g.cell == f.cell and g.measure == "rows" and g.only == "all" for g in facts)
            unique = all(d in UNIQUE_PERSON for d in self.queries[f.q].datasets if ORG[d] not in S)
            if S and mine and n_known and unique:  # it knows the complement's persons: its rows
                for part, ids in (("shared", mine & theirs), ("unshared", mine - theirs)):  # 2.6
                    found += self._judge(ids, region, True, f"{what}: own persons {part}", persons=True)
        by_cell: dict = {}
        for f in facts:  # (b) two counts of one released cell, 2.4 and 2.5, also on the complement
            by_cell.setdefault((f.q, f.cell), {})[(f.measure, f.only)] = f
        for (q, cell), fs in by_cell.items():
            counts = [f for (m, _), f in sorted(fs.items()) if m == "rows"]
            for a, b in itertools.permutations(counts, 2):
                if b.rows < a.rows:  # by definition (x only where a row is), or in the data (2.5)
                    what = f"(b) q{q} {cell} {a.only}-{b.only}"
                    found += self._judge(a.rows - b.rows, None, False, what, persons_rule=self.persons_parts)
                    if S:
                        found += self._judge(outside(a.rows - b.rows, self.rows), None, False,
                                             f"{what} minus the rows of {sorted(S)}", persons_rule=self.persons_parts)
            if ("rows", "all") in fs and ("persons", "all") in fs:  # rows minus distinct persons, 2.5
                rows = fs[("rows", "all")].rows
                repeats = len(rows) - len(self.persons(rows))
                many = {p for p in self.persons(rows) if sum(self.rows[r]["person_id"] == p for r in rows) > 1}
                if 0 < repeats < self.k or (repeats >= self.k and 0 < len(many) < self.k and self.persons_parts):
                    found.append(Finding("small" if repeats < self.k else "persons", "(b)",
                                         f"(b) q{q} {cell}: {repeats} repeat records of {len(many)} persons"))
        if self.parts:  # (d) unions of the atoms of the counted parts of one cell, 2.15
            for i, rel in enumerate(released):
                for cell, vals in rel.items():
                    found += self._parts(i, cell, vals, S, outside)
        for i, j in itertools.permutations(range(len(released)), 2):  # (c) across releases, 3.2
            crossing = self._crossing(i, j)
            for kind in sorted({(f.measure, f.only) for f in facts if f.measure in ("rows", "sum")
                                and (self.across_values or (f.measure, f.only) == ("rows", "all"))}):
                found += self._across([f for f in facts if f.q == i and (f.measure, f.only) == kind],
                                      [f for f in facts if f.q == j and (f.measure, f.only) == kind], kind, S, outside,
                                      crossing)
        return sorted(set(found), key=lambda f: (f.kind, f.text))

    def _parts(self, i: int, cell: tuple, vals: dict, S: frozenset, outside) -> list[Finding]:
        """(d): the released counts of one cell as indicators over the atoms (the combinations of their
        conditions the cell's domain points allow); with a sum of hours (SUM, or AVG beside COUNT)
        the atoms are refined by the (clamped) hours, every value 0..120 tried on each domain point,
        and the sum is one more equation. Every subset of atoms in their span is derived (brute
        force, up to 2**16 subsets). Each count itself, and its rest in the cell, are judged by (a)
        and (b) (two-sided where a rule is: the rows with a value, 2.4) and left out here, except a
        subgroup and its rest, which 2.13 tests strictly; every other union is strict (2.15)."""
        q, hours = self.queries[i], "hours_worked_week"
        preds = [(o, (lambda r, c=ONLY["H" if o == "h" else "D"]: r.get(c) is not None))
                 for o in ("h", "dn") if o in vals]
        preds += [(f"p{j}", (lambda r, a=a: _atom(a, r) is True)) for j, (_, a) in enumerate(q.parts) if f"p{j}" in vals]
        summed = "s" in vals or {"a", "h"} <= set(vals)
        if not any(o.startswith("p") for o, _ in preds) or len(preds) + ("n" in vals) + summed < 2:
            return []
        lo, hi = CLAMP[hours]
        value = (lambda r: None if r.get(hours) is None else min(max(r[hours], lo), hi)) if summed else (lambda r: None)
        atom_of = lambda r: (tuple(f(r) for _, f in preds), value(r))
        rows, region = self.cells[i].get(cell, frozenset()), self.regions[i].get(cell, frozenset())
        found = []
        for held in ([frozenset()] + ([S] if S else [])):
            ids = outside(rows, self.rows) if held else rows
            pts = [self.points[x] for x in (outside(region, self.points) if held else region)]
            if summed:  # every hours value on every point that differs from others in its other columns only
                bases = {tuple(sorted((k, v) for k, v in pt.items() if k != hours)) for pt in pts}
                pts = [pt for b in bases for pt in (dict(b, **{hours: h}) for h in [None, *range(0, 121)])
                       if passes(q, pt) and cell_of(q, pt) == cell]
            atoms = sorted({atom_of(pt) for pt in pts}, key=repr)
            if len(atoms) < 2 or len(atoms) > 16:
                continue
            eqs = ([[1] * len(atoms)] if "n" in vals else []) + [[int(a[0][k]) for a in atoms] for k in range(len(preds))]
            eqs += [[a[1] or 0 for a in atoms]] if summed else []
            m = np.array(eqs, dtype=float)
            proj = np.linalg.pinv(m) @ m  # onto the row space: u is derived iff u proj = u
            subsets = np.array(list(itertools.product((0, 1), repeat=len(atoms))), dtype=float)[1:]
            derived = subsets[np.abs(subsets @ proj - subsets).max(axis=1) < 1e-6]
            sides = {tuple(int(a[0][k] == side) for a in atoms): preds[k][0]
                     for k in range(len(preds)) for side in (True, False)}
            for u in derived.astype(int):
                name = sides.get(tuple(u))
                if u.all() or (name is not None and not name.startswith("p")):
                    continue  # the cell, or a count of a column and its rest: (a), (b)
                chosen = {atoms[x] for x in np.flatnonzero(u)}
                what = (f"(d) q{i} {cell} atoms {sorted(chosen, key=repr)} of {[o for o, _ in preds]}"
                        + (" and the sum of hours" if summed else "") + (f" minus the rows of {sorted(S)}" if held else ""))
                found += self._judge(frozenset(r for r in ids if atom_of(self.rows[r]) in chosen),
                                     frozenset({"possible by definition"}), True, what)
        return found

    def _crossing(self, i: int, j: int) -> set:
        """The outer cells of each connected group of cells of queries i and j that can share rows
        (3.2), over every cell the definitions allow rows in, released or not."""
        ri, rj = self.regions[i], list(self.regions[j].values())
        cells = list(ri)
        comps = _components(len(cells), [{a for a, c in enumerate(cells) if ri[c] & r} for r in rj])
        return {frozenset(cells[a] for a in comp) for comp in comps}

    def _across(self, outer: list[Fact], inner: list[Fact], kind, S, outside, crossing: set) -> list[Finding]:
        """Groups X of released cells of one query, minus every released cell of the other that lies
        inside X by definition (3.2: a cell in a cell, margins, sums over groups of cells). Without
        `subgroups`, X is one cell or all outer cells of a connected group (`crossing`)."""
        found, strict = [], kind == ("rows", "all")
        # the outer cells each inner cell meets (cells of one query are disjoint), and whether it lies in them
        need = [{a for a, f in enumerate(outer) if f.region & b.region} for b in inner]
        inside_ok = [bool(n) and b.region <= frozenset().union(*(outer[a].region for a in n))
                     for b, n in zip(inner, need)]
        seen = set()
        for comp in _components(len(outer), [n for n, ok in zip(need, inside_ok) if ok]):
            groups = (itertools.chain.from_iterable(itertools.combinations(comp, r) for r in range(1, len(comp) + 1))
                      if len(comp) <= 8 else [(a,) for a in comp] + [tuple(comp)])
            for xs in groups:
                ys = [b for b, (n, ok) in enumerate(zip(need, inside_ok)) if ok and n <= set(xs)]
                if not ys or (frozenset(xs), frozenset(ys)) in seen:
                    continue
                if len(xs) > 1 and not self.subgroups and frozenset(outer[a].cell for a in xs) not in crossing:
                    continue
                seen.add((frozenset(xs), frozenset(ys)))
                x_rows = frozenset().union(*(outer[a].rows for a in xs))
                y_rows = frozenset().union(*(inner[b].rows for b in ys))
                assert y_rows <= x_rows, "containment by definition must hold in the data: the universe is wrong"
                region = frozenset().union(*(outer[a].region for a in xs)) - frozenset().union(
                    *(inner[b].region for b in ys))
                what = (f"(c) {kind[0]}/{kind[1]} q{outer[0].q} {[outer[a].cell for a in xs]} minus "
                        f"q{inner[0].q} {[inner[b].cell for b in ys]}")
                found += self._judge(x_rows - y_rows, region, strict, what, persons_rule=self.persons_across)
                if S and self.across_own:
                    found += self._judge(outside(x_rows - y_rows, self.rows), outside(region, self.points), strict,
                                         what + f" minus the rows of {sorted(S)}", persons_rule=self.persons_across)
        return found

    def _judge(self, ids, region, strict: bool, what: str, *, persons=False, persons_rule=True) -> list[Finding]:
        """1.2: a derived group of 1..k-1 rows (or persons), or an empty one the definitions do not force."""
        n = len(ids)
        if 0 < n < self.k:
            return [Finding("small", what.split()[0], f"{what}: {n} {'persons' if persons else 'rows'}")]
        p = n if persons else len(self.persons(ids))
        if n >= self.k and 0 < p < self.k and persons_rule:
            return [Finding("persons", what.split()[0], f"{what}: {n} rows of {p} persons")]
        if n == 0 and strict and self.zero and region:
            return [Finding("zero", what.split()[0], f"{what}: exactly 0, not forced by the definitions")]
        return []


def _components(n: int, needs: list[set]) -> list[list[int]]:
    """Connected groups of outer cells, linked by inner cells that lie across several of them."""
    parent = list(range(n))

    def root(a):
        while parent[a] != a:
            a = parent[a]
        return a
    for need in filter(None, needs):
        first, *rest = sorted(need)
        for a in rest:
            parent[root(a)] = root(first)
    comps: dict = {}
    for a in sorted({a for need in needs for a in need}):
        comps.setdefault(root(a), []).append(a)
    return list(comps.values())


# -- any number of releases: the common refinement, by linear algebra ---------------------------
# Issue of session 8: (a)-(d) above compare releases two at a time. Here every released count of
# every release is one linear equation over the *atoms*: the classes of domain points (and so of
# rows) that no released definition tells apart (dataset, the cell of each query, each counted
# part, whether hours and debt have a value). An observer holding S also knows its own rows per atom.
# A union of atoms is derived iff its indicator lies in the span of those equations (brute force
# over the subsets of each connected group of atoms); one of 1..k-1 rows it does not hold is a leak.
# The same over the sums of hours (atoms with a value), where a derived sum over 1..k-1 rows is one.
@dataclass(frozen=True)
class Derived:
    """A union of atoms whose size (`system` 'rows') or sum of hours ('sum') an observer derives
    exactly, with its true rows not held by the observer (`size`; rows with hours, for a sum);
    `uses`: the fewest releases whose numbers derive it; `nested`: two of them have cells one
    inside the other by definition (3.1) among the cells this group of atoms meets; `crossing`:
    two of them have cells that share atoms without either lying inside the other."""
    system: str
    observer: frozenset
    atoms: tuple
    size: int
    uses: tuple
    nested: bool
    crossing: bool

    def text(self) -> str:
        return (f"{self.system} of {self.size} rows not held by {sorted(self.observer) or 'nobody'} from releases "
                f"{list(self.uses)} (cells of two of them: {'nested' if self.nested else 'none nested'}, "
                f"{'crossing' if self.crossing else 'none crossing'}): {list(self.atoms)}")


NULL_BITS = ("hours_worked_week", "debt_eur")


def equations(queries: list[Query], released: list[dict], atoms: list, bits: tuple) -> dict:
    """{'rows' | 'sum': [(release, cell, output, indicator over atoms)]}: every released number that
    is linear in the atoms' rows (COUNT(*), COUNT(x), subgroup counts) or their hours (SUM, AVG x COUNT)."""
    hours = 1 + len(queries) + bits.index("hours_worked_week")
    debt = 1 + len(queries) + bits.index("debt_eur") if "debt_eur" in bits else None
    out = {"rows": [], "sum": []}
    for i, rel in enumerate(released):
        for cell, vals in rel.items():
            inside = [a[1 + i][0] == cell for a in atoms]
            tests = {"n": lambda a: True, "h": lambda a: a[hours], "dn": lambda a: a[debt]}
            tests |= {f"p{j}": (lambda a, j=j: a[1 + i][1][j]) for j in range(len(queries[i].parts))}
            for o in vals:
                if o in tests and (o != "dn" or debt is not None):
                    out["rows"].append((i, cell, o, np.array([x and tests[o](a) for x, a in zip(inside, atoms)], float)))
            if "s" in vals or {"a", "h"} <= set(vals):
                out["sum"].append((i, cell, "s", np.array([x and a[hours] for x, a in zip(inside, atoms)], float)))
    return out


def _in_span(m: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Which rows of u lie in the row space of m."""
    if not len(m):
        return np.zeros(len(u), bool)
    proj = np.linalg.pinv(m) @ m
    return np.abs(u @ proj - u).max(axis=1) < 1e-6


def _signatures(queries: list[Query], items: list[dict], groups: list[dict], bits: tuple) -> list[tuple]:
    """The atom of each domain point or row: (dataset, (cell, parts) per query, value bits), its
    cells read from `groups` ({cell: item indices} per query)."""
    where = [{x: c for c, xs in g.items() for x in xs} for g in groups]
    out = []
    for x, r in enumerate(items):
        sig = [r["dataset"]]
        for q, w in zip(queries, where):
            cell = w.get(x)
            sig.append((cell, tuple(_atom(a, r) is True for _, a in q.parts) if cell is not None else ()))
        out.append(tuple(sig) + tuple(r.get(c) is not None for c in bits))
    return out


def _system(model: Model, released: list[dict]) -> tuple:
    """The atoms, each row's atom, each query's cells as sets of atom indices, and the equations."""
    queries = model.queries
    bits = tuple(c for c in NULL_BITS if c in model.points[0])
    atoms = sorted(set(_signatures(queries, model.points, model.regions, bits)), key=repr)
    index = {a: x for x, a in enumerate(atoms)}
    ids = list(model.rows)
    pos = {r: x for x, r in enumerate(ids)}
    row_atoms = _signatures(queries, [model.rows[i] for i in ids],
                            [{c: {pos[r] for r in rs} for c, rs in g.items()} for g in model.cells], bits)
    assert set(row_atoms) <= set(index), "a row outside the universe's atoms"
    rows = [(model.rows[i], index[a]) for i, a in zip(ids, row_atoms)]
    regions = [{} for _ in queries]
    for x, a in enumerate(atoms):
        for i in range(len(queries)):
            if a[1 + i][0] is not None:
                regions[i].setdefault(a[1 + i][0], set()).add(x)
    return atoms, rows, regions, equations(queries, released, atoms, bits)


def linear_derivations(model: Model, released: list[dict], observers, most: int = 16) -> tuple[dict, int]:
    """{S: every union of atoms an observer holding S derives with 1..k-1 rows it does not hold},
    trying every union of the classes of atoms no equation tells apart, per connected group of at
    most `most` classes; and how many groups were too large to try."""
    atoms, rows, regions, system_eqs = _system(model, released)
    out, skipped = {}, 0
    for S in observers:
        count = np.zeros(len(atoms), int)
        for r, x in rows:
            count[x] += ORG[r["dataset"]] not in S
        unknown = np.array([ORG[a[0]] not in S for a in atoms])
        found = out.setdefault(S, [])
        for system, eqs in system_eqs.items():
            eqs = [(i, v * unknown) for i, _, _, v in eqs]
            eqs = [(i, v) for i, v in eqs if v.any()]
            for comp in _components(len(atoms), [set(np.flatnonzero(v)) for _, v in eqs]):
                ds, sk = _derive(comp, eqs, count, model.k, len(released), regions, most)
                skipped += sk
                found += [Derived(system, S, tuple(atoms[y] for y in chosen), size, uses, *how)
                          for chosen, size, uses, how in ds]
    return out, skipped


def withheld_back(model: Model, released: list[dict]) -> list[tuple]:
    """[(query, cell, output)]: counts of at least k rows that a release withheld (a cell, or a
    value in a released cell: a subgroup, COUNT(x)) whose value the released numbers of all releases
    determine: a withheld count that comes back (6.1, third paragraph)."""
    atoms, rows, _, system_eqs = _system(model, released)
    m = np.array([v for *_, v in system_eqs["rows"]]) if system_eqs["rows"] else np.zeros((0, len(atoms)))
    count = np.zeros(len(atoms), int)
    for _, x in rows:
        count[x] += 1
    every = [{cell: dict.fromkeys(q.names) for cell in model.cells[i]} for i, q in enumerate(model.queries)]
    bits = tuple(c for c in NULL_BITS if c in model.points[0])
    out = []
    for i, cell, o, v in equations(model.queries, every, atoms, bits)["rows"]:
        if o not in released[i].get(cell, {}) and v @ count >= model.k and _in_span(m, v[None])[0]:
            out.append((i, cell, o))
    return out


def _derive(comp: list, eqs: list, count, k: int, n_released: int, regions: list, most: int = 16):
    """The derived unions of 1..k-1 rows in one connected group of atoms (`linear_derivations`)."""
    rel = [i for i, v in eqs if v[comp].any()]
    cols = np.array([v[comp] for _, v in eqs if v[comp].any()])
    classes: dict = {}  # atoms no equation tells apart are in a derived union together or not at all
    for x, col in enumerate(cols.T):
        classes.setdefault(col.tobytes(), []).append(comp[x])
    classes = list(classes.values())
    if len(classes) > most:
        return [], 1
    m = np.array([[v[c[0]] for c in classes] for i, v in eqs if v[comp].any()])
    subsets = np.array(list(itertools.product((0, 1), repeat=len(classes))), float)[1:]
    derived = subsets[_in_span(m, subsets)].astype(bool)
    sizes = derived.astype(int) @ np.array([count[c].sum() for c in classes])
    met, found = set(comp), []
    for u, size in zip(derived, sizes):
        if not 0 < size < k:
            continue
        uses = next(r for n in range(1, n_released + 1) for r in itertools.combinations(range(n_released), n)
                    if _in_span(m[[x for x, i in enumerate(rel) if i in r]], u[None].astype(float))[0])
        pairs = [(a, b) for i, j in itertools.combinations(uses, 2)
                 for a in regions[i].values() for b in regions[j].values() if a & b & met]
        how = (any(a <= b or b <= a for a, b in pairs), any(not (a <= b or b <= a) for a, b in pairs))
        found.append((tuple(y for x in np.flatnonzero(u) for y in classes[x]), int(size), uses, how))
    return found, 0
