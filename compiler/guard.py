"""Differencing guard across queries: suppress a cell that differs from an earlier release by
1..k-1 rows.

Two releases A (earlier) and N (new) over the same rows let a receiver subtract them: with
N = A AND NOT <one person>, count_A - count_N = 1 singles that person out, although both counts
are >= k. The guard compares N with every earlier release recorded in a ledger:

* plaintext, at compile time: `select(new, releases)` picks the comparable earlier releases
  (their datasets are a subset of N's; a different WHERE or a different set of datasets) and
  writes them into the plan as `guard` entries (covered by the plan hash);
* locally, at each data owner: a `symdiff` slot of its partials counts, per cell, its rows that
  satisfy exactly one of (N's WHERE, the earlier WHERE), evaluated on today's rows
  (compiler/partials.py);
* in MPC: the counts are summed over the owners like any slot, and a cell is released only if
  every difference is 0 or >= k (`outside_range`, ANDed into the cell's release flag).

Same group keys: cell i is compared with cell i (scope "cell"). Different group keys, or none on
one side: the receiver can only subtract totals, so the total difference over all rows is put in
every cell and, if it is 1..k-1, every cell is suppressed (scope "all").

At run time each party checks its own ledger: every comparable release must be in the plan's
guard (else "stale guard") and every guard entry must be a release it recorded (else the analyst
could probe arbitrary predicates through the guard's signal). See spec/governance.md section 3.
"""
from __future__ import annotations

import hashlib
import json

from .local_eval import ir_type

GUARD_WHY = "differencing guard"


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(obj) -> str:
    return "sha256:" + hashlib.sha256(_canon(obj).encode()).hexdigest()


# -- what a release is, for the guard ------------------------------------------------------------
def signature_of_plan(plan: dict) -> dict:
    """The guard-relevant shape of a plan: datasets, row-level WHERE IR, group keys, k.
    Recorded in each `release` ledger entry (`data.guard_signature`)."""
    part = next((n for n in plan["nodes"] if n["op"] == "partials"), None)
    if part is None:  # a JOIN (compiler/linkage.py): its rows are comparable only with the same join
        return _join_signature(plan)
    return {"query": plan["query"]["name"], "plan_hash": plan["hash"], "datasets": sorted(plan["datasets"]),
            "where": part["attrs"]["where"], "keys": part["attrs"]["keys"],
            "k": plan["policy"]["min_group_size"]}


def _join_signature(plan: dict) -> dict:
    """Guard signature of a JOIN: one pseudo dataset naming the joined pair, so no UNION/single-
    dataset query is ever compared with it; the WHERE of both sides and the join kind together."""
    link = next(n for n in plan["nodes"] if n["op"] == "link_join")
    sides = [n for n in plan["nodes"] if n["op"] == "link_rows"]
    return {"query": plan["query"]["name"], "plan_hash": plan["hash"],
            "datasets": ["join:" + "+".join(n["attrs"]["dataset"] for n in sides)],
            "where": {"join": link["attrs"]["kind"], "sides": [n["attrs"]["where"] for n in sides]},
            "keys": [k for n in sides for k in n["attrs"]["keys"]], "k": plan["policy"]["min_group_size"]}


def _same_rows(a: dict, b: dict) -> bool:
    return a["datasets"] == b["datasets"] and _canon(a["where"]) == _canon(b["where"])


def select(new: dict, releases: list[dict]) -> list[dict]:
    """Guard entries of a new query `new` = {datasets, where, keys, k} against earlier releases.

    `releases` are release signatures (with `keys`) or guard entries of an earlier plan (with
    `scope` and `from`); selecting from a plan's own guard gives that guard again, which is how a
    party recompiles a plan it received. Sorted, one entry per (datasets, WHERE, scope)."""
    keys_digest = digest(new["keys"])
    datasets = sorted(new["datasets"])
    merged: dict[str, dict] = {}
    for r in releases:
        rd = sorted(r["datasets"])
        if not set(rd) <= set(datasets) or _same_rows({"datasets": rd, "where": r["where"]},
                                                     {"datasets": datasets, "where": new["where"]}):
            continue  # other datasets (not comparable), or the same rows: the difference is 0
        scope = r.get("scope") or ("cell" if digest(r["keys"]) == keys_digest else "all")
        origin = r.get("from") or [{"query": r.get("query"), "plan_hash": r.get("plan_hash")}]
        key = _canon([rd, r["where"], scope])
        e = merged.setdefault(key, {"datasets": rd, "where": r["where"], "scope": scope, "k": 0, "from": []})
        e["k"] = max(e["k"], int(r["k"]), int(new["k"]))
        e["from"] = sorted({_canon(o): o for o in e["from"] + origin}.values(), key=_canon)
    return [merged[k] for k in sorted(merged) if merged[k]["k"] > 1]  # k = 1: nothing to protect


def coverage(guard: list[dict], new: dict, releases: list[dict]) -> tuple[list[dict], list[dict]]:
    """(missing, unknown) for a plan's guard against a party's own ledger releases:
    `missing` are comparable releases the guard does not cover (a stale guard); `unknown` are
    guard entries naming a release (plan hash) this ledger does not record with that WHERE."""
    required = select(new, releases)
    have = {_canon([g["datasets"], g["where"], g["scope"]]): g for g in guard}
    missing = []
    for r in required:
        g = have.get(_canon([r["datasets"], r["where"], r["scope"]]))
        known = {o["plan_hash"] for o in (g["from"] if g else [])}
        missing += [o for o in r["from"] if o["plan_hash"] not in known]
    recorded = {(rel["plan_hash"], _canon(rel["where"]), _canon(sorted(rel["datasets"]))) for rel in releases}
    unknown = [o for g in guard for o in g["from"]
               if (o["plan_hash"], _canon(g["where"]), _canon(g["datasets"])) not in recorded]
    return missing, unknown


# -- circuit hooks (called from compiler/circuit.py) ---------------------------------------------
def declare(builder, keys_ir: list[dict]) -> None:
    """Select the guard entries and declare one `symdiff` slot each; the columns the earlier
    predicates read are added to what the owners load."""
    lp = builder.lp
    earlier = getattr(builder, "earlier", None) or []
    new = {"datasets": sorted(lp.datasets), "where": lp.where, "keys": keys_ir, "k": lp.policy.min_group_size}
    builder.guard = select(new, earlier)
    builder.guard_slots = []
    for e in builder.guard:
        _add_column_types(lp, e["where"])
        builder.guard_slots.append(builder.slot("symdiff", e["where"], datasets=e["datasets"], scope=e["scope"]))


def _add_column_types(lp, ir) -> None:
    def walk(x):
        if isinstance(x, dict):
            if "col" in x and x["col"] not in lp.columns:
                lp.columns[x["col"]] = ir_type(x["type"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(ir)


def apply(builder, released: str) -> str:
    """AND the guard's flags into the cell's release flag; keeps `builder.guard_blocked`, the
    cells the guard alone suppressed (revealed so the analyst sees why)."""
    builder.guard_blocked = None
    if not builder.guard:
        return released
    oks = []
    for e, slot in zip(builder.guard, builder.guard_slots):
        oks.append(builder.secure("outside_range", [builder.combined[slot]], 0, 1, low=1, high=e["k"] - 1,
                                  rule="guard.rows", what=e["scope"]))
    ok = oks[0] if len(oks) == 1 else builder.secure("and", oks, 0, 1)
    blocked = builder.secure("and", [released, builder.secure("not", [ok], 0, 1)], 0, 1)
    builder.guard_blocked = blocked
    return builder.secure("and", [released, ok], 0, 1)


def attach_reason(builder) -> None:
    """After the outputs exist: reveal the guard-blocked flag with the others, name it in the table."""
    b = builder.guard_blocked
    if b is None:
        return
    g = builder.g
    reveal = next(n for n, d in g.nodes(data=True) if d["op"] == "reveal")
    table = next(n for n, d in g.nodes(data=True) if d["op"] == "table")
    d = g.nodes[reveal]
    if b not in d["inputs"]:
        d["inputs"].append(b)
        d["shape"] = [len(d["inputs"]), d["shape"][1]]
        g.add_edge(b, reveal)
    g.nodes[table]["attrs"]["guard_blocked"] = b


def leakage_item(plan_guard: list[dict], to: list[str], cells: int) -> dict:
    names = sorted({o["query"] or "?" for e in plan_guard for o in e["from"]})
    return {"item": "guard_outcome", "to": to, "cells": cells,
            "detail": "for each cell, whether the differencing guard alone suppressed it (it had enough rows, but "
                      "differs by 1..k-1 rows from an earlier release of " + ", ".join(names) + "); part of the "
                      "suppression flag"}
