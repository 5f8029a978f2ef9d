"""Plaintext reference executor of a plan: a TEST ORACLE, never used for real runs.

It runs the same plan nodes as the MPC runtime, but on pooled plaintext data, so differential
tests can compare the two. Any run on real data goes through the runtime's MPyC parties.
"""
from __future__ import annotations

import numpy as np

from .local_eval import Table
from .partials import compute_partials, linear_matrix, slot_rows
from .results import ResultTable, assemble


def _flag(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def secure_op_plain(node: dict, args: list, parts: dict[str, np.ndarray], plan_nodes: dict) -> np.ndarray:
    """The meaning of every secure op, on plaintext numbers."""
    op, a = node["op"], node["attrs"]
    if op == "combine":
        share0 = plan_nodes[node["inputs"][0]]
        rows = slot_rows(plan_nodes[share0["inputs"][0]]["attrs"]["slots"])[a["slot"]]
        blocks = [parts[i][rows[0]:rows[1]] for i in node["inputs"]]
        if a["how"] in ("sum", "total"):
            out = sum(b.astype(object) for b in blocks)
            if a["how"] == "total":
                return out.sum(axis=0)
            return out if out.shape[0] > 1 else out[0]
        if a["how"] == "max":
            return np.max(np.stack([b[0] for b in blocks]), axis=0).astype(object)
        return np.min(np.stack([b[0] for b in blocks]), axis=0).astype(object)
    if op == "ge_const":
        return _flag(args[0] >= a["const"])
    if op == "outside_range":
        return _flag((args[0] < a["low"]) | (args[0] > a["high"]))
    if op == "and":
        out = args[0]
        for x in args[1:]:
            out = out * x
        return _flag(out)
    if op == "or":
        return _flag(args[0] + args[1] - args[0] * args[1])
    if op == "not":
        return _flag(1 - args[0])
    if op == "add":
        return args[0] + args[1]
    if op == "sub":
        return args[0] - args[1]
    if op == "neg":
        return -args[0]
    if op == "mul":
        return args[0] * args[1]
    if op == "mul_const":
        return args[0] * a["const"]
    if op == "const":
        return np.full(plan_nodes[node["id"]]["shape"][0], a["value"], dtype=object)
    if op == "nonzero":
        return _flag(args[0] != 0)
    if op == "div":
        guard = np.asarray(args[2] if len(args) > 2 else 1)
        den = np.where(guard == 1, args[1], 1).astype(float)
        den = np.where(den == 0, 1, den)
        return np.asarray(args[0], dtype=float) / den
    if op == "variance":
        s, sq, n = (np.asarray(x, dtype=float) for x in args[:3])
        guard = np.asarray(args[3]) if len(args) > 3 else 1
        n = np.where(guard == 1, n, 2)
        return (sq - s * (s / n)) / (n - 1)
    if op == "median":
        hist, cnt = args
        cum = np.cumsum(np.asarray(hist, dtype=np.int64), axis=0)
        idx = (2 * cum < np.asarray(cnt, dtype=np.int64)[None, :]).sum(axis=0)
        return a["lo_value"] + idx
    if op == "dominance":
        return _flag(100 * np.asarray(args[0], dtype=object) <= a["k"] * np.asarray(args[1], dtype=object))
    if op == "mask":
        return args[0] * args[1]
    if op == "linear":
        m = linear_matrix(a, plan_nodes[node["inputs"][0]]["shape"][0]).astype(object)
        return np.asarray(args[0], dtype=object) @ m
    if op == "round_down":
        v = np.asarray(args[0], dtype=object)
        return v - v % a["to"]
    if op == "compare":
        d = np.asarray(args[0], dtype=float)
        return _flag({"=": d == 0, "<>": d != 0, "<": d < 0, "<=": d <= 0, ">": d > 0, ">=": d >= 0}[a["relation"]])
    raise AssertionError(f"unknown secure op {op}")


def secure_inputs(node: dict) -> list[str]:
    """Inputs of a secure node, including its guard (a flag that makes a divisor safe)."""
    ins = list(node["inputs"])
    if node["op"] in ("div", "variance") and node["attrs"].get("guard"):
        ins.append(node["attrs"]["guard"])
    return ins


def run_plan_plaintext(plan: dict, tables: dict[str, tuple[Table, int]]) -> ResultTable:
    """Execute a plan on plaintext tables {dataset or load node id: (columns, row count)}."""
    nodes = {n["id"]: n for n in plan["nodes"]}
    values: dict[str, object] = {}
    for n in plan["nodes"]:
        op = n["op"]
        if op == "load":  # by node: a dataset may be read twice with other column types (the guard)
            values[n["id"]] = tables.get(n["id"]) or tables[n["attrs"]["dataset"]]
        elif op == "partials":
            table, count = values[n["inputs"][0]]
            values[n["id"]] = compute_partials(n["attrs"], table, count)
        elif op == "share":
            values[n["id"]] = values[n["inputs"][0]]
        elif op == "reveal":
            values[n["id"]] = {i: [float(x) for x in np.asarray(values[i], dtype=float)] for i in n["inputs"]}
        elif op == "table":
            return assemble(plan, values[n["inputs"][0]])
        elif op.startswith("link_"):  # record linkage (compiler/linkage_local.py)
            values[n["id"]] = _link_plain(n, values)
        else:
            if op == "combine":
                values[n["id"]] = secure_op_plain(n, [], values, nodes)
            else:
                args = [values[i] for i in secure_inputs(n)]
                values[n["id"]] = secure_op_plain(n, args, values, nodes)
    raise AssertionError("plan has no table node")


def _link_plain(n: dict, values: dict):
    """Plaintext meaning of the record-linkage ops (the same packed vectors the owners share)."""
    from .linkage_local import distinct_plain, join_plain, link_rows

    op, a = n["op"], n["attrs"]
    if op == "link_rows":
        table, count = values[n["inputs"][0]]
        return link_rows(a, table, count)
    if op == "link_share":
        return values[n["inputs"][0]]
    if op == "link_distinct":
        return distinct_plain(a, [values[i] for i in n["inputs"]])
    if op == "link_join":
        return join_plain(a, values[n["inputs"][0]], values[n["inputs"][1]])
    if op == "link_slot":
        return values[n["inputs"][0]][a["row"]]
    raise AssertionError(f"unknown link op {op}")
