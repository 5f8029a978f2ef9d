"""Where a plan node names other nodes: its inputs, a guard, and the table's output columns."""
from __future__ import annotations

import networkx as nx


def rename_refs(g: nx.DiGraph, mapping: dict[str, str]) -> None:
    """Point every reference to a key of `mapping` at its value instead (edges included)."""
    def m(x):
        return mapping.get(x, x)

    for nid in list(g.nodes):
        d = g.nodes[nid]
        new_inputs = list(dict.fromkeys(m(i) for i in d["inputs"])) if d["op"] == "reveal" else [m(i) for i in d["inputs"]]
        if new_inputs != d["inputs"]:
            for i in d["inputs"]:
                if g.has_edge(i, nid):
                    g.remove_edge(i, nid)
            d["inputs"] = new_inputs
            for i in new_inputs:
                g.add_edge(i, nid)
            if d["op"] == "reveal":
                d["shape"] = [len(new_inputs), d["shape"][1]]
        a = d["attrs"]
        if "guard" in a:
            a["guard"] = m(a["guard"])
        if d["op"] == "table":
            for o in a["outputs"]:
                for k in ("value", "flag"):
                    if k in o:
                        o[k] = m(o[k])
            for k in ("keep", "released"):
                if a.get(k):
                    a[k] = m(a[k])
