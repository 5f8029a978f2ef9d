"""Stage 6: circuit DAG -> plan file: canonical JSON with a content hash.

Canonical form: keys sorted, no whitespace variation, nodes in id order, floats only where
a value is not integral. The same query and catalog give byte-identical plans everywhere.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING

from insightql.compiler import __version__
from insightql.compiler.plan.ops import FRAC_BITS

if TYPE_CHECKING:  # a party only hashes and reads plans: networkx (~0.1 s to import) is loaded on use
    import networkx as nx

PLAN_FORMAT = "insightql-plan/1"


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def plan_hash(plan: dict) -> str:
    body = {k: v for k, v in plan.items() if k != "hash"}
    return "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()


def _bits(x: float) -> int:
    return math.ceil(math.log2(abs(x) + 1)) + 1


def secure_type(g: nx.DiGraph, max_rows: int) -> dict:
    """Secret integers (MPyC SecInt) big enough for every product the plan forms.

    Every secure value is an integer: counts, sums of scaled decimals, flags, and quotients
    held as round(value * 2**frac). Division multiplies by a secret reciprocal scaled by
    2**recip_bits, so the largest product is a numerator times that reciprocal."""
    value_bits, den_bits = 1, max_rows.bit_length()
    for _, d in g.nodes(data=True):
        if d["placement"] == "secure" or d["placement"].startswith("input:"):
            lo, hi = d["bounds"]
            value_bits = max(value_bits, _bits(max(abs(lo), abs(hi)) * 2 ** d["frac"]))
        if d["op"] in ("div", "variance"):
            den = g.nodes[d["inputs"][1 if d["op"] == "div" else 2]]
            den_bits = max(den_bits, _bits(max(abs(x) for x in den["bounds"]) * 2 ** den["frac"]))
    recip_bits = den_bits + 32
    l = max(2 * recip_bits + 4, value_bits + FRAC_BITS + recip_bits + 4, 64)
    return {"kind": "secint", "l": l, "frac_bits": FRAC_BITS, "recip_bits": recip_bits, "value_bits": value_bits}


def graph_to_nodes(g: nx.DiGraph) -> list[dict]:
    return [{"id": n, **g.nodes[n]} for n in sorted(g.nodes)]


def make_plan(*, cq, policy, builder, source_text: str, source_name: str) -> dict:
    from insightql.compiler.plan.leakage import leakage_report

    cat = cq.catalog
    g = builder.g
    datasets = {d: {"owner": cat.datasets[d].owner} for d in builder.lp.datasets}
    for e in getattr(builder, "guard", None) or []:  # read only to count an earlier release's cells
        for d in e["datasets"]:
            datasets.setdefault(d, {"owner": cat.datasets[d].owner, "guard_only": True})
    parties = cat.computing_parties(datasets)
    output_only = [r for r in policy.receivers if r not in parties]
    plan = {
        "format": PLAN_FORMAT,
        "compiler_version": __version__,
        "catalog_digest": cat.digest(),
        "query": {
            "name": cq.name,
            "description": cq.description,
            "purpose": cq.purpose,
            "source": source_text,
            "source_name": source_name.replace("\\", "/").split("/")[-1],
            "source_sha256": hashlib.sha256(source_text.encode()).hexdigest(),
        },
        "parties": parties,
        "datasets": datasets,
        "receivers": list(policy.receivers),
        **({"output_parties": output_only} if output_only else {}),
        "policy": policy.to_json(),
        "cells": builder.cells,
        "secure_type": secure_type(g, builder.max_rows),
        "nodes": graph_to_nodes(g),
        "leakage": leakage_report(builder, policy, parties),
    }
    if getattr(builder, "guard", None):  # differencing guard: earlier releases compared (compiler/plan/guard.py)
        plan["guard"] = builder.guard
    plan = json.loads(canonical_json(plan))  # normalise tuples, floats
    plan["hash"] = plan_hash(plan)
    return plan


def dump_plan(plan: dict) -> str:
    """Plan file text: canonical JSON, one trailing newline."""
    return canonical_json(plan) + "\n"


def load_plan(text: str) -> dict:
    plan = json.loads(text)
    if plan.get("format") != PLAN_FORMAT:
        raise ValueError(f"not an InsightQL plan (format {plan.get('format')!r}, expected {PLAN_FORMAT!r})")
    if plan.get("hash") != plan_hash(plan):
        raise ValueError("plan hash does not match its content: the plan was modified after compilation")
    return plan
