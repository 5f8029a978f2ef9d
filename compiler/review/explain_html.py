"""`iq explain --format html`: one self-contained page for auditors (inline SVG, no scripts,
no outside files): the DAG by stage, each node's placement, type and cost, the policy checks,
the leakage report and the hash."""
from __future__ import annotations

import html

import networkx as nx

from insightql.compiler.review.cost import _kb, estimate
from insightql.compiler.review.explain_nodes import COLOURS, STAGES, STROKES, describe, node_cost, node_facts, policy_rules, stage

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
              f"cost: {node_cost(n, cost)}"
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
tr:target{background:#fff6c0}.ok{color:#1d7a1d;font-weight:bold}.hash{font-family:monospace}
.warn{background:#fff3cd;color:#6b4e00}#summary{border:2px solid #444;padding:4px 12px;margin:8px 0}"""


GLOSSARY = "".join(f"<dt><b>{t}</b></dt><dd>{d}</dd>" for t, d in [
    ("secret sharing", "each value is split into random-looking shares, one per computing party; fewer than "
                       "t + 1 shares together say nothing about the value"),
    ("computing party", "an organisation whose process computes on shares (the owners of the data read, plus "
                        "helpers); t = (m - 1) // 2 of m computing parties may pool what they see and learn "
                        "nothing beyond the leakage report"),
    ("helper", "a computing party that holds no data, so that two organisations are not alone"),
    ("receiver", "an organisation that gets the result table; an output-only receiver gets it without computing"),
    ("reveal", "the one step where values leave MPC: only the vectors the plan lists, only to the receivers"),
    ("suppressed cell", "a cell whose values are withheld inside MPC because a disclosure rule failed; it is "
                        "shown as suppressed, never dropped"),
    ("leakage report", "every value the plan lets anyone learn, and who learns it"),
    ("differencing guard", "the comparison with earlier releases, so that two results cannot be subtracted to "
                           "single out a small group"),
    ("record linkage", "finding the same person in several organisations' rows by a pseudonymous key, "
                       "inside MPC"),
])


def summary_html(plan: dict, rows: dict[str, int] | None = None, cost: dict | None = None) -> str:
    """The page's first section, in plain words: who receives what, what every party learns (a party
    that learns something without receiving the result is a warning, never a check mark), which
    rules guard which output, the caps on values, and the estimated time."""
    from insightql.compiler.review.timing import estimate_seconds, time_line

    e = html.escape
    table = next(n for n in plan["nodes"] if n["op"] == "table")["attrs"]
    values = [o for o in table["outputs"] if o["kind"] == "value"]
    receivers = ", ".join(plan["receivers"])
    items = [f"<li><b>{e(receivers)}</b> receive {len(values)} value column(s) "
             f"({e(', '.join(o['name'] for o in values))}) in {plan['cells']} cell(s); suppressed cells are shown "
             "as suppressed.</li>"]
    for party in list(plan["parties"]) + list(plan.get("output_parties", [])):
        learnt = [i for i in plan["leakage"] if party in i.get("to", [])]
        beyond = [i for i in learnt if party not in plan["receivers"] or i["item"] in ("input_sizes", "sort_comparisons",
                                                                                         "match_pattern")]
        role = "computes and receives" if party in plan["receivers"] and party in plan["parties"] else \
            "receives without computing" if party not in plan["parties"] else "computes, receives nothing"
        if beyond:
            what = ", ".join(dict.fromkeys(i["item"] for i in beyond))
            items.append(f'<li class="warn">&#9888; <b>{e(party)}</b> ({role}) also learns {e(what)} '
                         f'(leakage report below)</li>')
        else:
            items.append(f"<li><b>{e(party)}</b> ({role}) learns "
                         + ("the result only" if party in plan["receivers"] else "nothing: it sees only shares")
                         + ".</li>")
    flags = {i["column"]: i.get("rules", []) for i in plan["leakage"] if i["item"] == "output_flag"}
    guards = "".join(f"<li><b>{e(o['name'])}</b>: {e(', '.join(flags.get(o['name'], [])) or 'always released')}"
                     f"; values within [{e(str(o['type'].get('lo')))}, {e(str(o['type'].get('hi')))}]</li>"
                     for o in values)
    timing = (time_line(estimate_seconds(plan, rows, cost)) if rows is not None else
              "estimated time: give the catalog (iq explain query.iq) for a bound")
    return (f'<section id="summary"><h2>Summary</h2><ul>{"".join(items)}</ul><h3>Rules per output, caps on values'
            f'</h3><ul>{guards}</ul><p>{e(timing)}</p></section>')


def explain_html(plan: dict, row_counts: dict[str, int] | None = None) -> str:
    """One self-contained page: no scripts, styles or fonts from elsewhere."""
    cost = estimate(plan)
    e = html.escape
    q, tot = plan["query"], cost["totals"]
    legend = "".join(f'<span class="swatch" style="background:{COLOURS[s]}"></span>{e(t.split(":")[0])}'
                     for s, t in STAGES)
    rows = "".join(
        f'<tr id="row-{n["id"]}"><td>{n["id"]}</td><td>{e(n["op"])}</td><td>{e(n["placement"])}</td>'
        f'<td>{e(", ".join(n["inputs"]))}</td><td>{e(node_facts(n))}</td><td>{e(describe(n, plan))}</td>'
        f'<td>{e(node_cost(n, cost))}</td></tr>' for n in plan["nodes"])
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
Purpose <b>{e(str(q.get('purpose')))}</b>; computing parties {e(', '.join(plan['parties']))}; receivers
<b>{e(', '.join(plan['receivers']))}</b>{e(' (output only: ' + ', '.join(plan['output_parties']) + ')' if plan.get('output_parties') else '')}; {plan['cells']} cell(s); MPyC SecInt(l={plan['secure_type']['l']}).</p>
{summary_html(plan, row_counts, cost)}
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
<h2>Glossary</h2><dl id="glossary">{GLOSSARY}</dl>
<p>Plan hash <span class="hash">{e(plan['hash'])}</span></p>
</body></html>
"""


# -- diff -----------------------------------------------------------------------------------
