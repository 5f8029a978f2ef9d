"""The groups of cells the differencing guard tests, the WHERE of a family of released cells, and the
columns row IR reads (spec/disclosure.md 3.2).

Shared by the guard's tests against an earlier release (`guard_cells.CellChecks`, `guard_sums`) and by
the recomputation of an earlier release's own guard (`guard_earlier`), which guard_cells builds on and
so cannot import guard_cells itself.
"""
from __future__ import annotations

import numpy as np

from insightql.compiler.plan.structure import Relation


def column_types(irs: list) -> dict[str, dict]:
    """{column: type} of the column references in row IR, as the query that wrote it saw them."""
    out: dict[str, dict] = {}

    def walk(x):
        if isinstance(x, dict):
            if "col" in x:
                out.setdefault(x["col"], x["type"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    for ir in irs:
        walk(ir)
    return out


def family_where(where: dict | None, arg: dict | None, rest: bool = False) -> dict | None:
    """The WHERE of a family of released cells: the query's WHERE, and for a subgroup `arg` the rows
    where it has a value, or with `rest` the rest of the cell: the rows where it is NULL (a FILTER's
    indicator is NULL where its condition is FALSE or NULL, a nullable column where it has no value)."""
    if arg is None:
        return where
    null = {"op": "is_null", "args": [arg], "type": {"kind": "bool", "nullable": False}}
    part = null if rest else {"op": "not", "args": [null], "type": {"kind": "bool", "nullable": False}}
    return part if where is None else {"op": "and", "args": [where, part], "type": {"kind": "bool", "nullable": False}}


def groups_of(rel: Relation) -> list[tuple[str, list[tuple[int, ...]], list[tuple[int, ...]], np.ndarray, np.ndarray]]:
    """(rule, new cells per group, earlier cells per group, new inside earlier, earlier inside new)
    for every group the guard tests, each group once (spec/disclosure.md 3.2)."""
    seen, out = set(), []
    cN, cE = rel.new_nonempty.size, rel.old_nonempty.size

    def add(rule, groups):
        ns_l, es_l, ni, oi = [], [], [], []
        for ns, es, new_in, old_in in groups:
            ns, es = [int(x) for x in ns], [int(x) for x in es]
            key = (frozenset(ns), frozenset(es))
            if not ns or not es or key in seen:
                continue
            seen.add(key)
            ns_l.append(tuple(ns))
            es_l.append(tuple(es))
            ni.append(new_in)
            oi.append(old_in)
        if ns_l:
            out.append((rule, ns_l, es_l, np.array(ni, dtype=bool), np.array(oi, dtype=bool)))

    inside, holds = rel.new_inside_old, rel.old_inside_new
    add("guard.inside", [(np.flatnonzero(inside[:, e]), [e], True, bool(rel.covered_old[e])) for e in range(cE)])
    add("guard.contains", [([n], np.flatnonzero(holds[:, n]), bool(rel.covered_new[n]), True) for n in range(cN)])
    margins = []
    for i, (ns, es) in enumerate(rel.components):
        new_in, old_in = rel.component_closed(i)
        margins.append((list(ns), list(es), new_in, old_in))
    for e in range(cE):  # an earlier cell and every new cell it can share rows with
        ns = np.flatnonzero(rel.possible[:, e])
        margins.append((ns, [e], bool(inside[ns, e].all()), not rel.old_outside[e]))
    for n in range(cN):  # a new cell and every earlier cell it can share rows with
        es = np.flatnonzero(rel.possible[n, :])
        margins.append(([n], es, not rel.new_outside[n], bool(holds[es, n].all())))
    add("guard.margin", margins)
    return out
