"""`iq explain` and `iq diff`: a plan for auditors, as text, Graphviz dot or one HTML page.

Everything is read from the plan file itself (nodes, policy, leakage report, hash) plus the
cost model of `cost.py`, so what an auditor reads is what every party will run.
"""
from __future__ import annotations

import json


from .cost import _kb, cost_line, estimate
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


# -- describing nodes -----------------------------------------------------------------------
def expr_text(e) -> str:
    """A plan expression IR back in query-like syntax."""
    if e is None:
        return "TRUE"
    if "col" in e:
        return e["col"]
    if "lit" in e:
        v = e["lit"]
        dom = e.get("type", {}).get("domain")
        return repr(dom[v]) if dom and isinstance(v, int) and 0 <= v < len(dom) else json.dumps(v)
    if "fn" in e:
        args = [expr_text(a) if a is not None else json.dumps(c) for a, c in zip(e["args"], e.get("consts", []))]
        return f"{e['fn']}({', '.join(args)})"
    op, args = e.get("op"), e.get("args", [])
    if op == "case":
        whens = " ".join(f"WHEN {expr_text(c)} THEN {expr_text(v)}" for c, v in e["whens"])
        return f"CASE {whens}" + (f" ELSE {expr_text(e['else'])}" if e.get("else") else "") + " END"
    if op in ("not", "neg", "is_null"):
        inner = expr_text(args[0])
        return {"not": f"NOT ({inner})", "neg": f"-{inner}", "is_null": f"{inner} IS NULL"}[op]
    if op == "in":
        return f"{expr_text(args[0])} IN ({', '.join(expr_text(a) for a in args[1:])})"
    return "(" + f" {op.upper() if op in ('and', 'or') else op} ".join(expr_text(a) for a in args) + ")"


def slot_text(s: dict) -> str:
    arg = f"({expr_text(s['arg'])})" if "arg" in s else f"({s['column']})" if "column" in s else ""
    extra = f", clamp {s['clamp']}" if "clamp" in s else ""
    extra += f", top {s['n']}" if s["kind"] == "top" else ""
    extra += f", {s['size']} bins from {s['lo']}" if s["kind"] == "hist" else ""
    return f"{s['name']} {s['kind']}{arg}{extra}"


def _slots(plan: dict) -> dict:
    for n in plan["nodes"]:
        if n["op"] == "partials":
            return {s["name"]: s for s in n["attrs"]["slots"]}
    return {}


def describe(node: dict, plan: dict) -> str:
    """What one node does, in a few words."""
    op, a = node["op"], node["attrs"]
    if op.startswith("link_"):
        from .explain_link import describe_link
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
        from .explain_link import link_cost
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
        from .explain_link import hidden_inputs
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


# -- text -----------------------------------------------------------------------------------
def explain_text(plan: dict) -> str:
    cost = estimate(plan)
    q, st, tot = plan["query"], plan["secure_type"], cost["totals"]
    out = [f"plan {q['name']} ({q['source_name']})",
           f"hash {plan['hash']}",
           f"format {plan['format']}, compiler {plan['compiler_version']}, catalog {plan['catalog_digest']}",
           f"purpose: {q.get('purpose')}" + (f"; {q['description']}" if q.get("description") else ""),
           f"parties: {', '.join(plan['parties'])} ({cost['parties']} parties, Shamir threshold t={cost['threshold']})",
           "datasets: " + ", ".join(f"{d} (owner {v['owner']})" for d, v in plan["datasets"].items()),
           f"receivers: {', '.join(plan['receivers'])}",
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
    out += ["", "estimated cost (compiler/cost.py; spec/plan.md, 'Cost model'):",
            f"  secure multiplications: {tot['mults']} elements; truncations: {tot['truncations']} elements",
            f"  comparisons: {tot['comparisons']} elements, {tot['comparison_bits']} element-bits",
            f"  values shared: {tot['inputs']}; values revealed: {tot['revealed']}",
            f"  communication rounds (critical path): about {tot['rounds']}",
            "  bytes sent per party (expected; MPyC picks resharing parties pseudorandomly, range in brackets):"]
    out += [f"    {p}: {_kb(b)}  [{_kb(spread[p][0])} - {_kb(spread[p][1])}]" for p, b in tot["bytes_per_party"].items()]
    links = [n["id"] for n in plan["nodes"] if n["op"] in ("link_share", "link_join", "link_distinct")]
    if links:
        out.append(f"  not included: record linkage (nodes {', '.join(links)}), whose cost grows with the row "
                   "counts (benchmarks/LINKAGE.md)")
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


# -- html -----------------------------------------------------------------------------------


def explain_html(plan: dict) -> str:
    from .explain_html import explain_html as render
    return render(plan)


def diff_plans(a: dict, b: dict) -> str:
    from .plan_diff import diff_plans as diff
    return diff(a, b)
