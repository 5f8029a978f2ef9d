"""`iq diff`: what changed between two plans, in words. Nodes are matched by structure, not
by id, so an inserted node does not make every later node look changed."""
from __future__ import annotations

import difflib
import json
import re

from insightql.compiler.review.cost import _kb, estimate
from insightql.compiler.review.explain_expr import slot_text
from insightql.compiler.review.explain_nodes import describe, leakage_lines
from insightql.compiler.review.weakening import weakenings


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
            rounded = f", rounded to {v['rounded_to']}" if v.get("rounded_to", 1) > 1 else ""
            return f"{v['name']} ({v['kind']}{rounded}{', pct' if v.get('pct') else ''})"
    s = json.dumps(v, sort_keys=True)
    return s if len(s) <= 80 else s[:77] + "..."


def diff_plans(a: dict, b: dict) -> str:
    """What changed from plan a to plan b, in words."""
    if a.get("hash") == b.get("hash"):
        return f"plans are identical ({a.get('hash')})"
    out = [f"plan {a['query']['name']} {a['hash']}", f"  -> {b['query']['name']} {b['hash']}"]
    weaker = weakenings(a, b)
    if weaker:
        out += ["", f"WEAKER: the new plan discloses more, to more parties or under weaker rules ({len(weaker)}):"]
        out += [f"  ! {w}" for w in weaker]
    else:
        out += ["", "nothing weaker: no lower threshold, no new receiver or computing party, no dropped rule, "
                    "nothing newly revealed"]
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
