"""`iq explain`: the plan for auditors, as text (placeholder until the full renderer lands)."""
from __future__ import annotations

import json


def explain_text(plan: dict) -> str:
    lines = [f"plan {plan['query']['name']}  {plan['hash']}",
             f"parties: {', '.join(plan['parties'])}; receivers: {', '.join(plan['receivers'])}; cells: {plan['cells']}",
             f"secure type: {plan['secure_type']}", ""]
    for n in plan["nodes"]:
        lines.append(f"  {n['id']}  {n['placement']:16} {n['op']:14} <- {', '.join(n['inputs'])}")
    lines.append("\nleakage report:")
    for item in plan["leakage"]:
        lines.append(f"  - {item['item']}{' ' + item['column'] if 'column' in item else ''} "
                     f"to {', '.join(item['to']) or 'nobody'}: {item['detail']}")
    return "\n".join(lines)


def explain_dot(plan: dict) -> str:
    out = ["digraph plan {"]
    for n in plan["nodes"]:
        out.append(f'  {n["id"]} [label="{n["op"]}\\n{n["placement"]}"];')
        out += [f"  {i} -> {n['id']};" for i in n["inputs"]]
    return "\n".join(out + ["}"])


def explain_html(plan: dict) -> str:
    return "<html><body><pre>" + explain_text(plan) + "</pre></body></html>"


def diff_plans(a: dict, b: dict) -> str:
    if a["hash"] == b["hash"]:
        return "plans are identical"
    keys = sorted(set(a) | set(b))
    return "\n".join(f"changed: {k}" for k in keys if json.dumps(a.get(k), sort_keys=True) != json.dumps(b.get(k), sort_keys=True))
