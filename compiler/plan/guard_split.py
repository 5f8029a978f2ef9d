"""The differencing guard's triple tests: a cell split by two earlier releases (spec/disclosure.md 3.2).

The pairwise tests (guard_cells.CellChecks) compare the new query with one earlier release at a
time. A receiver can subtract two earlier releases from a third cell: a total, minus the total of
one type (release B), minus the released regions of the other types (the new query) is the
withheld region. So for every ordered pair of earlier entries A, B (both related cell by cell):

* `guard.inside`: an earlier cell e of A, the new cells inside it, and the cells of B inside e that
  share no rows with any of those new cells by definition: e minus the released new cells minus the
  possibly released cells of B must hold >= k rows, or e is their union by definition with every
  new cell released and every B cell surely released; else every new cell inside e is withheld.
* `guard.contains`: a new cell n and the possibly released cells of A and of B inside it that
  share no rows by definition: n minus both sums >= k, or n is their union by definition and all
  are surely released; else n is withheld.

Counted on all rows and on every observer's complement over the datasets of both entries.
"""
from __future__ import annotations

import itertools

import numpy as np

from insightql.compiler.plan.structure import relate

_BOOL = {"kind": "bool", "nullable": True}


def _sig(entry: dict) -> dict:
    return {"datasets": list(entry["datasets"]), "where": entry["where"], "keys": entry["keys"]}


def _either(datasets: list[str], *wheres) -> dict | None:
    """One cell holding the rows of any of the WHEREs (None: every row)."""
    if any(w is None for w in wheres):
        return {"datasets": datasets, "where": None, "keys": []}
    return {"datasets": datasets, "where": {"op": "or", "args": list(wheres), "type": _BOOL}, "keys": []}


def split_oks(builder, released: str, scopes) -> list[str]:
    """The triple tests' flags over the new cells, for every pair of earlier entries in
    `builder.guard_checks` (`scopes`: guard.scopes)."""
    checks = getattr(builder, "guard_checks", [])
    oks = []
    for i, j in itertools.permutations(range(len(checks)), 2):
        (ea, a), (eb, b) = checks[i], checks[j]
        tests = [_inside, *([_contains] if i < j else [])]  # guard.contains is symmetric: each pair once
        rel_ba = relate(builder.catalog, _sig(eb), _sig(ea))  # B's cells (as new) against A's
        if rel_ba is None:
            continue
        for held, new, _ in scopes(builder, {"datasets": sorted({*ea["datasets"], *eb["datasets"]})}):
            old_a = [d for d in ea["datasets"] if _kept(builder, d, held)]
            old_b = [d for d in eb["datasets"] if _kept(builder, d, held)]
            if not old_a or not old_b:
                continue  # an observer holding every row of one of them: the pairwise tests apply
            who = {"who": list(held)} if held else {}
            for test in tests:
                ok = test(builder, a, b, ea, eb, rel_ba, released, new, old_a, old_b, who)
                if ok is not None:
                    oks.append(ok)
    return oks


def _kept(builder, d: str, held: tuple) -> bool:
    return builder.catalog.datasets[d].owner not in held


def _covered(builder, cells_sig: dict, wheres: list, datasets: list[str]) -> np.ndarray | None:
    """Per cell of `cells_sig`, whether every domain point of it lies in the rows of one of `wheres`
    (over `datasets`); None when the datasets differ or it cannot be decided."""
    if sorted(cells_sig["datasets"]) != sorted(datasets):
        return None
    rel = relate(builder.catalog, _either(list(datasets), *wheres), cells_sig)
    if rel is None:
        return None
    return ~rel.old_outside


def _inside(builder, a, b, ea, eb, rel_ba, released, new, old_a, old_b, who) -> str | None:
    """guard.inside over A's cells e, with B's cells inside e disjoint from the new cells inside e."""
    rel_a, rel_b, k = a.rel, b.rel, a.k
    lp = builder.lp
    cover = None
    if sorted(lp.datasets) == sorted(eb["datasets"]):
        cover = _covered(builder, _sig(ea), [lp.where, eb["where"]], list(lp.datasets))
    groups = []
    for e in range(a.cE):
        ns = np.flatnonzero(rel_a.new_inside_old[:, e])
        if not ns.size:
            continue
        fs = [int(f) for f in np.flatnonzero(rel_ba.new_inside_old[:, e]) if not rel_b.possible[ns, f].any()]
        if not fs:
            continue
        exact = (cover is not None and bool(cover[e]) and set(np.flatnonzero(rel_a.possible[:, e])) <= set(ns)
                 and set(np.flatnonzero(rel_ba.possible[:, e])) <= set(fs))
        groups.append((e, [int(n) for n in ns], fs, exact))
    if not groups:
        return None
    return _test(builder, a, b, groups, released, new, old_a, old_b, who, k, "guard.inside")


def _contains(builder, a, b, ea, eb, rel_ba, released, new, old_a, old_b, who) -> str | None:
    """guard.contains over new cells n, with A's and B's cells inside n that share no rows."""
    rel_a, rel_b, k = a.rel, b.rel, max(a.k, b.k)
    lp = builder.lp
    cover = None
    if sorted(lp.datasets) == sorted(ea["datasets"]) == sorted(eb["datasets"]):
        rel = relate(builder.catalog, {"datasets": list(lp.datasets), "where": lp.where, "keys": builder.guard_keys},
                     _either(list(lp.datasets), ea["where"], eb["where"]))
        cover = None if rel is None else ~rel.new_outside
    groups = []
    for n in range(a.cN):
        es = [int(e) for e in np.flatnonzero(rel_a.old_inside_new[:, n])]
        fs = [int(f) for f in np.flatnonzero(rel_b.old_inside_new[:, n]) if not rel_ba.possible[f, es].any()]
        if not es or not fs:
            continue
        exact = (cover is not None and bool(cover[n]) and set(np.flatnonzero(rel_a.possible[n, :])) <= set(es)
                 and set(np.flatnonzero(rel_b.possible[n, :])) <= set(fs))
        groups.append((n, es, fs, exact))
    if not groups:
        return None
    return _test(builder, a, b, groups, released, new, old_a, old_b, who, k, "guard.contains")


def _test(builder, a, b, groups, released, new, old_a, old_b, who, k, rule) -> str:
    """The flag over the new cells: 0 where a group fails. Groups: (A cell e, new cells, B cells,
    exact) for guard.inside; (new cell n, A cells, B cells, exact) for guard.contains."""
    m, hi, cN = len(groups), a.hi, a.cN
    inside = rule == "guard.inside"
    if inside:
        a_pairs = [(e, g) for g, (e, _, _, _) in enumerate(groups)]
        n_pairs = [(n, g) for g, (_, ns, _, _) in enumerate(groups) for n in ns]
    else:
        a_pairs = [(e, g) for g, (_, es, _, _) in enumerate(groups) for e in es]
        n_pairs = [(n, g) for g, (n, _, _, _) in enumerate(groups)]
    b_pairs = [(f, g) for g, (_, _, fs, _) in enumerate(groups) for f in fs]
    exact = np.array([x for _, _, _, x in groups], dtype=bool)
    q_new = a.new_count("rows", new)
    q_a = a.total(a.parts["rows"], old_a)
    q_b = b.total(b.parts["rows"], old_b)
    p_b = b.node("mul", [b.possible["rows"], q_b], b.cE, 0, hi)
    sum_b = b.linear(p_b, b_pairs, m, hi * b.cE)
    unreleased = builder.secure("not", [released], 0, 1)
    all_new = a.none_of(a.linear(unreleased, n_pairs, m, cN), m)
    b_certain = a.none_of(b.linear(b.node("not", [b.certain["rows"]], b.cE), b_pairs, m, b.cE), m)
    if inside:  # e minus the released new cells minus the possibly released B cells
        f_q = builder.secure("mul", [released, q_new], 0, hi)
        rem = a.node("sub", [a.node("sub", [a.linear(q_a, a_pairs, m, hi * a.cE), a.linear(f_q, n_pairs, m, hi * cN)],
                                    m, -hi * cN, hi * a.cE), sum_b], m, -hi * (cN + b.cE), hi * a.cE)
        a_possible = a.linear(a.possible["rows"], a_pairs, m, 1)
        whole = a.node("and", [all_new, b_certain], m)
        ok = a.any_of(m, [a.node("not", [a_possible], m), a.test(rem, m, k, rule, what="earlier cell split by two",
                                                                **who)]
                      + ([a.keep(whole, np.flatnonzero(exact), m)] if exact.any() else []))
    else:  # n minus the possibly released cells of A and of B inside it
        p_a = a.node("mul", [a.possible["rows"], q_a], a.cE, 0, hi)
        rem = a.node("sub", [a.node("sub", [a.linear(q_new, n_pairs, m, hi * cN), a.linear(p_a, a_pairs, m, hi * a.cE)],
                                    m, -hi * a.cE, hi * cN), sum_b], m, -hi * (a.cE + b.cE), hi * cN)
        a_certain = a.none_of(a.linear(a.node("not", [a.certain["rows"]], a.cE), a_pairs, m, a.cE), m)
        whole = a.node("and", [a_certain, b_certain], m)
        ok = a.any_of(m, [a.node("not", [all_new], m), a.test(rem, m, k, rule, what="new cell split by two", **who)]
                      + ([a.keep(whole, np.flatnonzero(exact), m)] if exact.any() else []))
    bad = a.linear(a.node("not", [ok], m), [(g, n) for n, g in n_pairs], cN, m)
    return a.allowed_by([bad], released, rule)
