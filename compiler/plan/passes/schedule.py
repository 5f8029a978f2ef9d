"""Scheduling: renumber the nodes so that tests at the same comparison depth are adjacent.

The runtime runs nodes in id order, and a batch of threshold tests (passes/batching.py) runs when
its first member is reached, so a test can only join a batch whose first member comes after all
its inputs. The release rules (compiler/plan/release.py) build each test next to the counts it reads;
ordering nodes by (comparison depth, tests last, build order) puts every independent test of one
depth after every input it needs, so the tests of a depth run as one vectorised call: a few
rounds of comparisons per plan instead of one per rule. Also removes secure nodes no output needs
(a combine the rules replaced), and writes ids of one width so that text order is id order.
"""
from __future__ import annotations

import networkx as nx

TESTS = ("ge_const", "outside_range")


def _needed(g: nx.DiGraph) -> set[str]:
    ends = [n for n, d in g.nodes(data=True) if d["placement"] in ("reveal", "public")]
    keep = set(ends)
    for e in ends:
        keep |= nx.ancestors(g, e)
    for n in list(keep):  # a guard flag of a division is read from attrs, not an edge
        gd = g.nodes[n]["attrs"].get("guard")
        if gd:
            keep |= {gd} | nx.ancestors(g, gd)
    return keep


def schedule(g: nx.DiGraph) -> nx.DiGraph:
    keep = _needed(g)
    g.remove_nodes_from([n for n, d in list(g.nodes(data=True)) if d["placement"] == "secure" and n not in keep])
    order_g = g.copy()  # a division's guard flag is an input too, though not an edge
    order_g.add_edges_from((d["attrs"]["guard"], n) for n, d in g.nodes(data=True) if d["attrs"].get("guard"))
    depth: dict[str, int] = {}
    for n in nx.topological_sort(order_g):
        d = g.nodes[n]
        ins = list(d["inputs"]) + ([d["attrs"]["guard"]] if d["attrs"].get("guard") else [])
        depth[n] = max([depth[i] + (g.nodes[i]["op"] in TESTS) for i in ins if i in depth], default=0)
    stage = {"local": 0, "input": 1, "secure": 2, "reveal": 3, "public": 4}

    def key(n):
        d = g.nodes[n]
        secure = d["placement"] == "secure"
        return stage[d["placement"].split(":")[0]], depth[n] if secure else 0, secure and d["op"] in TESTS, int(n[1:])

    order = sorted(g.nodes, key=key)
    width = max(3, len(str(len(order))))
    mapping = {n: f"n{i + 1:0{width}d}" for i, n in enumerate(order)}
    out = nx.DiGraph()
    for n in order:
        d = dict(g.nodes[n])
        d["inputs"] = [mapping[i] for i in d["inputs"]]
        a = d["attrs"] = dict(d["attrs"])
        if a.get("guard"):
            a["guard"] = mapping[a["guard"]]
        if d["op"] == "table":
            a["outputs"] = [{k: (mapping[v] if k in ("value", "flag") and v else v) for k, v in o.items()}
                            for o in a["outputs"]]
            for k in ("keep", "released"):
                if a.get(k):
                    a[k] = mapping[a[k]]
        out.add_node(mapping[n], **d)
        for i in d["inputs"]:
            out.add_edge(i, mapping[n])
    return out
