"""filter.parts across releases (spec/disclosure.md 2.15): the earlier releases of the same cells.

The differencing guard compares cells; two releases whose cells hold the same rows by definition
are compared by nothing there (the same WHERE and keys are skipped; written otherwise, every
difference is empty), but their counts and sums are equations in the same classes of rows. Each
release's ledger entry records the columns it summed and the parts it counted (`sums`, `parts`:
guard_sums.recorded), and a new query's filter.parts relates them with its own, cell by cell:
`groups` says which earlier releases apply to which new cells, `add` joins their parts and summed
columns to one analysis (compiler/plan/partition.py).
"""
from __future__ import annotations

import json

import numpy as np

from insightql.compiler.plaintext.local_eval import ir_type
from insightql.compiler.plan.guard_cells import column_types
from insightql.compiler.plan.structure import relate


def _canon(ir) -> str:
    return json.dumps(ir, sort_keys=True)


def same_cells(rule, e: dict, new: dict) -> np.ndarray:
    """Per new cell: whether it holds exactly the rows of a cell of the earlier release `e` (the same
    datasets, and the same WHERE and keys, or over the public domain, structure.relate: keys or OR
    branches reordered, a WHERE that drops some cells). An empty new cell reads as the same (nothing
    to protect); where the relation cannot be decided, no cell is."""
    cells = rule.b.cells
    if sorted(e["datasets"]) != new["datasets"]:
        return np.zeros(cells, dtype=bool)
    if _canon([e["where"], e["keys"]]) == _canon([new["where"], new["keys"]]):
        return np.ones(cells, dtype=bool)
    rel = relate(rule.b.catalog, new, {"datasets": sorted(e["datasets"]), "where": e["where"], "keys": e["keys"]})
    if rel is None:
        return np.zeros(cells, dtype=bool)
    return rel.same.any(axis=1) | ~rel.new_nonempty


def groups(rule) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """[(indices into builder.earlier, cells)]: the new cells grouped by the earlier releases of the same
    cells that apply to them (entries with `sums`, not DP: an older entry's sums are unknown and it is
    not related; a DP release's values are noisy). One group of every cell when they all agree."""
    lp, b = rule.b.lp, rule.b
    keys = [{"expr": k.expr, "type": k.type.to_json(), "size": len(k.values)} for k in lp.keys]
    new = {"datasets": sorted(lp.datasets), "where": lp.where, "keys": keys}
    earlier = getattr(b, "earlier", None) or []
    masks = [same_cells(rule, e, new) if "sums" in e and not e.get("dp") else np.zeros(b.cells, dtype=bool)
             for e in earlier]
    which = [tuple(i for i, m in enumerate(masks) if m[c]) for c in range(b.cells)]
    return [(run, np.array([w == run for w in which])) for run in dict.fromkeys(which)]


def add(rule, entries: list[dict], moment) -> set[int]:
    """Join the counted parts and summed columns of the earlier releases `entries` to the rule's (as if
    the query had them too: they are public, so its flags must make the joint system safe), and have
    the owners load the columns they read. `moment(arg, clamp, span)` makes a summed column's record.
    Returns the indices of the parts an earlier release counted."""
    index = {_canon(ir): i for i, (_, ir) in enumerate(rule.parts)}
    old: set[int] = set()
    for e in entries:
        for ir in e.get("parts", []):
            if _canon(ir) not in index:
                index[_canon(ir)] = len(rule.parts)
                rule.parts.append((None, ir))
            old.add(index[_canon(ir)])
        for s in e["sums"]:
            m = rule.moments.setdefault(_canon(s["arg"]), moment(s["arg"], s.get("clamp"), None))
            if moment(s["arg"], s.get("clamp"), None)["clamp"] != m["clamp"]:
                rule.refuse([m], f"the earlier release {e.get('query')} summed it under other clamp bounds")
            m["degree"] = max(m["degree"], int(s["degree"]))
            m["old"] = max(m["old"], int(s["degree"]))
        for c, t in column_types([*e.get("parts", []), *(s["arg"] for s in e["sums"])]).items():
            rule.b.lp.columns.setdefault(c, ir_type(t))  # the owners evaluate the earlier parts in the tests
    return old
