"""`iq explain` and `iq diff`: a plan for auditors, as text, Graphviz dot or one HTML page.

Everything is read from the plan file itself (nodes, policy, leakage report, hash) plus the
cost model of `cost.py`, so what an auditor reads is what every party will run.
"""
from __future__ import annotations

import difflib
import html
import json
import re

import networkx as nx

from .cost import _kb, cost_line, estimate

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
        return f"x >= {a['const']}  ({a['why']})"
    if op == "outside_range":
        return f"x < {a['low']} or x > {a['high']}  ({a['why']})"
    if op == "compare":
        return f"x {a['relation']} 0"
    if op == "dominance":
        return f"top {a['n']} contributions <= {a['k']}% of the total  ({a['why']})"
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
    if op in ("const", "mul_const"):
        return f"{'constant' if op == 'const' else 'x *'} {a.get('value', a.get('const'))}"
    return {"and": "all flags", "or": "either flag", "not": "1 - flag", "nonzero": "x <> 0", "add": "a + b",
            "sub": "a - b", "neg": "-x", "mul": "a * b"}.get(op, json.dumps(a, sort_keys=True))


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

    def where(*whys: str, ops=()) -> str:
        ids = [n["id"] for n in nodes if n["attrs"].get("why") in whys or n["op"] in ops]
        return f" (nodes {', '.join(ids)})" if ids else ""

    k = pol["min_group_size"]
    rules = [("minimum group size k", f"a cell is released only with at least k={k} rows"
              + (" and k distinct persons per organisation" if pol["distinct_persons"] else "")
              + where("rows >= k", "distinct persons >= k", "distinct keys >= k"))]
    own = where("contributing rows >= k", "rows left out are 0 or >= k")
    rules.append(("own-count rule", "an aggregate over a nullable column needs k contributing rows, and the rows it "
                  "leaves out are 0 or at least k" + own if own else "not needed: no aggregate over a nullable column"))
    dom = pol.get("dominance")
    rules.append(("dominance", f"({dom['n']}, {dom['k']}%) rule: the top {dom['n']} contributors hold at most "
                  f"{dom['k']}% of a released sum{where(ops=('dominance',))}" if dom else "no dataset asks for one"))
    r = pol["round_counts_to"]
    rules.append(("rounding", f"released counts rounded down to a multiple of {r}{where(ops=('round_down',))}"
                  if r > 1 else "counts are exact (no dataset asks for rounding)"))
    rules.append(("group limit", f"{plan['cells']} cell(s), within the limit of {pol['max_groups']}"))
    rules.append(("receivers", f"only {', '.join(plan['receivers'])} receive results; every dataset allows them"
                  + where(ops=("reveal",))))
    rules.append(("purpose", f"declared purpose {plan['query'].get('purpose')!r} is allowed by every dataset read"))
    rules.append(("hidden inputs", "row counts and which cells an owner has rows in are not revealed: shares have "
                  "a fixed shape over the public group domain"))
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
        out.append(f"  {title}")
        for n in by_stage[s]:
            ins = f"  <- {', '.join(n['inputs'])}" if n["inputs"] else ""
            out.append(f"    {n['id']}  {n['placement']:<16} {n['op']}: {describe(n, plan)}{ins}")
            out.append(f"          {node_facts(n)}; cost: {cost_line(cost['nodes'][n['id']])}")
    spread = tot["bytes_spread"]
    out += ["", "estimated cost (compiler/cost.py; spec/plan.md, 'Cost model'):",
            f"  secure multiplications: {tot['mults']} elements; truncations: {tot['truncations']} elements",
            f"  comparisons: {tot['comparisons']} elements, {tot['comparison_bits']} element-bits",
            f"  values shared: {tot['inputs']}; values revealed: {tot['revealed']}",
            f"  communication rounds (critical path): about {tot['rounds']}",
            "  bytes sent per party (expected; MPyC picks resharing parties pseudorandomly, range in brackets):"]
    out += [f"    {p}: {_kb(b)}  [{_kb(spread[p][0])} - {_kb(spread[p][1])}]" for p, b in tot["bytes_per_party"].items()]
    out += ["", "leakage report (everything the receivers learn):"]
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
BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 150, 44, 24, 56, 20


def layout(plan: dict) -> dict[str, tuple[float, float]]:
    """Layered layout: layer = longest path from a source (networkx topological generations),
    nodes in a layer ordered by the mean position of their inputs; returns box top-left corners."""
    g = nx.DiGraph()
    for n in plan["nodes"]:
        g.add_node(n["id"])
        g.add_edges_from((i, n["id"]) for i in n["inputs"])
    level = {nid: i for i, gen in enumerate(nx.topological_generations(g)) for nid in gen}
    for nid in reversed(list(nx.topological_sort(g))):  # constants: just above their first use
        if g.in_degree(nid) == 0 and g.out_degree(nid) and level[nid] == 0 and not _is_load(plan, nid):
            level[nid] = min(level[s] for s in g.successors(nid)) - 1
    layers = [sorted(n for n in level if level[n] == y) for y in range(max(level.values()) + 1)]
    layers = [layer for layer in layers if layer]
    pos_in_layer: dict[str, float] = {}
    width = max(len(layer) for layer in layers)
    out = {}
    for y, layer in enumerate(layers):
        def key(nid):
            preds = [pos_in_layer[p] for p in g.predecessors(nid)]
            return (sum(preds) / len(preds) if preds else 0.0, nid)
        layer.sort(key=key)
        offset = (width - len(layer)) / 2
        for x, nid in enumerate(layer):
            pos_in_layer[nid] = x + offset
            out[nid] = (MARGIN + (x + offset) * (BOX_W + GAP_X), MARGIN + y * (BOX_H + GAP_Y))
    return out


def _is_load(plan: dict, nid: str) -> bool:
    return any(n["id"] == nid and n["op"] == "load" for n in plan["nodes"])


def _svg(plan: dict, cost: dict) -> str:
    pos = layout(plan)
    w = max(x for x, _ in pos.values()) + BOX_W + MARGIN
    h = max(y for _, y in pos.values()) + BOX_H + MARGIN
    e = html.escape
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="dag" width="{w:.0f}" height="{h:.0f}" '
             f'viewBox="0 0 {w:.0f} {h:.0f}" role="img" aria-label="plan DAG">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']
    for n in plan["nodes"]:
        x2, y2 = pos[n["id"]]
        for i in n["inputs"]:
            x1, y1 = pos[i]
            a, b = (x1 + BOX_W / 2, y1 + BOX_H), (x2 + BOX_W / 2, y2)
            mid = (a[1] + b[1]) / 2
            parts.append(f'<path class="edge" data-from="{i}" data-to="{n["id"]}" d="M {a[0]:.1f} {a[1]:.1f} '
                         f'C {a[0]:.1f} {mid:.1f}, {b[0]:.1f} {mid:.1f}, {b[0]:.1f} {b[1]:.1f}" fill="none" '
                         'stroke="#777" stroke-width="1.2" marker-end="url(#arrow)"/>')
    for n in plan["nodes"]:
        x, y = pos[n["id"]]
        s = stage(n["placement"])
        tip = f"{n['id']} {n['op']} at {n['placement']}\n{describe(n, plan)}\n{node_facts(n)}\n" \
              f"cost: {cost_line(cost['nodes'][n['id']])}"
        parts.append(
            f'<a href="#row-{n["id"]}"><g class="node" id="node-{n["id"]}" data-id="{n["id"]}" data-op="{n["op"]}" '
            f'data-placement="{e(n["placement"])}"><title>{e(tip)}</title>'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="7" fill="{COLOURS.get(s, "#fff")}" '
            f'stroke="{STROKES.get(s, "#000")}" stroke-width="1.5"/>'
            f'<text x="{x + BOX_W / 2:.1f}" y="{y + 18:.1f}" text-anchor="middle" font-size="13" '
            f'font-weight="bold">{n["id"]} {e(n["op"])}</text>'
            f'<text x="{x + BOX_W / 2:.1f}" y="{y + 35:.1f}" text-anchor="middle" font-size="11" '
            f'fill="#333">{e(n["placement"])}</text></g></a>')
    parts.append("</svg>")
    return "\n".join(parts)


CSS = """body{font-family:system-ui,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1600px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;
vertical-align:top}th{background:#f2f2f2}pre{background:#f7f7f7;padding:8px;overflow-x:auto}
code{font-size:12px}.swatch{display:inline-block;width:14px;height:14px;border:1px solid #555;margin:0 4px 0 12px;
vertical-align:middle}.dagbox{overflow:auto;border:1px solid #ddd;padding:4px}
tr:target{background:#fff6c0}.ok{color:#1d7a1d;font-weight:bold}.hash{font-family:monospace}"""


def explain_html(plan: dict) -> str:
    """One self-contained page: no scripts, styles or fonts from elsewhere."""
    cost = estimate(plan)
    e = html.escape
    q, tot = plan["query"], cost["totals"]
    legend = "".join(f'<span class="swatch" style="background:{COLOURS[s]}"></span>{e(t.split(":")[0])}'
                     for s, t in STAGES)
    rows = "".join(
        f'<tr id="row-{n["id"]}"><td>{n["id"]}</td><td>{e(n["op"])}</td><td>{e(n["placement"])}</td>'
        f'<td>{e(", ".join(n["inputs"]))}</td><td>{e(node_facts(n))}</td><td>{e(describe(n, plan))}</td>'
        f'<td>{e(cost_line(cost["nodes"][n["id"]]))}</td></tr>' for n in plan["nodes"])
    rules = "".join(f'<li><span class="ok">&#10003;</span> <b>{e(r)}</b>: {e(how)}</li>' for r, how in policy_rules(plan))
    leak = "".join(f"<tr><td>{e(i['item'])}</td><td>{e(i.get('column', ''))}</td><td>{e(', '.join(i['to']) or 'nobody')}"
                   f"</td><td>{e(i['detail'])}</td></tr>" for i in plan["leakage"])
    per_party = "".join(f"<tr><td>{e(p)}</td><td>{_kb(b)}</td><td>{_kb(tot['bytes_spread'][p][0])} - "
                        f"{_kb(tot['bytes_spread'][p][1])}</td></tr>" for p, b in tot["bytes_per_party"].items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Plan {e(q['name'])}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>{CSS}</style></head><body>
<h1>Plan <code>{e(q['name'])}</code> ({e(q['source_name'])})</h1>
<p>Hash <span class="hash" id="plan-hash">{e(plan['hash'])}</span><br>
Format {e(plan['format'])}, compiler {e(plan['compiler_version'])}, catalog <span class="hash">{e(plan['catalog_digest'])}</span><br>
Purpose <b>{e(str(q.get('purpose')))}</b>; parties {e(', '.join(plan['parties']))}; receivers
<b>{e(', '.join(plan['receivers']))}</b>; {plan['cells']} cell(s); MPyC SecInt(l={plan['secure_type']['l']}).</p>
<h2>Query</h2><pre>{e(q['source'])}</pre>
<h2>Circuit</h2><p>Placement:{legend}. Hover a box for its details; click it for its row below.</p>
<div class="dagbox">{_svg(plan, cost)}</div>
<h2>Disclosure rules enforced (all checks passed at compile time)</h2><ul id="policy">{rules}</ul>
<h2>Leakage report</h2><table id="leakage"><tr><th>item</th><th>column</th><th>to</th><th>detail</th></tr>{leak}</table>
<h2>Nodes</h2><table id="nodes"><tr><th>id</th><th>op</th><th>placement</th><th>inputs</th><th>type, shape, bounds</th>
<th>what it does</th><th>estimated cost</th></tr>{rows}</table>
<h2>Estimated cost</h2><p>{tot['mults']} secure multiplications, {tot['comparisons']} comparisons
({tot['comparison_bits']} element-bits), {tot['truncations']} truncations, about {tot['rounds']} rounds.
Bytes sent per party (expected; range when MPyC's pseudorandom choice of resharing parties falls
all one way):</p><table id="cost"><tr><th>party</th><th>expected</th><th>range</th></tr>{per_party}</table>
<p>Plan hash <span class="hash">{e(plan['hash'])}</span></p>
</body></html>
"""


# -- diff -----------------------------------------------------------------------------------
def _ref_stripper(plan: dict):
    """Replace references to node ids inside attributes by the referenced op ('@and'): ids
    shift when a node is added, the references themselves did not change."""
    nodes = {n["id"]: n for n in plan["nodes"]}
    ref = re.compile(r"^n[0-9]{3,}$")

    def strip(v):
        if isinstance(v, str) and ref.match(v) and v in nodes:
            return "@" + nodes[v]["op"]
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items()}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    return strip


def _node_keys(plan: dict) -> tuple[dict, dict]:
    """Per node: (full signature over its inputs' signatures, local signature of itself)."""
    strip = _ref_stripper(plan)
    local, full = {}, {}
    for n in plan["nodes"]:  # nodes are in topological (id) order
        local[n["id"]] = json.dumps([n["op"], n["placement"], n["shape"], n["bounds"], n.get("frac"),
                                     strip(n["attrs"])], sort_keys=True)
        full[n["id"]] = json.dumps([local[n["id"]], [full[i] for i in n["inputs"]]])
    return full, local


def _attr_changes(a: dict, b: dict, prefix="") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if x == y:
            continue
        if isinstance(x, dict) and isinstance(y, dict):
            out += _attr_changes(x, y, f"{prefix}{k}.")
        elif isinstance(x, list) and isinstance(y, list) and all(isinstance(v, dict) for v in x + y):
            xs, ys = [_short(v) for v in x], [_short(v) for v in y]
            out += [f"{prefix}{k} - {v}" for v in xs if v not in ys] + [f"{prefix}{k} + {v}" for v in ys if v not in xs]
        else:
            out.append(f"{prefix}{k}: {_short(x)} -> {_short(y)}")
    return out


def _short(v) -> str:
    if isinstance(v, dict) and "kind" in v and "name" in v:
        if re.match(r"^s[0-9]+$", str(v["name"])):
            return slot_text(v)
        if v["kind"] in ("key", "value"):
            return f"{v['name']} ({v['kind']}{', rounded to ' + str(v['rounded_to']) if v.get('rounded_to', 1) > 1 else ''})"
    s = json.dumps(v, sort_keys=True)
    return s if len(s) <= 80 else s[:77] + "..."


def diff_plans(a: dict, b: dict) -> str:
    """What changed from plan a to plan b, in words."""
    if a.get("hash") == b.get("hash"):
        return f"plans are identical ({a.get('hash')})"
    out = [f"plan {a['query']['name']} {a['hash']}", f"  -> {b['query']['name']} {b['hash']}"]
    qa, qb = a["query"], b["query"]
    if qa["source"] != qb["source"]:
        out += ["", "query source changed:"]
        out += ["  " + line.rstrip("\n") for line in difflib.unified_diff(
            qa["source"].splitlines(), qb["source"].splitlines(), "before", "after", lineterm="")]
    for k in ("name", "purpose", "description", "source_name"):
        if qa.get(k) != qb.get(k):
            out.append(f"query {k}: {qa.get(k)!r} -> {qb.get(k)!r}")
    for k in ("format", "compiler_version", "catalog_digest", "parties", "receivers", "datasets", "cells"):
        if a.get(k) != b.get(k):
            out.append(f"{k}: {_short(a.get(k))} -> {_short(b.get(k))}")
    pol = _attr_changes(a["policy"], b["policy"])
    if pol:
        out += ["", "disclosure policy changed:"] + [f"  {c}" for c in pol]
    st = _attr_changes(a["secure_type"], b["secure_type"])
    if st:
        out.append("secure type: " + "; ".join(st))
    out += _diff_nodes(a, b)
    la, lb = leakage_lines(a), leakage_lines(b)
    if la != lb:
        out += ["", "leakage report changed:"]
        out += [f"  - {x}" for x in la if x not in lb] + [f"  + {x}" for x in lb if x not in la]
    ca, cb = estimate(a)["totals"], estimate(b)["totals"]
    changes = [f"{k} {ca[k]} -> {cb[k]}" for k in ("mults", "comparisons", "comparison_bits", "rounds") if ca[k] != cb[k]]
    ma, mb = max(ca["bytes_per_party"].values()), max(cb["bytes_per_party"].values())
    if round(ma) != round(mb):
        changes.append(f"bytes sent per party (max) {_kb(ma)} -> {_kb(mb)} ({100 * (mb - ma) / max(ma, 1):+.0f}%)")
    if changes:
        out += ["", "estimated cost: " + "; ".join(changes)]
    return "\n".join(out)


def _diff_nodes(a: dict, b: dict) -> list[str]:
    fa, la = _node_keys(a)
    fb, lb = _node_keys(b)
    na, nb = {n["id"]: n for n in a["nodes"]}, {n["id"]: n for n in b["nodes"]}
    left = list(na)
    right = list(nb)
    # exact structural matches, then nodes equal in themselves whose inputs changed
    same, _ = _match(left, right, fa, fb)
    left = [i for i in left if i not in same]
    right = [j for j in right if j not in same.values()]
    moved, _ = _match(left, right, la, lb)
    left = [i for i in left if i not in moved]
    right = [j for j in right if j not in moved.values()]
    by_op = _match(left, right, {i: (na[i]["op"], na[i]["placement"]) for i in left},
                   {j: (nb[j]["op"], nb[j]["placement"]) for j in right})[0]
    out = []
    if left or right or moved:
        out += ["", f"circuit: {len(a['nodes'])} -> {len(b['nodes'])} nodes, {len(same)} unchanged"]
    sa, sb = _ref_stripper(a), _ref_stripper(b)
    for i, j in by_op.items():
        x, y = na[i], nb[j]
        changes = _attr_changes({"shape": x["shape"], "bounds": x["bounds"], "frac": x.get("frac"), **sa(x["attrs"])},
                                {"shape": y["shape"], "bounds": y["bounds"], "frac": y.get("frac"), **sb(y["attrs"])})
        out.append(f"  ~ {x['op']} at {x['placement']} ({i} -> {j}): " + ("; ".join(changes) or "inputs changed"))
    for i in left:
        if i not in by_op:
            out.append(f"  - removed {na[i]['op']} at {na[i]['placement']} ({i}): {describe(na[i], a)}")
    for j in right:
        if j not in by_op.values():
            out.append(f"  + added {nb[j]['op']} at {nb[j]['placement']} ({j}): {describe(nb[j], b)}")
    if moved:
        out.append(f"  {len(moved)} node(s) unchanged in themselves but computed from changed inputs: "
                   + ", ".join(f"{na[i]['op']} {i}->{j}" for i, j in moved.items()))
    return out


def _match(left: list[str], right: list[str], ka: dict, kb: dict) -> tuple[dict[str, str], int]:
    """Pair nodes of a and b with equal keys, in order."""
    pool: dict = {}
    for j in right:
        pool.setdefault(kb[j], []).append(j)
    pairs = {}
    for i in left:
        if pool.get(ka[i]):
            pairs[i] = pool[ka[i]].pop(0)
    return pairs, len(pairs)
