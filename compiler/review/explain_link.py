"""`iq explain` of record-linkage plans (compiler/plan/linkage.py, spec/linkage.md): the link ops in
words, their cost (not modelled: it grows with the row counts), and the row counts they reveal."""
from __future__ import annotations

import json

from insightql.compiler.review.explain_expr import expr_text

ALGORITHMS = {"oblivious": "oblivious: shuffle + radix sort; opens only uniformly random permutations",
              "fast": "fast: shuffle + keyed PRF; opens match pattern"}
OPENED = {"oblivious": "sort_comparisons", "fast": "match_pattern"}  # leakage item of each design
SIZE_RULES = {"pow2": "its row count rounded up to a power of two (at least 2k)"}
LINK_COST = {"oblivious": "radix sort of all rows, two key bits per pass (linear in rows x key bits; the time "
                           "estimate counts it)",
             "fast": "shuffle + MiMC tags, linear in the rows"}


def _link_inputs(node: dict, plan: dict) -> list[dict]:
    """The link_rows nodes behind a link_join / link_distinct (through its link_share inputs)."""
    by_id = {n["id"]: n for n in plan["nodes"]}
    return [by_id[by_id[i]["inputs"][0]] for i in node["inputs"]]


def _weight_text(w: dict, sides: list[dict]) -> str:
    if w["kind"] in ("rows", "persons"):
        return {"rows": "joined rows", "persons": "distinct persons (first row of each key and cell)"}[w["kind"]]
    side = next((r for r in sides if r["attrs"]["side"] == w["side"]), None)
    m = next((m for m in side["attrs"]["measures"] if m["name"] == w["field"]), None) if side else None
    return f"{w['kind']}({expr_text(m['arg']) if m else w['field']})"


def describe_link(node: dict, plan: dict) -> str:
    """What a link op does, in words (the `describe` of compiler/review/explain_nodes.py for link_*)."""
    op, a = node["op"], node["attrs"]
    if op == "link_rows":
        lay = a["layout"]
        role = ("" if lay["mode"] != "join" else ", U side (unique key)" if a["side"] == 0 else ", M side")
        keys = " x ".join(str(k["size"]) for k in a["keys"]) or "1"
        meas = ", ".join(expr_text(m["arg"]) + (f" clamp {m['clamp']}" if "clamp" in m else "")
                         for m in a["measures"])
        return (f"{a['dataset']} WHERE {expr_text(a['where'])}; one packed {lay['bits']}-bit integer per row{role}: "
                f"key {a['key_column']}" + (" (declared unique, checked here before sharing)" if a["unique"] else "")
                + f", cell of {keys}" + (f", measures {meas}" if meas else "")
                + ("; rows without a key kept (LEFT JOIN)" if a["keep_unkeyed"] else "")
                + ("; filtered-out rows" if lay["mode"] == "join" else "; filtered-out rows and repeated (cell, key) pairs")
                + " become padding; vector length = "
                + SIZE_RULES.get(a["size_rule"], a["size_rule"]))
    if op == "link_share":
        src = next((n for n in plan["nodes"] if n["id"] in node["inputs"]), None)
        rule = SIZE_RULES.get(src["attrs"]["size_rule"], "") if src and src["op"] == "link_rows" else ""
        return (f"{a['party']} secret-shares its packed rows, one per input row: every party learns the length"
                + (f" ({rule})" if rule else ""))
    if op == "link_join":
        rows = {r["attrs"]["side"]: r["attrs"] for r in _link_inputs(node, plan)}
        u, m = rows.get(0, {}), rows.get(1, {})
        return (f"({ALGORITHMS.get(a['algorithm'], a['algorithm'])}) {a['kind']} join, U={u.get('dataset')} unique "
                f"key {u.get('key_column')}, M={m.get('dataset')} key {m.get('key_column')}; per cell of "
                f"{a['cells_u']} x {a['cells_m']}"
                + (" (unmatched M rows in U's NULL cell)" if a["kind"] == "left" else "") + ": "
                + "; ".join(_weight_text(w, _link_inputs(node, plan)) for w in a["weights"]))
    if op == "link_distinct":
        ds = ", ".join(r["attrs"]["dataset"] for r in _link_inputs(node, plan))
        return (f"({ALGORITHMS.get(a['algorithm'], a['algorithm'])}) COUNT(DISTINCT {a['column']}) across "
                f"{ds}, per cell ({a['cells']} cells)")
    if op == "link_slot":
        src = next((n for n in plan["nodes"] if n["id"] in node["inputs"]), None)
        w = src["attrs"]["weights"][a["row"]] if src and src["op"] == "link_join" else None
        what = f"{_weight_text(w, _link_inputs(src, plan))} per cell" if w else "per-cell sums"
        return f"slot {a['slot']} = {what} (row {a['row']} of {', '.join(node['inputs'])})"
    return json.dumps(a, sort_keys=True)


def link_cost(node: dict) -> str | None:
    """Cost of a link op in words; None where the cost model's line is right (local, link_slot)."""
    if node["op"] == "link_share":
        return "shares one value per row: grows with the row count (not in the per-node counts)"
    if node["op"] in ("link_join", "link_distinct"):
        return ("not in the per-node counts, grows with the row counts (the time estimate includes it): "
                f"{LINK_COST.get(node['attrs'].get('algorithm'), '?')}"
                " (measured: benchmarks/LINKAGE.md)")
    return None


def hidden_inputs(plan: dict) -> str:
    """The 'hidden inputs' rule of a linkage plan: row counts are revealed (leakage item input_sizes)."""
    sizes = list(dict.fromkeys(f"{n['attrs']['dataset']}: {SIZE_RULES.get(n['attrs']['size_rule'], '?')}"
                               for n in plan["nodes"] if n["op"] == "link_rows"))
    links = [n for n in plan["nodes"] if n["op"] in ("link_join", "link_distinct")]
    shares = [n["id"] for n in plan["nodes"] if n["op"] == "link_share"]
    opened = "; ".join(f"node {n['id']} ({ALGORITHMS.get(n['attrs']['algorithm'], '?')}): leakage item "
                       f"{OPENED.get(n['attrs']['algorithm'], '?')}" for n in links)
    return ("NOT hidden for the linked datasets: record linkage shares one packed row per input row (nodes "
            + ", ".join(shares) + "), so every computing party learns each vector's length ("
            + "; ".join(sizes) + "; leakage item input_sizes). What the linkage design opens besides: " + opened
            + ". Which cells an owner has rows in stays secret.")
