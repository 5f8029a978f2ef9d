"""Which changes between two plans make the release weaker: what an approver must not miss in
`iq diff`. Each finding is one line; none means the new plan discloses no more to no more parties
under no weaker rule (as far as these checks see: they compare the plans' public facts)."""
from __future__ import annotations

from collections import defaultdict


def _thresholds(plan: dict) -> dict[str, int]:
    """The smallest constant each rule compares with (`ge_const` and `and` nodes carry rule and const)."""
    out: dict[str, int] = {}
    for n in plan["nodes"]:
        rule, const = n["attrs"].get("rule"), n["attrs"].get("const")
        if rule and isinstance(const, (int, float)):
            out[rule] = min(out.get(rule, const), const)
    return out


def _learnt(plan: dict) -> dict[str, set[str]]:
    """Leakage item (with its column) -> the parties it goes to."""
    out: dict[str, set[str]] = defaultdict(set)
    for item in plan["leakage"]:
        key = item["item"] + (f" ({item['column']})" if item.get("column") else "")
        out[key] |= set(item.get("to", []))
    return out


def _rules(plan: dict) -> set[str]:
    return {r for item in plan["leakage"] for r in item.get("rules", [])}


def weakenings(a: dict, b: dict) -> list[str]:
    """What plan b discloses more of, to more parties, or under weaker rules than plan a."""
    out = []
    pa, pb = a["policy"], b["policy"]
    if pb["min_group_size"] < pa["min_group_size"]:
        out.append(f"smaller minimum group size k: {pa['min_group_size']} -> {pb['min_group_size']}")
    if pb.get("round_counts_to", 1) < pa.get("round_counts_to", 1):
        out.append(f"finer rounding of counts: {pa.get('round_counts_to', 1)} -> {pb.get('round_counts_to', 1)}")
    if pa.get("distinct_persons") and not pb.get("distinct_persons"):
        out.append("the distinct-person threshold is dropped (k rows may be fewer than k persons)")
    da, db = pa.get("dominance"), pb.get("dominance")
    if da and (not db or db["n"] > da["n"] or db["k"] > da["k"]):
        out.append(f"weaker dominance rule: {da} -> {db}")
    if pb.get("max_groups", 0) > pa.get("max_groups", 0):
        out.append(f"more cells allowed: max_groups {pa.get('max_groups')} -> {pb.get('max_groups')}")
    new_receivers = [r for r in b["receivers"] if r not in a["receivers"]]
    if new_receivers:
        out.append(f"more receivers: {', '.join(new_receivers)}")
    new_parties = [p for p in b["parties"] if p not in a["parties"]]
    if new_parties:
        out.append(f"more computing parties (they learn what the leakage report gives every computing party): "
                   f"{', '.join(new_parties)}")
    ta, tb = _thresholds(a), _thresholds(b)
    for rule in sorted(set(ta) & set(tb)):
        if tb[rule] < ta[rule]:
            out.append(f"rule {rule} compares with a smaller constant: {ta[rule]} -> {tb[rule]}")
    dropped = sorted(_rules(a) - _rules(b))
    if dropped:
        out.append(f"release rules no longer applied: {', '.join(dropped)}"
                   + (" (replaced by differential privacy's noise: spec/privacy.md 5)" if pb.get("privacy") else ""))
    la, lb = _learnt(a), _learnt(b)
    for key in sorted(lb):
        more = sorted(lb[key] - la.get(key, set()))
        if key not in la:
            out.append(f"newly revealed: {key}" + (f" to {', '.join(sorted(lb[key]))}" if lb[key] else ""))
        elif more:
            out.append(f"{key} now also goes to {', '.join(more)}")
    out += _privacy(pa.get("privacy"), pb.get("privacy"))
    if a.get("guard") and not b.get("guard"):
        out.append("no differencing guard (the earlier releases it compared with are not compared)")
    return out


def _privacy(a: dict | None, b: dict | None) -> list[str]:
    """Differential privacy (spec/privacy.md): dropped, a larger epsilon, the noisy threshold dropped."""
    from fractions import Fraction

    if a is None:
        return []
    if b is None:
        return ["differential privacy is dropped: values are released without noise"]
    out = []
    if Fraction(b["epsilon"]) > Fraction(a["epsilon"]):
        out.append(f"larger epsilon (less noise, more of the budget): {a['epsilon']} -> {b['epsilon']}")
    if a.get("noisy_threshold") and not b.get("noisy_threshold"):
        out.append("the noisy threshold is dropped: every cell is released with noise")
    return out
