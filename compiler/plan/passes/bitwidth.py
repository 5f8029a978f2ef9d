"""Smallest sufficient bit lengths: every node that runs a secure sign or equality test gets
`l`, the bits its compared value needs given the plan's bounds (MPyC's cost grows with l).
What each op compares is declared with the op (compiler/plan/ops.py `compared`)."""
from __future__ import annotations

import networkx as nx

from insightql.compiler.plan.ops import OPS, SIGN_TESTS, sign_bits


def compared_range(g: nx.DiGraph, nid: str) -> tuple[int, int]:
    """The range of the value a node's sign test looks at."""
    d = g.nodes[nid]
    return OPS[d["op"]].compared(d, [g.nodes[i] for i in d["inputs"]])


def annotate_bit_lengths(g: nx.DiGraph) -> nx.DiGraph:
    for nid in g.nodes:
        d = g.nodes[nid]
        if d["placement"] == "secure" and d["op"] in SIGN_TESTS:
            d["attrs"]["l"] = sign_bits(*compared_range(g, nid))
    return g
