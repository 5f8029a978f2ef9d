"""The leakage report: every value a plan reveals, to whom, and under which protection.

Built from the circuit itself (the reveal node's inputs and the comparison nodes each release
flag depends on), not from the query text, so it cannot disagree with what the runtime opens.
Item kinds and fields follow `leakage_item` in compiler/plan/plan_schema.py.
"""
from __future__ import annotations

from fractions import Fraction

import networkx as nx

from insightql.compiler.check.rules import RULES, condition


def conditions(g: nx.DiGraph, flag: str | None) -> list[str]:
    """Every release condition a flag node is the conjunction of, in plan order, once each:
    `[rule id] the test in words` for each node carrying a rule (compiler/check/rules.py)."""
    if flag is None:
        return []
    nodes = sorted(nx.ancestors(g, flag) | {flag}, key=lambda n: int(n[1:]))
    out = [condition({"op": g.nodes[n]["op"], "attrs": g.nodes[n]["attrs"]}) for n in nodes
           if g.nodes[n]["attrs"].get("rule") in RULES]
    return list(dict.fromkeys(out))


def rule_ids(g: nx.DiGraph, flag: str | None) -> list[str]:
    if flag is None:
        return []
    nodes = nx.ancestors(g, flag) | {flag}
    return sorted({g.nodes[n]["attrs"]["rule"] for n in nodes if g.nodes[n]["attrs"].get("rule") in RULES})


def leakage_report(builder, policy, parties: list[str]) -> list[dict]:
    lp, g = builder.lp, builder.g
    to = list(policy.receivers)
    cells = builder.cells
    table = next(d["attrs"] for _, d in g.nodes(data=True) if d["op"] == "table")
    cell_rule = conditions(g, table["released"])
    items: list[dict] = [{
        "item": "group_domain",
        "to": to,
        "detail": f"{cells} cell(s): every combination of the public GROUP BY domains is listed, "
                  "whether or not any party has rows in it",
        "public": True,
    }, {
        "item": "suppression_flag",
        "to": to,
        "detail": "for each cell, whether it is released: " + " and ".join(cell_rule)
                  + "; a cell with 0 rows looks like any other suppressed cell",
        "cells": cells,
        "rules": rule_ids(g, table["released"]),
    }]
    for o in table["outputs"]:
        if o["kind"] == "key":
            continue
        protections = ["zero unless released"]
        if o.get("dp"):  # spec/privacy.md: noise drawn inside MPC, the value is never revealed exact
            protections.insert(0, "differentially private: " + "; ".join(
                f"discrete Laplace noise (epsilon {d['epsilon']} = {float(Fraction(d['epsilon'])):.6g}, delta {d['delta']}, sensitivity {d['sensitivity']}, "
                f"scale {d['scale']} from each computing party)" for d in o["dp"])
                + "; only the noisy value and flags computed from noisy values are revealed")
        if o["rounded_to"] > 1:
            protections.append(f"rounded down to a multiple of {o['rounded_to']}")
        if o.get("post") == "sqrt":
            protections.append("variance revealed; square root taken after reveal")
        if o.get("pct"):
            within = (" within the cells with the same " + ", ".join(table["keys"][i]["name"] for i in o["pct_by"])
                      if o.get("pct_by") else "")
            protections.append(f"percent of the column's total{within} computed after reveal from the released values only "
                               "(suppressed and withheld cells are not in the total); the values themselves are "
                               "revealed, not only the percents")
        if o.get("round") is not None:
            what = "percent" if o.get("pct") else "full-precision value revealed;"
            protections.append(f"{what} rounded to {o['round']['round']} digit(s) after reveal")
        items.append({"item": "output", "column": o["name"], "to": to, "cells": cells,
                      "detail": "; ".join(protections)})
        own = [c for c in conditions(g, o["flag"]) if c not in cell_rule]
        items.append({"item": "output_flag", "column": o["name"], "to": to, "cells": cells,
                      "detail": "whether this value is released in each cell: "
                                + (" and ".join(["the cell is released", *own]) if o["flag"] else "always (a constant)"),
                      "rules": rule_ids(g, o["flag"])})
    if getattr(builder, "guard", None):
        from insightql.compiler.plan.guard import leakage_item
        items.append(leakage_item(builder.guard, to, cells, getattr(builder, "guard_dominance", False),
                                  bool(getattr(builder, "guard_components", None))))
    if lp.having is not None:
        items.append({"item": "having_outcome", "to": to, "cells": cells,
                      "detail": "for released cells only: whether the HAVING condition holds, evaluated inside MPC on "
                                "the values in the form the receivers get them (0 unless released, counts rounded), "
                                "so the decision depends on nothing the table does not show (the compiler also allows "
                                "only aggregates released with their cell, IQ319, and count bounds that survive "
                                "rounding, IQ320)", "rules": ["having.released"]})
    if getattr(builder, "link_datasets", None):  # record linkage shares per-row vectors (compiler/plan/linkage.py)
        from insightql.compiler.plan.linkage import input_sizes_item, linkage_item
        items.append(input_sizes_item(builder, parties))  # learnt by the computing parties only
        items.append(linkage_item(builder, parties))
        return items
    items.append({"item": "input_sizes", "to": [], "detail": "not revealed: each party shares fixed-size per-cell "
                  "partial aggregates over the public domain, so row counts stay secret", "public": False})
    return items
