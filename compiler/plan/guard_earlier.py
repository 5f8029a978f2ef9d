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
by G's strict reading and, one level down, only where G's own guard had no test on them. A cell that
passes every recomputed test passed F's guard, whatever F's exact flags were.

Where the recomputation cannot run (G in the fallback `guard.rows`, G with subgroups, G over datasets
F did not read, a relation that cannot be decided), every F cell G's guard could test (one that can
share rows with a G cell) counts as not surely released: always sound, since a cell with no test
passes the guard. The same structural reading (`touched`) applies to F's values, subgroups and sums,
whose guard tests are not recomputed.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from insightql.compiler.check.observer import observer_holdings
from insightql.compiler.diagnostics import PlanError
from insightql.compiler.plan.guard_groups import column_types, groups_of
from insightql.compiler.plan.structure import relate


def own_guard(c, strict: str) -> str:
    """The earlier cells of `c` (a CellChecks) that surely passed their release's own guard and the
    strict reading `strict`; sets `c.touched` (cells some guard of it had a test on)."""
    flags = [strict]
    for g in c.e.get("guarded", []):
        flags.append(_passed(c, g, strict))
    return strict if len(flags) == 1 else c.node("and", flags, c.cE)


def _cells(d: dict, datasets=None) -> dict:
    return {"datasets": list(d["datasets"] if datasets is None else datasets), "where": d["where"], "keys": d["keys"]}


def _related(c, g: dict):
    """(F's cells related to G's over the public domain or None, the F cells that can share rows with
    a cell of G or None where that is not decided: G in the fallback, or no relation)."""
    rel = relate(c.b.catalog, _cells(c.e), _cells(g)) if g.get("mode") == "cells" else None
    return rel, None if rel is None else rel.possible.any(axis=1)


def _untouched(c, touched: np.ndarray | None) -> str:
    if touched is None:
        touched = np.ones(c.cE, dtype=bool)
    c.touched |= touched
    return c.keep(c.const(c.cE, 1), np.flatnonzero(~touched), c.cE)


def _passed(c, g: dict, s: str) -> str:
    """1 for F's cells (c's earlier cells) that surely passed F's guard against G (recorded `g`).
    Records in `c.earlier_guards` what own_sums needs: (g, its mask if not recomputed, else
    (G's cells possibly and surely released))."""
    rel_all, touched = _related(c, g)
    guards = c.__dict__.setdefault("earlier_guards", [])
    if touched is None or not touched.any():
        guards.append((g, _untouched(c, touched), None))
        return guards[-1][1]
    c.touched |= touched
    if g.get("subgroups") or not set(g["datasets"]) <= set(c.e["datasets"]):
        guards.append((g, _untouched(c, touched), None))
        return guards[-1][1]
    cG = rel_all.old_nonempty.size
    try:
        q_g, persons = _recount(c, g, cG)
    except PlanError:  # G read a column with another type (another UNION ALL): not recounted
        guards.append((g, _untouched(c, touched), None))
        return guards[-1][1]
    every = list(g["datasets"])
    total_g = _total(c, q_g, every, cG)
    possible_g = c.node("ge_const", [total_g], cG, const=int(g["k_old"]), rule="guard.inside",
                        what="the earlier release's own guard: its earlier cell possibly released")
    certain_g = _strict(c, g, q_g, persons, total_g, cG)
    guards.append((g, None, (rel_all, possible_g, certain_g)))
    p, k = c.possible["rows"], int(g["k"])
    bad = []
    for held, f_d, g_d in _scopes(c, g):
        rel = rel_all if not held else relate(c.b.catalog, _cells(c.e, f_d), _cells(g, g_d))
        if rel is None:
            return _untouched(c, touched)
        who = {"who": list(held)} if held else {}
        q_f, q_gs = c.total(c.parts["rows"], f_d), _total(c, q_g, g_d, cG)
        bad += [_group_bad(c, grp, q_f, q_gs, s, p, possible_g, certain_g, k, cG, who) for grp in groups_of(rel)]
    if not bad:
        return s
    count = bad[0]
    for x in bad[1:]:
        count = c.node("add", [count, x], c.cE, 0, 4 * (c.cE + cG))
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


def _recount(c, g: dict, cG: int) -> tuple[dict[str, str], dict[str, str]]:
    """Each owner's rows (and persons) in G's cells, today: ({dataset: node}, {dataset: node})."""
    b = c.b
    extra = column_types([g["where"], *(k["expr"] for k in g["keys"])])
    slots = [{"name": "s0", "kind": "rows"}]
    if b.lp.person_key:
        slots.append({"name": "s1", "kind": "persons", "column": b.lp.person_key})
    rows, persons = {}, {}
    for d in g["datasets"]:
        owner = b.catalog.datasets[d].owner
        part = b.add("partials", f"local:{owner}", [c.load_of(d, extra)], [len(slots), cG], dataset=d,
                     where=g["where"], keys=g["keys"], slots=slots, cells=cG, earlier=True)
        share = b.add("share", f"input:{owner}", [part], [len(slots), cG], 0, c.hi, party=owner)
        rows[d] = c.node("combine", [share], cG, 0, c.hi, slot="s0", how="sum")
        if b.lp.person_key:
            persons[d] = c.node("combine", [share], cG, 0, c.hi, slot="s1", how="sum")
    return rows, persons


def _strict(c, g: dict, q_g: dict, persons: dict, total_g: str, cG: int) -> str:
    """G's cells surely released as F's guard read them: the cell and observer rules (with k rows and
    persons, on the complement of every holding an observer of G could have), and, one level down,
    only where G's own guard had no test on them. 0 where persons were counted for G but cannot be now."""
    k = int(g["k"])
    if not persons and any(c.b.catalog.datasets[d].person_key for d in g["datasets"]):
        return c.node("const", [], cG, 0, 0, value=0)
    flags = [c.node("ge_const", [total_g], cG, const=k, rule="guard.contains", what="earlier guard: cell released")]
    if persons:
        flags.append(c.any_of(cG, [c.node("ge_const", [x], cG, const=k, rule="guard.contains",
                                          what="earlier guard: cell persons") for x in persons.values()]))
    for held, rest in c.earlier_complements(datasets=list(g["datasets"])):
        flags.append(c.node("ge_const", [_total(c, q_g, rest, cG)], cG, const=k, rule="guard.contains",
                            what="earlier guard: complement", who=list(held)))
    touched = np.zeros(cG, dtype=bool)
    for h in g.get("guarded", []):
        t = None if h.get("mode") != "cells" else relate(c.b.catalog, _cells(g), _cells(h))
        touched |= np.ones(cG, dtype=bool) if t is None else t.possible.any(axis=1)
    if touched.any():
        flags.append(c.linear(c.node("const", [], cG, 1, 1, value=1), [(i, i) for i in np.flatnonzero(~touched)], cG, 1))
    return flags[0] if len(flags) == 1 else c.node("and", flags, cG)


# -- sums: F's guard.dominance against G, recomputed --------------------------------------------------
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
    return flags[0] if len(flags) == 1 else c.node("and", flags, c.cE)


def _sum_passed(sums, g: dict, info: tuple, low: str) -> str:
    c, (rel, possible_g, certain_g) = sums.c, info
    view = type(c).__new__(type(c))  # a CellChecks with F as the new query, G as the earlier one
    entry = {f: v for f, v in g.items() if f != "guarded"}
    view.__dict__.update(b=_AsNew(c.b, c.e, c.cE), e={**entry, "from": [{"query": None, "plan_hash": None}]},
                         rel=rel, new_keys=c.e["keys"], cN=c.cE, cE=rel.old_nonempty.size, hi=c.hi,
                         k=int(g["k"]), columns={}, subs={}, rels={}, touched=np.zeros(rel.old_nonempty.size, bool),
                         possible={"rows": possible_g}, certain={"rows": certain_g})
    checks = type(sums)(view, sums.top, sums.abssum, "rows")  # (a SumChecks) G is read as having summed it
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
