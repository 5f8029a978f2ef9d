"""Smallest sufficient bit lengths: every node that runs a secure sign or equality test gets
`l`, the bits its compared value needs given the plan's bounds (MPyC's cost grows with l)."""
from __future__ import annotations

import math

import networkx as nx

SIGN_TESTS = ("ge_const", "outside_range", "compare", "nonzero", "dominance", "median")


def raw_range(d: dict) -> tuple[int, int]:
    lo, hi = d["bounds"]
    s = 2 ** d.get("frac", 0)
    return math.floor(lo * s), math.ceil(hi * s)


def sign_bits(lo: float, hi: float) -> int:
    return math.ceil(math.log2(max(abs(lo), abs(hi), 1) + 1)) + 2


def compared_range(g: nx.DiGraph, nid: str) -> tuple[int, int]:
    """The range of the value a node's sign test looks at."""
    d = g.nodes[nid]
    a = d["attrs"]
    lo, hi = raw_range(g.nodes[d["inputs"][0]])
    if d["op"] == "ge_const":
        c = a["const"] * 2 ** g.nodes[d["inputs"][0]].get("frac", 0)
        return lo - c, hi - c
    if d["op"] == "outside_range":
        return min(lo - a["low"], a["high"] - hi), max(hi - a["low"], a["high"] - lo)
    if d["op"] == "dominance":
        t_hi = raw_range(g.nodes[d["inputs"][1]])[1]
        return -10000 * t_hi, 10000 * t_hi
    if d["op"] == "median":
        total = raw_range(g.nodes[d["inputs"][1]])[1]
        return -total, 2 * total
    return lo, hi


def annotate_bit_lengths(g: nx.DiGraph) -> nx.DiGraph:
    for nid in g.nodes:
        d = g.nodes[nid]
        if d["placement"] == "secure" and d["op"] in SIGN_TESTS:
            d["attrs"]["l"] = sign_bits(*compared_range(g, nid))
    return g
