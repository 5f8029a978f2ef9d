"""Batching: threshold tests (`ge_const`, `outside_range`) that do not depend on each other run as
one vectorised MPyC call (runtime/secure/secure_ops.py run_batch). Members of a batch only read nodes that come before the batch's first
member, so the runtime can evaluate the whole batch when it reaches that member."""
from __future__ import annotations

import networkx as nx


def batch_comparisons(g: nx.DiGraph) -> nx.DiGraph:
    order = sorted(g.nodes)
    position = {n: i for i, n in enumerate(order)}
    batches: list[list[str]] = []
    for nid in order:
        d = g.nodes[nid]
        if d["placement"] != "secure" or d["op"] not in ("ge_const", "outside_range"):
            continue
        for b in batches:
            first = position[b[0]]
            if all(position[i] < first for i in d["inputs"]) and g.nodes[b[0]]["shape"] == d["shape"]:
                b.append(nid)
                break
        else:
            batches.append([nid])
    for b in batches:
        if len(b) > 1:
            for nid in b:
                g.nodes[nid]["attrs"]["batch"] = b[0]
    return g
