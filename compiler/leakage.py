"""The leakage report: every value a plan reveals, to whom, and under which protection.

Built from the circuit itself (the reveal node's inputs), not from the query text, so it
cannot disagree with what the runtime actually opens.
"""
from __future__ import annotations


def leakage_report(builder, policy) -> list[dict]:
    lp = builder.lp
    to = list(policy.receivers)
    k = policy.min_group_size
    cells = builder.cells
    items: list[dict] = [{
        "item": "group_domain",
        "to": to,
        "detail": f"{cells} cell(s): every combination of the public GROUP BY domains is listed, "
                  "whether or not any party has rows in it",
        "public": True,
    }, {
        "item": "suppression_flag",
        "to": to,
        "detail": f"for each cell, whether it has at least k={k} contributing rows"
                  + (" and at least k distinct persons (per organisation)" if lp.person_key else ""),
        "cells": cells,
    }]
    for o in builder.outputs:
        if o["kind"] == "key":
            continue
        protections = [f"suppressed unless released (k={k})"]
        if o["rounded_to"] > 1:
            protections.append(f"rounded down to a multiple of {o['rounded_to']}")
        if o.get("post") == "sqrt":
            protections.append("variance revealed; square root taken after reveal")
        if o.get("round") is not None:
            protections.append(f"full-precision value revealed; rounded to {o['round']['round']} digit(s) after reveal")
        items.append({"item": "output", "column": o["name"], "to": to, "cells": cells,
                      "detail": "; ".join(protections)})
        items.append({"item": "output_flag", "column": o["name"], "to": to, "cells": cells,
                      "detail": "whether this value is released in each cell (cell rule, own-count rule for nullable "
                                "columns, dominance rule for sums, nonzero denominator)"})
    if lp.having is not None:
        items.append({"item": "having_outcome", "to": to, "cells": cells,
                      "detail": "for released cells only: whether the HAVING condition holds"})
    items.append({"item": "input_sizes", "to": [], "detail": "not revealed: each party shares fixed-size per-cell "
                  "partial aggregates over the public domain, so row counts stay secret", "public": False})
    return items
