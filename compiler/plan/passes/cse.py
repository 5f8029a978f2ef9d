"""Common-subexpression elimination: secure nodes with the same op, inputs and attributes are
computed once. Typical source: several aggregates over one nullable column each asking for the
same own-count flag."""
from __future__ import annotations

import json

import networkx as nx

from insightql.compiler.plan.passes.refs import rename_refs

PURE = {"secure"}


def _key(d: dict) -> str:
    return json.dumps([d["op"], d["placement"], d["inputs"], d["shape"], d["attrs"]], sort_keys=True, default=str)


def eliminate_common_subexpressions(g: nx.DiGraph) -> nx.DiGraph:
    changed = True
    while changed:  # a merge can make two consumers identical: repeat until stable
        changed = False
        seen: dict[str, str] = {}
        mapping: dict[str, str] = {}
        for nid in sorted(g.nodes, key=lambda n: int(n[1:])):  # build order (ids may have 4 digits)
            d = g.nodes[nid]
            if d["placement"] not in PURE:
                continue
            k = _key(d)
            if k in seen:
                mapping[nid] = seen[k]
            else:
                seen[k] = nid
        if mapping:
            rename_refs(g, mapping)
            g.remove_nodes_from(mapping)
            changed = True
    return g
