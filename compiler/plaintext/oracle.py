"""Plaintext reference executor of a plan: a TEST ORACLE, never used for real runs.

It runs the same plan nodes as the MPC runtime, but on pooled plaintext data, so differential
tests can compare the two. Any run on real data goes through the runtime's MPyC parties. Each
op's plaintext meaning is registered here under its name (compiler/plan/ops.py `PLAIN`); the secure
meaning is runtime/secure/secure_ops.py, and differential tests hold the two together. The owner-side
steps (partials, packed link rows) and result assembly are the ones the runtime uses:
tests/independent_ref.py is the reference that shares none of this.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from insightql.compiler.plaintext.linkage_local import decode, link_rows
from insightql.compiler.plaintext.local_eval import Table
from insightql.compiler.plan.ops import PLAIN, operands, rank_weights, register
from insightql.compiler.plaintext.partials import compute_partials, linear_matrix, slot_rows
from insightql.compiler.plaintext.results import ResultTable, assemble


@dataclass
class OracleRun:
    """What a part may read besides its operands: the plan's nodes and the pooled tables."""
    nodes: dict[str, dict]
    tables: dict[str, tuple[Table, int]]
    noise: dict | None = None  # dp_noise node id -> the noise to add per cell (tests); None: none


def run_plan_plaintext(plan: dict, tables: dict[str, tuple[Table, int]], noise: dict | None = None) -> ResultTable:
    """Execute a plan on plaintext tables {dataset or load node id: (columns, row count)}; `noise`:
    what each dp_noise node adds ({node id: per-cell integers}; the oracle draws none itself)."""
    run = OracleRun({n["id"]: n for n in plan["nodes"]}, tables, noise)
    values: dict[str, object] = {}
    for n in plan["nodes"]:
        part = PLAIN.get(n["op"])
        if part is None:
            raise AssertionError(f"the oracle has no plaintext meaning for op {n['op']!r}")
        values[n["id"]] = part(n, [values[i] for i in operands(n)], run)
        if n["op"] == "table":
            return assemble(plan, values[n["id"]])
    raise AssertionError("plan has no table node")


def _flag(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


# -- owner-side, input and output steps --------------------------------------------------------
@register(PLAIN, "load")
def _load(node, args, run):  # by node: a dataset may be read twice with other column types (the guard)
    return run.tables.get(node["id"]) or run.tables[node["attrs"]["dataset"]]


@register(PLAIN, "partials")
def _partials(node, args, run):
    table, count = args[0]
    return compute_partials(node["attrs"], table, count)


@register(PLAIN, "share", "link_share", "table")
def _same(node, args, run):
    return args[0]


@register(PLAIN, "reveal")
def _reveal(node, args, run):
    return {i: [float(x) for x in np.asarray(v, dtype=float)] for i, v in zip(node["inputs"], args)}


# -- secure ops ---------------------------------------------------------------------------------
@register(PLAIN, "dp_noise")
def _dp_noise(node, args, run):  # no noise of its own: the test gives it (spec/privacy.md)
    extra = (run.noise or {}).get(node["id"])
    x = np.asarray(args[0], dtype=object)
    return x if extra is None else x + np.asarray(extra, dtype=object)


@register(PLAIN, "combine")
def _combine(node, args, run):
    a = node["attrs"]
    share0 = run.nodes[node["inputs"][0]]
    rows = slot_rows(run.nodes[share0["inputs"][0]]["attrs"]["slots"])[a["slot"]]
    blocks = [b[rows[0]:rows[1]] for b in args]
    if a["how"] in ("sum", "total"):
        out = sum(b.astype(object) for b in blocks)
        if a["how"] == "total":
            return out.sum(axis=0)
        return out if out.shape[0] > 1 else out[0]
    pick = np.max if a["how"] == "max" else np.min
    return pick(np.stack([b[0] for b in blocks]), axis=0).astype(object)


@register(PLAIN, "ge_const")
def _ge_const(node, args, run):
    return _flag(args[0] >= node["attrs"]["const"])


@register(PLAIN, "outside_range")
def _outside_range(node, args, run):
    return _flag((args[0] < node["attrs"]["low"]) | (args[0] > node["attrs"]["high"]))


@register(PLAIN, "and")
def _and(node, args, run):
    out = args[0]
    for x in args[1:]:
        out = out * x
    return _flag(out)


@register(PLAIN, "or")
def _or(node, args, run):
    return _flag(args[0] + args[1] - args[0] * args[1])


@register(PLAIN, "not")
def _not(node, args, run):
    return _flag(1 - args[0])


@register(PLAIN, "add")
def _add(node, args, run):
    return args[0] + args[1]


@register(PLAIN, "sub")
def _sub(node, args, run):
    return args[0] - args[1]


@register(PLAIN, "neg")
def _neg(node, args, run):
    return -args[0]


@register(PLAIN, "mul", "mask")
def _mul(node, args, run):
    return args[0] * args[1]


@register(PLAIN, "mul_const")
def _mul_const(node, args, run):
    return args[0] * node["attrs"]["const"]


@register(PLAIN, "const")
def _const(node, args, run):
    return np.full(node["shape"][0], node["attrs"]["value"], dtype=object)


@register(PLAIN, "nonzero")
def _nonzero(node, args, run):
    return _flag(args[0] != 0)


@register(PLAIN, "div")
def _div(node, args, run):
    guard = np.asarray(args[2] if len(args) > 2 else 1)
    den = np.where(guard == 1, args[1], 1).astype(float)
    den = np.where(den == 0, 1, den)
    return np.asarray(args[0], dtype=float) / den


@register(PLAIN, "variance")
def _variance(node, args, run):
    s, sq, n = (np.asarray(x, dtype=float) for x in args[:3])
    guard = np.asarray(args[3]) if len(args) > 3 else 1
    n = np.where(guard == 1, n, 2)
    return (sq - s * (s / n)) / (n - 1)


@register(PLAIN, "median", "percentile")
def _rank(node, args, run):
    hist, cnt = args
    a, b = rank_weights(node)
    cum = np.cumsum(np.asarray(hist, dtype=np.int64), axis=0)
    idx = (a * cum < b * np.asarray(cnt, dtype=np.int64)[None, :]).sum(axis=0)
    return node["attrs"]["lo_value"] + idx


@register(PLAIN, "dominance")
def _dominance(node, args, run):
    return _flag(100 * np.asarray(args[0], dtype=object) <= node["attrs"]["k"] * np.asarray(args[1], dtype=object))


@register(PLAIN, "linear")
def _linear(node, args, run):
    m = linear_matrix(node["attrs"], run.nodes[node["inputs"][0]]["shape"][0]).astype(object)
    return np.asarray(args[0], dtype=object) @ m


@register(PLAIN, "round_down")
def _round_down(node, args, run):
    v = np.asarray(args[0], dtype=object)
    return v - v % node["attrs"]["to"]


@register(PLAIN, "compare")
def _compare(node, args, run):
    d = np.asarray(args[0], dtype=float)
    return _flag({"=": d == 0, "<>": d != 0, "<": d < 0, "<=": d <= 0, ">": d > 0,
                  ">=": d >= 0}[node["attrs"]["relation"]])


# -- record linkage (compiler/plaintext/linkage_local.py packs the rows; spec/linkage.md) ------------------
@register(PLAIN, "link_rows")
def _link_rows(node, args, run):
    table, count = args[0]
    return link_rows(node["attrs"], table, count)


@register(PLAIN, "link_slot")
def _link_slot(node, args, run):
    return args[0][node["attrs"]["row"]]


@register(PLAIN, "link_distinct")
def distinct_plain(node, vectors, run) -> np.ndarray:
    """Per cell, the number of distinct keys over every owner's present rows."""
    attrs = node["attrs"]
    lay = attrs["layout"]
    pairs = set()
    for vec in vectors:
        for v in vec:
            key, _, f = decode(lay, int(v))
            if f["present"]:
                pairs.add((key, f["cell"]))
    out = np.zeros(attrs["cells"], dtype=object)
    for _, c in pairs:
        out[c] += 1
    return out


@register(PLAIN, "link_join")
def join_plain(node, vectors, run) -> np.ndarray:
    """Per weight row and cell, the sums over the joined rows (spec/linkage.md)."""
    attrs = node["attrs"]
    u_vec, m_vec = vectors
    lay = attrs["layout"]
    u_rows = {}
    for v in u_vec:
        key, side, f = decode(lay, int(v))
        if f["present"] and f["keyed"]:
            u_rows[key] = f
    cm_n = attrs["cells_m"]
    raw = np.zeros((len(attrs["weights"]), attrs["cells_u"] * cm_n), dtype=object)
    persons: dict[int, set] = {}
    for v in m_vec:
        key, side, f = decode(lay, int(v))
        if not f["present"]:
            continue
        u = u_rows.get(key) if f["keyed"] else None
        if u is None and attrs["kind"] == "inner":
            continue
        c = (u["cell"] if u is not None else attrs["null_cell_u"]) * cm_n + f["cell"]
        for r, w in enumerate(attrs["weights"]):
            src = f if w.get("side") == 1 else u
            if w["kind"] == "rows":
                raw[r, c] += 1
            elif w["kind"] == "persons":
                if f["keyed"]:
                    persons.setdefault(c, set()).add(key)
            elif src is None:
                continue
            elif w["kind"] == "count":
                raw[r, c] += src[w["field"] + ".nn"]
            else:  # sum
                raw[r, c] += src[w["field"] + ".val"] + w["lo"] * src[w["field"] + ".nn"]
    for r, w in enumerate(attrs["weights"]):
        if w["kind"] == "persons":
            for c, ks in persons.items():
                raw[r, c] = len(ks)
    return raw[:, attrs["cell_perm"]]
