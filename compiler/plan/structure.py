"""Structural relation between the cells of two queries, decided exactly over the public domain.

A receiver can subtract two released counts only when it KNOWS, from the definitions (catalog
domains, WHERE, GROUP BY) rather than the data, that one set of rows contains the other. `relate`
decides, for every pair (new cell n, old cell e), whether some row the catalog allows could lie in
both, in one only, and so on: it evaluates both queries, with the owners' own functions
(`local_eval.predicate_mask`, `partials.cell_index`), on a synthetic table of domain points.

Why the synthetic table is exact. Each column value v has a representative r(v) that no WHERE or
key of either query can tell apart from v. Enumerated columns (booleans, categories used other
than in = / <> / IN with literals, numbers in arithmetic between columns or in round()) are
their own representatives; a category otherwise has the labels a literal names plus one label
standing for all the others. A numeric or date column is otherwise read only through leaf uses:
a comparison / IN / BETWEEN with literals, bucket/age_band, or year/month/quarter of a transform
g of that column alone (abs, least, greatest, coalesce, neg, +-*/ a literal), and each such leaf
changes value between v and v+step (step 1, or 10**-scale) only when v or v+step is a breakpoint
b (the preimage of a literal or band edge through g). With the domain bounds and every b-1, b,
b+1 as representatives and r(v) the largest one <= v, every leaf, hence every WHERE and key, is
the same on v and r(v); NULL is its own representative. So the (dataset, new cell, old cell)
combinations realised over the whole domain are those realised over the representatives (rows of
the domain themselves), and every field of `Relation` is a function of that set. Within a
dataset the combinations are joined over the columns both queries read, so columns only one
query reads add to the work instead of multiplying it.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from insightql.stdlib.functions import DEFAULT_AGE_EDGES, Vec
from insightql.stdlib.types import date_to_days, days_to_date

from insightql.compiler.check.checker import column_type
from insightql.compiler.plaintext.local_eval import evaluate, predicate_mask
from insightql.compiler.plaintext.partials import cell_index

FULL_LIMIT = 5000
"""A numeric column used in an opaque way is enumerated only up to this many values."""


class _Undecidable(Exception):
    pass


@dataclass(frozen=True, eq=False)
class Relation:
    """Structural relation of new cells (cN) and old cells (cE); see the module docstring."""

    possible: np.ndarray  # (cN, cE): some domain point lies in new cell n and old cell e
    new_nonempty: np.ndarray  # (cN,)
    old_nonempty: np.ndarray  # (cE,)
    new_inside_old: np.ndarray  # (cN, cE): n nonempty and every point of n lies in e
    old_inside_new: np.ndarray  # (cE, cN)
    new_outside: np.ndarray  # (cN,): some point of n lies in no old cell
    old_outside: np.ndarray  # (cE,)
    covered_old: np.ndarray  # (cE,): e is a union of new cells inside it (true for an empty e)
    covered_new: np.ndarray  # (cN,)
    components: list  # [(new cells, old cells)]: connected parts of `possible`, empty cells left out,
    # ordered by smallest new cell (components of old cells only last, by smallest old cell)
    points: int  # domain points evaluated

    @property
    def same(self) -> np.ndarray:
        """(cN, cE): n and e can hold exactly the same rows (and some)."""
        return self.new_inside_old & self.old_inside_new.T

    def component_closed(self, i: int) -> tuple[bool, bool]:
        """(every point of the component's new cells lies in its old cells, and the mirror):
        when both hold, the two sums over the component count the same rows."""
        ns, es = self.components[i]
        return (not self.new_outside[list(ns)].any() if ns else True,
                not self.old_outside[list(es)].any() if es else True)


# -- which values of each column must be represented ---------------------------------------------
PC, _IDENT = ("pc",), (lambda L: {L})


def _frac(x) -> Fraction:
    if isinstance(x, float) and not math.isfinite(x):
        raise _Undecidable("a literal that is not finite")
    return Fraction(repr(x)) if isinstance(x, float) else Fraction(int(x))


def _boundaries(part: str, lo: int, hi: int) -> list[int]:
    """First days of every year/month/quarter from about a year before lo to a year after hi."""
    first, last = days_to_date(lo - 400), days_to_date(hi + 400)
    step = {"year": 12, "quarter": 3, "month": 1}[part]
    y, m, out = first.year, 1, []
    while dt.date(y, m, 1) <= last:
        out.append(date_to_days(dt.date(y, m, 1)))
        y, m = (y + 1, 1) if m + step > 12 else (y, m + step)
    return out


class _Uses:
    """Walks IR: records per column the breakpoints (numbers), mentioned labels (categories) or
    that the column must be enumerated whole. A node is ("const", v), PC (a function of leaf uses
    and enumerated columns), ("t", col, pre) a numeric transform g of one column such that every
    `g op L` changes only next to a point of pre(L), or ("cat", col, view domain)."""

    def __init__(self):
        self.breaks: dict[str, set] = {}
        self.labels: dict[str, set] = {}
        self.full: set[str] = set()
        self.view: dict[str, dict] = {}  # the current query's type of each column it reads

    def root(self, ir) -> None:
        self.opaque([self.node(ir)] if ir is not None else [])

    def opaque(self, kids: list) -> tuple:
        for k in kids:
            if k[0] in ("t", "cat"):
                self.full.add(k[1])
        return PC

    def cut(self, t: tuple, lits) -> tuple:
        for L in lits:
            if L is not None and not isinstance(L, (bool, str)):
                self.breaks.setdefault(t[1], set()).update(t[2](_frac(L)))
        return PC

    def node(self, ir: dict) -> tuple:
        if not isinstance(ir, dict) or not {"lit", "col", "fn", "op"} & set(ir):
            raise _Undecidable("not a row expression")  # e.g. a JOIN release's signature
        if "lit" in ir:
            return ("const", ir["lit"])
        if "col" in ir:
            self.view[ir["col"]] = ir["type"]
            kind = ir["type"]["kind"]
            if kind == "category":
                return ("cat", ir["col"], tuple(ir["type"]["domain"]))
            if kind == "bool":
                return PC  # both values are always represented
            return ("t", ir["col"], _IDENT)
        if ir.get("op") == "case":
            parts = [x for cv in ir["whens"] for x in cv] + [ir["else"]]
            kids = [self.node(x) if x is not None else ("const", None) for x in parts]
        else:
            kids = [self.node(a) if a is not None else ("const", None) for a in ir["args"]]
        if all(k[0] == "const" for k in kids):  # constant folding: negative literals, date arithmetic
            v = evaluate(ir, {}, 1)
            x = v.values[0]
            return ("const", None if v.null[0] else x.item() if hasattr(x, "item") else x)
        return self.fn(ir, kids) if "fn" in ir else self.op(ir["op"], kids)

    def op(self, op: str, kids: list) -> tuple:
        ts = [k for k in kids if k[0] == "t"]
        consts = [k[1] for k in kids if k[0] == "const"]
        if op == "is_null":
            return PC
        if op in ("=", "<>", "<", "<=", ">", ">=", "in") and len(consts) == len(kids) - 1:
            x = kids[0] if op == "in" else next(k for k in kids if k[0] != "const")
            if x[0] == "t":
                return self.cut(x, consts)
            if x[0] == "cat" and op in ("=", "<>", "in"):
                self.labels.setdefault(x[1], set()).update(
                    x[2][c] for c in consts if isinstance(c, int) and not isinstance(c, bool) and 0 <= c < len(x[2]))
                return PC
        if len(ts) == 1 and len(consts) == len(kids) - 1 and op in ("neg", "+", "-", "*", "/"):
            (_, col, pre), c = ts[0], (consts[0] if consts else 0)
            if c is None:
                return PC  # null arithmetic: always null
            c, first = _frac(c), kids[0][0] == "t"
            if op == "neg":
                return ("t", col, lambda L: pre(-L))
            if op == "+":
                return ("t", col, lambda L: pre(L - c))
            if op == "-":
                return ("t", col, (lambda L: pre(L + c)) if first else (lambda L: pre(c - L)))
            if op == "*" or (op == "/" and first):
                if c == 0:
                    return PC  # x * 0 is 0 (or null); x / 0 is null
                return ("t", col, (lambda L: pre(L / c)) if op == "*" else (lambda L: pre(L * c)))
        return self.opaque(kids)

    def fn(self, ir: dict, kids: list) -> tuple:
        name, ts = ir["fn"], [i for i, k in enumerate(kids) if k[0] == "t"]
        rest = [k[1] for k in kids if k[0] == "const"]
        if len(ts) != 1 or len(rest) != len(kids) - 1 or (ts[0] > 0 and name not in ("least", "greatest")):
            return self.opaque(kids)  # only least/greatest are symmetric; coalesce(5, x) is opaque
        x = kids[ts[0]]
        pre = x[2]
        if name in ("bucket", "age_band"):
            edges = ir["consts"][1] if len(kids) > 1 else DEFAULT_AGE_EDGES
            return self.cut(x, edges)
        if name in ("year", "month", "quarter"):
            t = ir["arg_types"][0]
            return self.cut(x, _boundaries(name, int(t["lo"]), int(t["hi"])))
        if name == "abs":  # |g| op L is g op L and g op -L combined (L = 0: g op 0)
            return ("t", x[1], lambda L: pre(L) | pre(-L))
        if name in ("least", "greatest", "coalesce"):
            # least(g, c) op L is g op L (L < c), constant (L > c), or g op L where g < L (L = c); greatest
            # mirrors it; coalesce(g, c) is g except on NULL, which is always represented
            return x
        return self.opaque(kids)


# -- representatives and the synthetic table ----------------------------------------------------
def _reps(col, name: str, uses: _Uses) -> tuple[list, str, int]:
    """Representative values of one dataset's column: (values, kind, decimal scale)."""
    t = column_type(col)
    nulls = [None] if t.nullable else []
    if t.kind == "category":
        vals = list(t.domain)
        if name not in uses.full:
            named = uses.labels.get(name, set())
            vals = [v for v in vals if v in named] + [v for v in vals if v not in named][:1]
        return vals + nulls, "category", 0
    if t.kind == "bool":
        return [False, True] + nulls, "bool", 0
    scale = t.scale if t.kind == "decimal" else 0
    f = 10 ** scale
    lo, hi = max(math.ceil(_frac(t.lo) * f), -2 ** 63), min(math.floor(_frac(t.hi) * f), 2 ** 63 - 1)
    if name in uses.full:
        if hi - lo + 1 > FULL_LIMIT:
            raise _Undecidable(f"column {name} used opaquely over {hi - lo + 1} values")
        return list(range(lo, hi + 1)) + nulls, t.kind, scale
    near = {lo, hi}
    for b in uses.breaks.get(name, ()):
        for k in {math.floor(b * f), math.ceil(b * f)}:
            near.update((k - 1, k, k + 1))
    return sorted(k for k in near if lo <= k <= hi) + nulls, t.kind, scale


def _encode(vals: list, kind: str, scale: int, view: dict | None) -> Vec:
    """Representatives as the data loader would hold them under a query's view of the column."""
    null = np.array([v is None for v in vals], dtype=bool)
    if kind == "category":
        domain = list(view["domain"])
        if any(v is not None and v not in domain for v in vals):
            raise _Undecidable("a label outside the query's view of the category")
        return Vec(np.array([domain.index(v) if v is not None else 0 for v in vals], dtype=np.int64), null)
    if kind == "bool":
        return Vec(np.array([bool(v) for v in vals], dtype=bool), null)
    if kind == "decimal":
        return Vec(np.array([(v or 0) / 10 ** scale for v in vals], dtype=float), null)
    return Vec(np.array([v or 0 for v in vals], dtype=np.int64), null)


def _ncells(q: dict) -> int:
    return math.prod(int(k["size"]) for k in q["keys"]) if q["keys"] else 1


def _side(q: dict, view: dict, cols: list, reps: dict, shared: int) -> np.ndarray:
    """Codes s * (cells + 1) + cell + 1 realised by query q over the product of its columns'
    representatives (`cols`, the first `shared` of them read by both queries; s numbers their
    combination); cell -1: the point is not a row of q."""
    shape = [len(reps[c][0]) for c in cols]
    size = math.prod(shape)
    idx = np.unravel_index(np.arange(size), shape) if cols else ()
    table = {}
    for c, at in zip(cols, idx):
        v = _encode(*reps[c], view.get(c))
        table[c] = Vec(v.values[at], v.null[at])
    mask, cell = predicate_mask(q["where"], table, size), cell_index(q["keys"], table, size)
    if (mask & ((cell < 0) | (cell >= _ncells(q)))).any():
        raise _Undecidable("a domain point falls outside the public cell domain")
    s = np.arange(size) // math.prod(shape[shared:])
    return np.unique(s * (_ncells(q) + 1) + np.where(mask, cell, -1) + 1)


def _pairs(catalog, queries: list[dict], cap: int) -> tuple[np.ndarray, int]:
    """Codes (n + 1) * (cE + 1) + e + 1 of the (new cell, old cell) pairs realised by some domain
    point (-1: in no cell of that query), and the number of points evaluated. Within a dataset the
    points are S x A x B (columns both queries read, only new, only old): each query is evaluated
    on its own part, and the pairs are joined on S."""
    uses, views = _Uses(), [{}, {}]
    for q, view in zip(queries, views):
        uses.view = view
        for ir in [q["where"], *(k["expr"] for k in q["keys"])]:
            uses.root(ir)
    reads = [set(v) for v in views]
    cells = [_ncells(q) + 1 for q in queries]
    plans, total = [], 0
    for d in sorted({d for q in queries for d in q["datasets"]}):
        readers = [i for i, q in enumerate(queries) if d in q["datasets"]]
        shared = sorted(reads[0] & reads[1]) if len(readers) == 2 else []
        cols = {i: shared + sorted(reads[i] - set(shared)) for i in readers}
        ds = catalog.datasets.get(d)
        if ds is None or any(c not in ds.columns for i in readers for c in cols[i]):
            raise _Undecidable(f"dataset {d} lacks a column the queries read")
        reps = {c: _reps(ds.columns[c], c, uses) for i in readers for c in cols[i]}
        total += sum(math.prod(len(reps[c][0]) for c in cols[i]) for i in readers)
        if total > cap:
            raise _Undecidable(f"more than {cap} domain points")
        plans.append((readers, cols, reps, len(shared)))
    out = []
    for readers, cols, reps, k in plans:
        sides = {i: _side(queries[i], views[i], cols[i], reps, k) for i in readers}
        if len(readers) == 1:
            i = readers[0]
            c = sides[i] % cells[i]
            out.append(c * cells[1] if i == 0 else c)
            continue
        s0, n = np.divmod(sides[0], cells[0])
        s1, e = np.divmod(sides[1], cells[1])  # sorted by s, as np.unique sorts the codes
        lo, hi = np.searchsorted(s1, s0, "left"), np.searchsorted(s1, s0, "right")
        count = hi - lo
        if count.sum() > cap + cells[0] * cells[1]:
            raise _Undecidable("too many (new, old) combinations to join")
        at = np.repeat(lo - np.cumsum(count) + count, count) + np.arange(count.sum())
        out.append(np.repeat(n, count) * cells[1] + e[at])
    return np.unique(np.concatenate(out)), total


def _components(cN: int, cE: int, u: np.ndarray, v: np.ndarray, alive: np.ndarray) -> list:
    """Connected components of the bipartite graph (new n = node n, old e = node cN + e):
    min-label propagation with pointer jumping, all vectorised."""
    lab = np.arange(cN + cE)
    while u.size:
        m = np.minimum(lab[u], lab[v])
        nxt = lab.copy()
        for side in (u, v, lab[u], lab[v]):
            np.minimum.at(nxt, side, m)
        while not np.array_equal(nxt[nxt], nxt):
            nxt = nxt[nxt]
        if np.array_equal(nxt, lab):
            break
        lab = nxt
    nodes = np.flatnonzero(alive)
    order = nodes[np.argsort(lab[nodes], kind="stable")]
    splits = np.flatnonzero(np.diff(lab[order])) + 1
    return [(tuple(int(x) for x in g[g < cN]), tuple(int(x) - cN for x in g[g >= cN]))
            for g in np.split(order, splits) if g.size]


def relate(catalog, new: dict, old: dict, *, cap: int = 2_000_000) -> Relation | None:
    """The structural relation of `new`'s cells to `old`'s cells (each {datasets, where, keys},
    the attrs of a `partials` node or a release's guard signature), or None when it cannot be
    decided exactly within `cap` domain points."""
    queries = [{"datasets": list(q["datasets"]), "where": q.get("where"), "keys": list(q.get("keys") or [])}
               for q in (new, old)]
    try:
        pairs, points = _pairs(catalog, queries, cap)
    except _Undecidable:
        return None
    cN, cE = _ncells(queries[0]), _ncells(queries[1])
    pn, pe = pairs // (cE + 1) - 1, pairs % (cE + 1) - 1
    hn, he = pn >= 0, pe >= 0
    both = hn & he
    deg_n = np.bincount(pn[hn], minlength=cN)  # distinct partners, "no old cell" included
    deg_e = np.bincount(pe[he], minlength=cE)
    new_nonempty, old_nonempty = deg_n > 0, deg_e > 0
    only_n = hn & (deg_n[np.where(hn, pn, 0)] == 1)  # the pair is n's only partner
    only_e = he & (deg_e[np.where(he, pe, 0)] == 1)
    possible = np.zeros((cN, cE), dtype=bool)
    possible[pn[both], pe[both]] = True
    new_inside_old = np.zeros((cN, cE), dtype=bool)
    new_inside_old[pn[both & only_n], pe[both & only_n]] = True
    old_inside_new = np.zeros((cE, cN), dtype=bool)
    old_inside_new[pe[both & only_e], pn[both & only_e]] = True
    new_outside = np.bincount(pn[hn & ~he], minlength=cN) > 0
    old_outside = np.bincount(pe[he & ~hn], minlength=cE) > 0
    covered_old = np.bincount(pe[he & ~(both & only_n)], minlength=cE) == 0
    covered_new = np.bincount(pn[hn & ~(both & only_e)], minlength=cN) == 0
    comps = _components(cN, cE, pn[both], cN + pe[both], np.concatenate([new_nonempty, old_nonempty]))
    return Relation(possible, new_nonempty, old_nonempty, new_inside_old, old_inside_new, new_outside,
                    old_outside, covered_old, covered_new, comps, points)


def value_starts(catalog, q: dict, names: list[str]) -> dict[str, list[int]] | None:
    """Per numeric column of `names`, the first values (scaled by 10**scale) of the intervals that
    partition its domain such that no WHERE or key of `q` tells two values of one interval apart:
    the representatives above, with each dataset's bounds (and bound + 1) so that no interval
    straddles the end of a domain. None when that cannot be decided (an opaque use over more than
    FULL_LIMIT values)."""
    uses = _Uses()
    try:
        for ir in [q["where"], *(k["expr"] for k in q["keys"])]:
            uses.root(ir)
        out = {}
        for name in names:
            starts, top = set(), None
            for d in q["datasets"]:
                vals, _, _ = _reps(catalog.datasets[d].columns[name], name, uses)
                vals = [v for v in vals if v is not None]
                starts.update(vals + [vals[-1] + 1])
                top = vals[-1] if top is None else max(top, vals[-1])
            out[name] = sorted(s for s in starts if s <= top)
        return out
    except _Undecidable:
        return None
