"""A plan's nodes and policy in words, shared by every renderer of `iq explain` (text, dot, html)
and by `iq diff`: the stage table and its colours, what each node does, its facts and cost line,
the disclosure rules the plan enforces, the leakage report. Record-linkage nodes: explain_link.py.
"""
from __future__ import annotations

import json

from .cost import cost_line
from .explain_expr import expr_text, slot_text
from .explain_link import describe_link, hidden_inputs, link_cost
from .rules import RULES, condition

STAGES = [("local", "local steps: plaintext, each data owner on its own rows"),
          ("input", "secret sharing: each owner shares a fixed-size matrix"),
          ("secure", "secure computation: on secret shares, all parties together"),
          ("reveal", "reveal: the only values that leave MPC"),
          ("public", "public: post-processing of revealed values")]
COLOURS = {"local": "#d8efd0", "input": "#fbeab0", "secure": "#d4e3f7", "reveal": "#f8d0c8", "public": "#e4e4e4"}
STROKES = {"local": "#4d8a3c", "input": "#b08a12", "secure": "#3467a8", "reveal": "#b0402a", "public": "#777777"}


def stage(placement: str) -> str:
    return placement.split(":")[0]


def _slots(plan: dict) -> dict:
    for n in plan["nodes"]:
        if n["op"] == "partials":
            return {s["name"]: s for s in n["attrs"]["slots"]}
    return {}


def describe(node: dict, plan: dict) -> str:
    """What one node does, in a few words."""
    op, a = node["op"], node["attrs"]
    if op.startswith("link_"):
        return describe_link(node, plan)
    if op == "load":
        return f"reads {a['dataset']}: columns {', '.join(a['columns'])}"
    if op == "partials":
        return (f"{a['dataset']} WHERE {expr_text(a['where'])}; per cell of "
                f"{' x '.join(str(k['size']) for k in a['keys']) or '1'}: "
                + "; ".join(slot_text(s) for s in a["slots"]))
    if op == "share":
        return f"{a['party']} secret-shares its partials (slots x cells)"
    if op == "combine":
        s = _slots(plan).get(a["slot"])
        return f"{a['how']} over parties of {slot_text(s) if s else a['slot']}"
    if op == "ge_const":
        return f"x >= {a['const']}  ({condition(node)})"
    if op == "outside_range":
        return f"x < {a['low']} or x > {a['high']}  ({condition(node)})"
    if op == "compare":
        return f"x {a['relation']} 0"
    if op == "dominance":
        return f"top {a['n']} contributions <= {a['k']}% of the total  ({condition(node)})"
    if op in ("div", "variance"):
        return f"{'quotient' if op == 'div' else 'sample variance'}, divisor made safe by flag {a.get('guard')}"
    if op == "median":
        return f"lower median from the histogram, values from {a['lo_value']}"
    if op == "round_down":
        return f"round down to a multiple of {a['to']}"
    if op == "reveal":
        return f"opens {len(node['inputs'])} vector(s) to {', '.join(a['to'])}"
    if op == "table":
        outs = ", ".join(o["name"] for o in a["outputs"])
        tail = f"; HAVING flag {a['keep']}" if a.get("keep") else ""
        tail += f"; ORDER BY {a['order_by']}" if a.get("order_by") else ""
        tail += f"; LIMIT {a['limit']}" if a.get("limit") is not None else ""
        return f"result columns {outs}; cells without flag {a['released']} marked suppressed{tail}"
    if op == "mask":
        return "value x release flag (0 where suppressed)"
    if op == "linear":
        return f"public linear map: {len(a['pairs'])} term(s) into {a['size']} value(s)"
    if op in ("const", "mul_const"):
        return f"{'constant' if op == 'const' else 'x *'} {a.get('value', a.get('const'))}"
    return {"and": "all flags", "or": "either flag", "not": "1 - flag", "nonzero": "x <> 0", "add": "a + b",
            "sub": "a - b", "neg": "-x", "mul": "a * b"}.get(op, json.dumps(a, sort_keys=True))


def node_cost(node: dict, cost: dict) -> str:
    """The cost line of a node; record linkage grows with row counts the plan does not know."""
    if node["op"].startswith("link_"):
        return link_cost(node) or cost_line(cost["nodes"][node["id"]])
    return cost_line(cost["nodes"][node["id"]])


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def node_facts(node: dict) -> str:
    lo, hi = node["bounds"]
    facts = f"shape {node['shape']}"
    if node["placement"] == "secure" or stage(node["placement"]) == "input":
        facts += f", values in [{_fmt(lo)}, {_fmt(hi)}]"
    if node.get("frac"):
        facts += f", {node['frac']} fractional bits"
    return facts


# -- policy ---------------------------------------------------------------------------------
def policy_rules(plan: dict) -> list[tuple[str, str]]:
    """(rule, how the plan enforces it): the disclosure checks this plan passed."""
    pol, nodes = plan["policy"], plan["nodes"]

    def where(*rules: str, ops=()) -> str:
        ids = [n["id"] for n in nodes if n["attrs"].get("rule") in rules or n["op"] in ops]
        return f" (nodes {', '.join(ids)})" if ids else ""

    def cited(*rules: str) -> str:
        used = [r for r in rules if any(n["attrs"].get("rule") == r for n in nodes)]
        return " [" + ", ".join(used) + "]" if used else ""

    k = pol["min_group_size"]
    persons = " and k distinct persons (cell.persons: " + ", ".join(sorted(
        {RULES["cell.persons"].condition(n["attrs"]) for n in nodes if n["attrs"].get("rule") == "cell.persons"}
    )) + ")" if pol["distinct_persons"] else ""
    rules = [("minimum group size k", f"a cell is released only with at least k={k} rows" + persons
              + cited("cell.rows", "cell.persons", "source.once") + where("cell.rows", "cell.persons", "source.once"))]
    obs = sorted({", ".join(n["attrs"]["who"]) for n in nodes if n["attrs"].get("rule") == "observer.rows"})
    rules.append(("observer's complement", "the rows not held by " + "; not held by ".join(obs) + " are at least k "
                  "(and hold k persons)" + cited("observer.rows", "observer.persons") + where("observer.rows", "observer.persons")
                  if obs else "not needed: no observer holds only part of the data read"))
    own = where("values.rows", "values.left_out")
    rules.append(("own-count rule", "an aggregate over a nullable column needs k contributing rows, and the rows it "
                  "leaves out are 0 or at least k, in the cell and in every observer's complement"
                  + cited("values.rows", "values.left_out") + own if own
                  else "not needed: no aggregate over a nullable column"))
    pairs = where("counts.pair")
    if pairs:
        rules.append(("two counts of one cell", "counts the query reveals differ by 0 or at least k [counts.pair]"
                      + pairs))
    dom = pol.get("dominance")
    rules.append(("dominance", f"({dom['n']}, {dom['k']}%) rule per person: the top {dom['n']} contributors hold at "
                  f"most {dom['k']}% of a released sum [sum.dominance]{where(ops=('dominance',))}" if dom
                  else "no dataset asks for one"))
    r = pol["round_counts_to"]
    rules.append(("rounding", f"released counts rounded down to a multiple of {r}{where(ops=('round_down',))}"
                  if r > 1 else "counts are exact (no dataset asks for rounding)"))
    rules.append(("group limit", f"{plan['cells']} cell(s), within the limit of {pol['max_groups']}"))
    rules.append(("receivers", f"only {', '.join(plan['receivers'])} receive results; every dataset allows them"
                  + where(ops=("reveal",))))
    rules.append(("purpose", f"declared purpose {plan['query'].get('purpose')!r} is allowed by every dataset read"))
    if any(n["op"].startswith("link_") for n in nodes):
        rules.append(("hidden inputs", hidden_inputs(plan)))
    else:
        rules.append(("hidden inputs", "row counts and which cells an owner has rows in are not revealed: shares "
                      "have a fixed shape over the public group domain"))
    return rules


def leakage_lines(plan: dict) -> list[str]:
    out = []
    for item in plan["leakage"]:
        col = f" {item['column']}" if "column" in item else ""
        to = ", ".join(item["to"]) or "nobody"
        out.append(f"{item['item']}{col} -> {to}: {item['detail']}")
    return out
