"""Complementary suppression across releases: what the differencing guard withholds takes its
component with it (`guard.closure`, spec/disclosure.md 3.2).

The guard tests every group of cells a receiver can subtract (guard_cells.groups_of), each against
one earlier release, reading the new flags as they are BEFORE the guard. A cell the guard withholds
for one earlier release was read as released by the tests against the others, so a difference they
allowed can give it back: by region; by region and nationality WHERE stay_days < 30; by region and
nationality withholds the third's North x NG against the second, and the first's North minus the
third's three other nationalities is that cell (spec/disclosure.md 6.1 before this rule).

Over the public structure (plaintext, at compile time) the new cells fall into components: two new
cells are joined when some earlier cell of some earlier release can share rows with both
(`Relation.possible`, over every earlier release the guard relates over the public domain). Every
group any test reads lies inside one component (the tests on an observer's complement, on a
subgroup or on the rest of a cell relate fewer domain points, so their groups are subsets). Inside
MPC, a cell the guard withheld (released before its tests, not after) withholds every cell of its
component: then each group either has every new cell withheld, or its flags are exactly the ones
its tests read, so every test holds on the final flags. One pass suffices: the components are
closed, so a cell the closure withholds is in a component that is withheld already. A value's flag
read as "before" is taken before counts.pair and filter.parts (circuit.finish_values): the remainder
tests count each count alone, so a pair withheld in a released cell came back from a margin.
"""
from __future__ import annotations

import numpy as np

from insightql.compiler.plan.structure import _components as connected  # the same graph walk


def components_of(n_cells: int, possible: list[np.ndarray]) -> list[tuple[int, ...]]:
    """The components of two or more of `n_cells` cells (a single cell's own withholding changes
    nothing else): the connected parts of the bipartite graph of those cells and the cells of every
    other release, joined where a `Relation.possible` matrix (n_cells x that release's cells) says
    they can share rows. The other releases' cells join cells and are left out of the result."""
    u, v, offset = [], [], n_cells
    for m in possible:
        n, e = np.nonzero(m)
        u.append(n)
        v.append(offset + e)
        offset += m.shape[1]
    alive = np.arange(offset) < n_cells
    edges = [np.concatenate(x) if x else np.zeros(0, dtype=int) for x in (u, v)]
    return [new for new, _ in connected(n_cells, offset - n_cells, *edges, alive) if len(new) > 1]


def components(builder) -> list[tuple[int, ...]]:
    """`components_of` the new cells over every earlier release the guard relates over the public
    domain, cached on the builder. Fallback entries (no relation) add none: their tests read no flag."""
    cached = builder.__dict__.get("guard_components")
    if cached is None:
        cached = components_of(builder.cells, [r.possible for r in getattr(builder, "relations", []) if r is not None])
        builder.guard_components = cached
    return cached


def close(builder, before: str, after: str, what: str) -> str:
    """`after` (the flag after the guard's tests, <= `before`, the flag they read) without every cell
    whose component holds a cell the guard withheld: after - (the cells withheld in its component)
    >= 1, one comparison and no product. No node when no component has two cells."""
    comps = components(builder) if after != before else []
    if not comps:
        return after
    b, m, top = builder, len(comps), max(len(c) for c in comps)
    withheld = b.secure("sub", [before, after], 0, 1)
    to_comp = [[n, c] for c, cells in enumerate(comps) for n in cells]
    count = b.add("linear", "secure", [withheld], [m], 0, top, pairs=to_comp, size=m)
    back = b.add("linear", "secure", [count], [b.cells], 0, top, pairs=[[c, n] for n, c in to_comp], size=b.cells)
    return b.secure("ge_const", [b.secure("sub", [after, back], -top, 1)], 0, 1, const=1, rule="guard.closure",
                    what=what)
