"""`iq explain` and `iq diff`: a plan for auditors, as text, Graphviz dot or one HTML page.

Everything is read from the plan file itself (nodes, policy, leakage report, hash) plus the
cost model of `cost.py`, so what an auditor reads is what every party will run.
"""
from __future__ import annotations

from insightql.compiler.review.cost import _kb, estimate
from insightql.compiler.review.explain_html import explain_html
from insightql.compiler.review.explain_nodes import COLOURS, STAGES, STROKES, describe, leakage_lines, node_cost, node_facts, policy_rules, stage
from insightql.compiler.review.plan_diff import diff_plans
from insightql.compiler.review.timing import estimate_seconds, time_line

__all__ = ["explain_text", "explain_dot", "explain_html", "explain_json", "diff_plans"]


def explain_json(plan: dict, rows: dict[str, int] | None = None) -> str:
    """What the text and the page say, for tools: the same words per node, rules, leakage, cost, time."""
    import json

    cost = estimate(plan)
    return json.dumps({
        "plan_hash": plan["hash"], "query": plan["query"]["name"], "source_name": plan["query"]["source_name"],
        "computing_parties": plan["parties"], "output_parties": plan.get("output_parties", []),
        "receivers": plan["receivers"], "cells": plan["cells"],
        "policy_rules": [{"rule": r, "how": how} for r, how in policy_rules(plan)],
        "nodes": [{"id": n["id"], "op": n["op"], "placement": n["placement"], "inputs": n["inputs"],
                   "does": describe(n, plan), "facts": node_facts(n), "cost": node_cost(n, cost)}
                  for n in plan["nodes"]],
        "leakage": plan["leakage"], "cost": cost["totals"],
        "time": None if rows is None else estimate_seconds(plan, rows, cost),
    }, indent=2, sort_keys=True)


# -- text -----------------------------------------------------------------------------------
def explain_text(plan: dict, rows: dict[str, int] | None = None) -> str:
    """`rows`: each dataset's row count or max_rows bound (the catalog's), for the time estimate."""
    cost = estimate(plan)
    q, st, tot = plan["query"], plan["secure_type"], cost["totals"]
    out = [f"plan {q['name']} ({q['source_name']})",
           f"hash {plan['hash']}",
           f"format {plan['format']}, compiler {plan['compiler_version']}, catalog {plan['catalog_digest']}",
           f"purpose: {q.get('purpose')}" + (f"; {q['description']}" if q.get("description") else ""),
           f"computing parties: {', '.join(plan['parties'])} ({cost['parties']} parties, Shamir threshold t={cost['threshold']})",
           "datasets: " + ", ".join(f"{d} (owner {v['owner']})" for d, v in plan["datasets"].items()),
           f"receivers: {', '.join(plan['receivers'])}"
           + (f" ({', '.join(plan['output_parties'])} output only: they do not compute and receive the computing "
              "parties' shares of the result)" if plan.get("output_parties") else ""),
           f"cells: {plan['cells']} (every combination of the public GROUP BY domains)",
           f"secure type: MPyC SecInt(l={st['l']}); quotients with {st['frac_bits']} fractional bits, "
           f"reciprocals with {st['recip_bits']} bits", "", "query:"]
    out += ["  " + line for line in q["source"].rstrip("\n").splitlines()]
    out += ["", "disclosure policy enforced by this plan:"]
    out += [f"  - {rule}: {how}" for rule, how in policy_rules(plan)]
    out += ["", "circuit, stage by stage (id  placement  op: what it does  <- inputs):"]
    by_stage = {s: [n for n in plan["nodes"] if stage(n["placement"]) == s] for s, _ in STAGES}
    for s, title in STAGES:
        if not by_stage[s]:
            continue
        if s == "input" and any(n["op"] == "link_share" for n in by_stage[s]):
            title = ("secret sharing: fixed-size matrices; record linkage: one packed row per input row "
                     "(the length is known to every party)")
        out.append(f"  {title}")
        for n in by_stage[s]:
            ins = f"  <- {', '.join(n['inputs'])}" if n["inputs"] else ""
            out.append(f"    {n['id']}  {n['placement']:<16} {n['op']}: {describe(n, plan)}{ins}")
            out.append(f"          {node_facts(n)}; cost: {node_cost(n, cost)}")
    spread = tot["bytes_spread"]
    out += ["", "estimated cost (compiler/review/cost.py; spec/plan.md, 'Cost model'):",
            f"  secure multiplications: {tot['mults']} elements; truncations: {tot['truncations']} elements",
            f"  comparisons: {tot['comparisons']} elements, {tot['comparison_bits']} element-bits",
            f"  values shared: {tot['inputs']}; values revealed: {tot['revealed']}",
            f"  communication rounds (critical path): about {tot['rounds']}",
            "  bytes sent per party (expected; MPyC picks resharing parties pseudorandomly, range in brackets):"]
    out += [f"    {p}: {_kb(b)}  [{_kb(spread[p][0])} - {_kb(spread[p][1])}]" for p, b in tot["bytes_per_party"].items()]
    links = [n["id"] for n in plan["nodes"] if n["op"] in ("link_share", "link_join", "link_distinct")]
    if links:
        out.append(f"  not included above: record linkage (nodes {', '.join(links)}), whose cost grows with the "
                   "row counts (benchmarks/LINKAGE.md); the time estimate below includes it")
    if rows is not None:
        out.append("  " + time_line(estimate_seconds(plan, rows, cost)))
    else:
        out.append("  estimated time: needs each dataset's row bound (explain the .iq file, or a plan file "
                   "with --catalog)")
    out += ["", "leakage report (everything the receivers learn" + (", and what every computing party learns)"
                                                                    if links else ")") + ":"]
    out += [f"  - {line}" for line in leakage_lines(plan)]
    out += ["", f"plan hash: {plan['hash']}"]
    return "\n".join(out)


# -- dot ------------------------------------------------------------------------------------
def _dq(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def explain_dot(plan: dict) -> str:
    """Graphviz: one cluster per data owner (local steps and its share), one for the secure
    computation, one for the reveal and public steps."""
    groups: dict[str, list[dict]] = {}
    for n in plan["nodes"]:
        place = n["placement"]
        key = f"party {place.split(':', 1)[1]}" if ":" in place else ("secure" if place == "secure" else "output")
        groups.setdefault(key, []).append(n)
    out = ["digraph plan {", f"  label={_dq(plan['query']['name'] + '  ' + plan['hash'])}; labelloc=t;",
           "  rankdir=TB; node [shape=box, style=\"rounded,filled\", fontname=Helvetica, fontsize=10];"]
    titles = {"secure": "secure computation (all parties, on shares)", "output": "reveal and public post-processing"}
    for i, (key, nodes) in enumerate(groups.items()):
        out.append(f"  subgraph cluster_{i} {{")
        out.append(f"    label={_dq(titles.get(key, key + ': plaintext, own rows'))}; style=dashed;")
        for n in nodes:
            s = stage(n["placement"])
            label = f"{n['id']} {n['op']}\n{n['placement']}\n{node_facts(n)}"
            out.append(f"    {n['id']} [label={_dq(label)}, fillcolor={_dq(COLOURS.get(s, '#ffffff'))}, "
                       f"color={_dq(STROKES.get(s, '#000000'))}, tooltip={_dq(describe(n, plan))}];")
        out.append("  }")
    for n in plan["nodes"]:
        out += [f"  {i} -> {n['id']};" for i in n["inputs"]]
    return "\n".join(out + ["}"])
