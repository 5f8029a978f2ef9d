"""An earlier release's own guard, recomputed: which of its cells surely passed it (spec/disclosure.md 3.2).

`guard_cells.CellChecks` reads an earlier cell F as *surely released* where the new query relies on a
zero difference. F's cell and observer rules are not enough: F's own guard may have withheld the cell
against a release W before it (F's North x NG differs from W's by two long stays), and the new query's
North, covered by F's other cells, would give it back. So "surely released" also requires F's guard to
have passed on the cell.

F's ledger signature records the releases its guard compared it with (`guard` in `guard_signature`;
guard.signature_of_plan), and the new query's guard entry for F carries them (`guarded`). For each such
release G, the owners recount G's cells on today's rows, and the guard's tests of F against G
(guard.inside, guard.contains, guard.margin on the rows, on all rows and on the complement of every
holding) run again, read so that they pass for whatever F released: F's flag before its guard lies
between the strict reading s (CellChecks.certainly_released) and "possibly released" p (k rows), so a
sum over F's released cells is bounded by the sum over p, "all of F's cells released" is relied on only
where s says so, and "some F cell not released" only where p does. G's cells count as surely released
by G's strict reading and, one level down, only where G's own guard had no test on them (G's
subgroups and rests by theirs). A cell that passes every recomputed test passed F's guard, whatever
F's exact flags were. The same for F's rows against G's subgroups and rests, for F's counts of the rows
where a column or a subgroup has a value (`own_values`: F's apply_values) and for F's sums
(`own_sums`: F's guard.dominance, through guard_sums.SumChecks on F as the new query).

Where the recomputation cannot run (G in the fallback `guard.rows`, G over datasets F did not read, a
relation that cannot be decided), every F cell that can share rows with a G cell counts as not surely
released: always sound, since a cell with no test passes the guard.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from insightql.compiler.check.observer import observer_holdings
from insightql.compiler.diagnostics import PlanError
from insightql.compiler.plan.guard_closure import components_of
from insightql.compiler.plan.guard_groups import column_types, family_where, groups_of
from insightql.compiler.plan.structure import relate


def own_guard(c, strict: str) -> str:
    """The earlier cells of `c` (a CellChecks) that surely passed their release's own guard and the
    strict reading `strict`."""
    flags = [strict]
    for g in c.e.get("guarded", []):
        flags.append(_passed(c, g, strict))
    return strict if len(flags) == 1 else _closed(c, c.node("and", flags, c.cE), c.possible["rows"])


def _closed(c, passed: str, possible: str) -> str:
    """`passed` without the cells whose guard.closure component (over F's cells and the cells of every
    release F's guard related over the public domain: guard_closure.components) holds a cell that may
    have been withheld by F's guard (possibly released, not surely passed): F's closure may have
    withheld them with it."""
    comps = c.__dict__.get("earlier_components")
    if comps is None:
        comps = components_of(c.cE, [r.possible for r in c.__dict__.get("earlier_rels", []) if r is not None])
        c.earlier_components = comps
    if not comps:
        return passed
    m, top = len(comps), max(len(x) for x in comps)
    pairs = [(n, i) for i, cells in enumerate(comps) for n in cells]
    maybe = c.node("and", [possible, c.node("not", [passed], c.cE)], c.cE)
    count = c.linear(maybe, pairs, m, top)
    back = c.linear(count, [(i, n) for n, i in pairs], c.cE, top)
    hit = c.node("ge_const", [back], c.cE, const=1, rule="guard.closure",
                 what="the earlier release's own guard: its closure may have withheld the cell")
    return c.node("and", [passed, c.node("not", [hit], c.cE)], c.cE)


def _cells(d: dict, datasets=None) -> dict:
    return {"datasets": list(d["datasets"] if datasets is None else datasets), "where": d["where"], "keys": d["keys"]}


def _related(c, g: dict):
    """(F's cells related to G's over the public domain or None, the F cells that can share rows with
    a cell of G or None where that is not decided: G in the fallback, or no relation)."""
    rel = relate(c.b.catalog, _cells(c.e), _cells(g)) if g.get("mode") == "cells" else None
    return rel, None if rel is None else rel.possible.any(axis=1)


def _untouched(c, touched: np.ndarray | None) -> str:
    """1 on F's cells no test of this guard touched (none if that is not decided)."""
    if touched is None:
        touched = np.ones(c.cE, dtype=bool)
    return c.keep(c.const(c.cE, 1), np.flatnonzero(~touched), c.cE)


def _passed(c, g: dict, s: str) -> str:
    """1 for F's cells (c's earlier cells) that surely passed F's guard against G (recorded `g`) on
    their rows. Records in `c.earlier_guards` (g, its mask where not recomputed, else what own_values
    and own_sums need: `_Info`)."""
    rel_all, touched = _related(c, g)
    c.__dict__.setdefault("earlier_rels", []).append(rel_all)
    guards = c.__dict__.setdefault("earlier_guards", [])
    info = None
    if touched is not None and touched.any():
        info = _prepare(c, g, rel_all) if set(g["datasets"]) <= set(c.e["datasets"]) else None
    if info is None:
        guards.append((g, _untouched(c, touched), None))
        return guards[-1][1]
    guards.append((g, None, info))
    tests = [(None, c.parts["rows"], fam) for name, fam in info.fams.items()
             if not _same(c, c.e["where"], g, fam.where)]
    return _robust(c, info, tests, s, c.possible["rows"]) or _untouched(c, touched)


def own_values(c, arg: dict, counts: dict, strict: str, possible: str) -> str | None:
    """F's counts of the rows where `arg` has a value (a nullable column's, or a subgroup's: c's
    earlier quantity `counts`, {dataset: node}) that surely passed F's guard against every release it
    recorded: F's apply_values, the count against G's count of the same rows in G's cells, and the
    subgroup and its rest as families of cells against G's cells, subgroups and rests; read between
    `strict` and `possible` as for the rows. None when F recorded no guard."""
    guards = c.__dict__.get("earlier_guards", [])
    if not guards:
        return None
    flags = [strict]
    for g, mask, info in guards:
        if info is None:
            flags.append(mask)
            continue
        rest = {d: c.node("sub", [c.parts["rows"][d], x], c.cE, 0, c.hi) for d, x in counts.items()}
        own = info.count_of(arg)
        tests = [(None, counts, _Family(None, own, _possible(c, info, own), _value_certain(c, info, own)))]  # G's cells
        tests += [(family_where(c.e["where"], arg, r), f_counts, fam) for r, f_counts in ((False, counts), (True, rest))
                  for fam in info.fams.values() if not _same(c, family_where(c.e["where"], arg, r), info.g, fam.where)]
        flags.append(_robust(c, info, tests, strict, possible) or mask_none(c))
    return _closed(c, c.node("and", flags, c.cE), possible)


def mask_none(c) -> str:
    return c.const(c.cE, 0)


class _Family:
    """A family of G's released cells: its WHERE (None: G's cells), counts {dataset: node}, and
    which cells were possibly and surely released."""

    def __init__(self, where, counts: dict, possible: str, certain: str):
        self.where, self.counts, self.possible, self.certain = where, counts, possible, certain


class _Info:
    """What the recomputation of F's guard against G shares: G's recounts and families."""

    def __init__(self, g: dict, rel, counts: dict, zero: str):
        self.g, self.rel, self.cG, self.counts, self.zero = g, rel, rel.old_nonempty.size, counts, zero
        self.fams: dict[str, _Family] = {}

    def count_of(self, arg: dict) -> dict:
        return self.counts[_canon(arg)]


def _canon(ir) -> str:
    return json.dumps(ir, sort_keys=True, separators=(",", ":"))


def _same(c, f_where, g: dict, g_where) -> bool:
    """F's family and G's hold the same rows by definition (nothing to subtract)."""
    return sorted(c.e["datasets"]) == sorted(g["datasets"]) and _canon(c.e["keys"]) == _canon(g["keys"]) \
        and _canon(f_where) == _canon(family_where(g["where"], None) if g_where is None else g_where)


def _possible(c, info: _Info, counts: dict) -> str:
    total = _total(c, counts, list(info.g["datasets"]), info.cG)
    return c.node("ge_const", [total], info.cG, const=int(info.g["k_old"]), rule="guard.inside",
                  what="the earlier release's own guard: its earlier cell possibly released")


def _prepare(c, g: dict, rel) -> _Info | None:
    """G's cells recounted today (rows, persons, each subgroup G counted, each column c counts in
    F's cells), and G's families: its cells (surely released by the strict reading), each subgroup and
    its rest (never read as surely released: only ever withholds more). None if G cannot be recounted."""
    cG = rel.old_nonempty.size
    args = {_canon(a): a for a in [*g.get("subgroups", []), *c.columns.values(), *c.subs.values()]}
    try:
        rows, persons, counts = _recount(c, g, cG, list(args.values()))
    except PlanError:  # G read a column with another type (another UNION ALL): not recounted
        return None
    info = _Info(g, rel, counts, c.const(cG, 0))
    total = _total(c, rows, list(g["datasets"]), cG)
    info.fams["rows"] = _Family(None, rows, _possible(c, info, rows), _strict(c, g, rows, persons, total, cG))
    every, subs = list(g["datasets"]), g.get("subgroups", [])
    for i, a in enumerate(subs):
        sub = info.count_of(a)
        rest = {d: c.node("sub", [rows[d], x], cG, 0, c.hi) for d, x in sub.items()}
        t_sub, t_rest = _total(c, sub, every, cG), _total(c, rest, every, cG)
        # surely released as F read it (CellChecks.subgroup_released): the cell, the subgroup and its
        # rest each k rows on every complement, and 0 or >= k rows from every other subgroup
        flags = [info.fams["rows"].certain, _strict(c, g, sub, None, t_sub, cG), _strict(c, g, rest, None, t_rest, cG)]
        for j, o in enumerate(subs):
            t_o = _total(c, info.count_of(o), every, cG)
            flags += [_apart(c, x, y, cG, int(g["k"])) for x, y in ((t_sub, t_o), (t_o, t_sub))] if j != i else []
        certain = c.node("and", flags, cG)
        for name, where, x in ((f"sub:{i}", family_where(g["where"], a), sub),
                               (f"rest:{i}", family_where(g["where"], a, True), rest)):
            info.fams[name] = _Family(where, x, _possible(c, info, x), certain)
    return info


def _apart(c, x: str, y: str, size: int, k: int) -> str:
    """1 where x - y is 0 or at least k."""
    return c.node("outside_range", [c.node("sub", [x, y], size, -c.hi, c.hi)], size, low=1, high=k - 1,
                  rule="guard.contains", what="the earlier release's own guard: earlier subgroups differ")


def _value_certain(c, info: _Info, counts: dict) -> str:
    """G's count of the rows where a column has a value, surely released as F read it (CellChecks):
    its cell surely released, k rows with a value, and 0 or >= k rows without."""
    every, cG, k, rows = list(info.g["datasets"]), info.cG, int(info.g["k"]), info.fams["rows"]
    t = _total(c, counts, every, cG)
    without = c.node("sub", [_total(c, rows.counts, every, cG), t], cG, 0, c.hi)
    return c.node("and", [rows.certain, c.node("ge_const", [t], cG, const=k, rule="guard.contains",
                                               what="the earlier release's own guard: earlier values released"),
                          c.node("outside_range", [without], cG, low=1, high=k - 1, rule="guard.contains",
                                 what="the earlier release's own guard: earlier rows without a value")], cG)


def _robust(c, info: _Info, tests: list, s: str, p: str) -> str | None:
    """F's flag (between s and p) where every test of F's guard against G passed whatever F's flags
    were: tests (F family's WHERE or None for F's cells, F's counts, G's family), on all rows and on
    every complement. None where a relation cannot be decided."""
    g, cG = info.g, info.cG
    bad = []
    for f_where, f_counts, fam in tests:
        f_def = {**_cells(c.e), "where": c.e["where"] if f_where is None else f_where}
        g_def = {**_cells(g), "where": g["where"] if fam.where is None else fam.where}
        for held, f_d, g_d in _scopes(c, g):
            rel = info.rel if not held and f_where is None and fam.where is None else \
                relate(c.b.catalog, {**f_def, "datasets": f_d}, {**g_def, "datasets": g_d})
            if rel is None:
                return None
            who = {"who": list(held)} if held else {}
            q_f, q_g = c.total(f_counts, f_d), _total(c, fam.counts, g_d, cG)
            bad += [_group_bad(c, grp, q_f, q_g, s, p, fam.possible, fam.certain, int(g["k"]), cG, who)
                    for grp in groups_of(rel)]
    if not bad:
        return s
    count = bad[0]
    for x in bad[1:]:
        count = c.node("add", [count, x], c.cE, 0, 4 * (c.cE + cG) * len(bad))
    blocked = c.node("ge_const", [count], c.cE, const=1, rule="guard.margin",
                     what="the earlier release's own guard: its cell in a failed group")
    return c.node("and", [s, c.node("not", [blocked], c.cE)], c.cE)  # (CellChecks.allowed_by, over F's cells)


def _group_bad(c, grp, q_f, q_g, s, p, possible_g, certain_g, k, cG, who) -> str:
    """Per F cell, 1 where this group of F's guard against G may have failed (F as the new query)."""
    rule, ns, es, new_in, old_in = grp
    cF, m, hi = c.cE, len(ns), c.hi
    n_pairs = [(n, i) for i, cells in enumerate(ns) for n in cells]
    e_pairs = [(e, i) for i, cells in enumerate(es) for e in cells]

    def none_of(flag, pairs, size):
        return c.none_of(c.linear(c.node("not", [flag], size), pairs, m, size), m)
    all_s, all_p = none_of(s, n_pairs, cF), none_of(p, n_pairs, cF)
    all_possible_g, all_certain_g = none_of(possible_g, e_pairs, cG), none_of(certain_g, e_pairs, cG)
    p_f = c.node("mul", [p, q_f], cF, 0, hi)
    gq = c.node("sub", [c.linear(q_g, e_pairs, m, hi * cG), c.linear(p_f, n_pairs, m, hi * cF)], m, -hi * cF, hi * cG)
    ok_a = c.any_of(m, [c.node("not", [all_possible_g], m), c.test(gq, m, k, rule, **who),
                        c.keep(all_s, np.flatnonzero(old_in), m), c.keep(c.const(m, 1), np.flatnonzero(~new_in), m)])
    pq = c.node("mul", [possible_g, q_g], cG, 0, hi)
    h = c.node("sub", [c.linear(q_f, n_pairs, m, hi * cF), c.linear(pq, e_pairs, m, hi * cG)], m, -hi * cG, hi * cF)
    ok_b = c.any_of(m, [c.node("not", [all_p], m), c.test(h, m, k, rule, **who),
                        c.keep(all_certain_g, np.flatnonzero(new_in), m), c.keep(c.const(m, 1), np.flatnonzero(~old_in), m)])
    group_bad = c.node("not", [c.node("and", [ok_a, ok_b], m)], m)
    return c.linear(group_bad, [(i, n) for n, i in n_pairs], cF, m)


def _total(c, parts: dict, datasets: list[str], size: int) -> str:
    out = parts[datasets[0]]
    for d in datasets[1:]:
        out = c.node("add", [out, parts[d]], size, 0, c.hi)
    return out


def _scopes(c, g: dict) -> list[tuple[tuple, list[str], list[str]]]:
    """(held, F's datasets, G's datasets) F's guard against G tested: all rows, and the complement of
    every holding an observer of F could have (every receiver F's datasets allow: its real receivers can
    only narrow them; every holding, not only the largest: more tests only withhold more)."""
    cat = c.b.catalog
    f_d, g_d = list(c.e["datasets"]), list(g["datasets"])
    owner = {d: cat.datasets[d].owner for d in {*f_d, *g_d}}
    receivers = sorted(set.intersection(*(set(cat.datasets[d].receivers()) for d in f_d)))
    out = [((), f_d, g_d)]
    for held in observer_holdings(sorted(set(owner.values())), receivers, cat.party_names()):
        f_rest, g_rest = [d for d in f_d if owner[d] not in held], [d for d in g_d if owner[d] not in held]
        if f_rest and g_rest:
            out.append((held, f_rest, g_rest))
    return out


def _recount(c, g: dict, cG: int, args: list[dict]) -> tuple[dict, dict, dict]:
    """Each owner's rows, persons and rows where each of `args` has a value, in G's cells, today:
    ({dataset: node}, {dataset: node}, {canonical arg: {dataset: node}})."""
    b = c.b
    extra = column_types([g["where"], *(k["expr"] for k in g["keys"]), *args])
    slots = [{"name": "s0", "kind": "rows"}]
    if b.lp.person_key:
        slots.append({"name": "s1", "kind": "persons", "column": b.lp.person_key})
    named = {}
    for a in args:
        named[_canon(a)] = f"s{len(slots)}"
        slots.append({"name": named[_canon(a)], "kind": "count", "arg": a})
    rows, persons, counts = {}, {}, {a: {} for a in named}
    for d in g["datasets"]:
        owner = b.catalog.datasets[d].owner
        part = b.add("partials", f"local:{owner}", [c.load_of(d, extra)], [len(slots), cG], dataset=d,
                     where=g["where"], keys=g["keys"], slots=slots, cells=cG, earlier=True)
        share = b.add("share", f"input:{owner}", [part], [len(slots), cG], 0, c.hi, party=owner)
        rows[d] = c.node("combine", [share], cG, 0, c.hi, slot="s0", how="sum")
        if b.lp.person_key:
            persons[d] = c.node("combine", [share], cG, 0, c.hi, slot="s1", how="sum")
        for a, name in named.items():
            counts[a][d] = c.node("combine", [share], cG, 0, c.hi, slot=name, how="sum")
    return rows, persons, counts


def _strict(c, g: dict, q_g: dict, persons: dict | None, total_g: str, cG: int) -> str:
    """G's cells surely released as F's guard read them: the cell and observer rules (with k rows and
    persons, on the complement of every holding an observer of G could have), and, one level down,
    only where G's own guard had no test on them. 0 where persons were counted for G but cannot be now.
    `persons` None: a subgroup's rows (persons are not read for those)."""
    k = int(g["k"])
    if persons is not None and not persons and any(c.b.catalog.datasets[d].person_key for d in g["datasets"]):
        return c.node("const", [], cG, 0, 0, value=0)
    flags = [c.node("ge_const", [total_g], cG, const=k, rule="guard.contains", what="earlier guard: cell released")]
    if persons:
        flags.append(c.any_of(cG, [c.node("ge_const", [x], cG, const=k, rule="guard.contains",
                                          what="earlier guard: cell persons") for x in persons.values()]))
    for held, rest in c.earlier_complements(datasets=list(g["datasets"])):
        flags.append(c.node("ge_const", [_total(c, q_g, rest, cG)], cG, const=k, rule="guard.contains",
                            what="earlier guard: complement", who=list(held)))
    touched = _g_touched(c, g, cG)
    if touched.any():
        flags.append(c.linear(c.node("const", [], cG, 1, 1, value=1), [(i, i) for i in np.flatnonzero(~touched)], cG, 1))
    return flags[0] if len(flags) == 1 else c.node("and", flags, cG)


# -- sums: F's guard.dominance against G, recomputed --------------------------------------------------
def _g_touched(c, g: dict, cG: int) -> np.ndarray:
    """G's cells that G's own recorded guard had a test on (one level down: structural)."""
    touched = np.zeros(cG, dtype=bool)
    for h in g.get("guarded", []):
        t = None if h.get("mode") != "cells" else relate(c.b.catalog, _cells(g), _cells(h))
        touched |= np.ones(cG, dtype=bool) if t is None else t.possible.any(axis=1)
    return touched


def own_sums(sums, low: str) -> str | None:
    """F's sums (the earlier sums of `sums`, a guard_sums.SumChecks) that surely passed F's own
    guard.dominance against every release it recorded: recomputed where the rows were (F as the new
    query, its sum flags between `low`, the strict reading, and possibly released), else where no
    guard of F had a test on the cell. None when F recorded no guard."""
    c = sums.c
    guards = c.__dict__.get("earlier_guards", [])
    if not guards:
        return None
    flags = [mask if info is None else _sum_passed(sums, g, info, low) for g, mask, info in guards]
    return _closed(c, flags[0] if len(flags) == 1 else c.node("and", flags, c.cE), sums.possible)


def _sum_passed(sums, g: dict, info: tuple, low: str) -> str:
    c, rel, rows = sums.c, info.rel, info.fams["rows"]
    possible_g, certain_g = rows.possible, rows.certain
    view = type(c).__new__(type(c))  # a CellChecks with F as the new query, G as the earlier one
    entry = {f: v for f, v in g.items() if f != "guarded"}
    view.__dict__.update(b=_AsNew(c.b, c.e, c.cE), e={**entry, "from": [{"query": None, "plan_hash": None}]},
                         rel=rel, new_keys=c.e["keys"], cN=c.cE, cE=rel.old_nonempty.size, hi=c.hi,
                         k=int(g["k"]), columns={}, subs={}, rels={},
                         possible={"rows": possible_g}, certain={"rows": certain_g})
    checks = type(sums)(view, sums.top, sums.abssum, "rows")  # (a SumChecks) G is read as having summed it
    touched = _g_touched(c, g, view.cE)
    if touched.any():  # F's own test failed where the difference held a G sum G's guard may have withheld
        checks.guarded = c.node("and", [possible_g, c.keep(c.const(view.cE, 1), np.flatnonzero(touched), view.cE)],
                                view.cE)
    p = c.possible["rows"]
    flags = [low] + [checks.ok(p, f_d, g_d, {"who": list(held)} if held else {}, low=low)
                     for held, f_d, g_d in _scopes(c, g)]
    return c.node("and", flags, c.cE)


class _AsNew:
    """The builder, seen from an earlier release F as the new query (its WHERE, datasets, cells)."""

    def __init__(self, b, f: dict, cells: int):
        self._b, self.cells, self.earlier = b, cells, None
        self.catalog, self.slots, self.max_rows, self.g = b.catalog, b.slots, b.max_rows, b.g
        self.lp = SimpleNamespace(where=f["where"], datasets=list(f["datasets"]), policy=b.lp.policy,
                                  person_key=b.lp.person_key, columns=b.lp.columns)

    def add(self, *args, **attrs) -> str:
        return self._b.add(*args, **attrs)

    def secure(self, op, inputs, lo, hi, **attrs) -> str:
        return self._b.add(op, "secure", inputs, [self.cells], lo, hi, **attrs)

    def _arg_range(self, slot: dict):
        return self._b._arg_range(slot)
