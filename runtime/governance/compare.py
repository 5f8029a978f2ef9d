"""Compare the release entries of all parties' ledgers (spec/governance.md 2.3, step 3).

Every party of a run records the same release: the same plan hash and run id, query, source,
datasets, receivers, outputs (name, columns, number of cells) and differencing guard. A party that
changed or omitted a release disagrees with the others, which ``compare`` reports with the party
and the entry number of each side. Releases are matched by their ``run_id`` (recorded since issue
21); an entry without one (an older ledger, or an output-only receiver, which hears no heads) is
matched as the n-th release of its plan. Commitments are salted by each receiver separately, so
they never agree across parties: what must agree is who holds one (exactly the receivers) and the
scheme.
"""
from __future__ import annotations

import os
from collections import Counter

from insightql.runtime.governance.ledger import Ledger, canonical_json

FIELDS = ("plan_hash", "query", "source_sha256", "datasets", "receivers", "outputs", "guard_signature", "guard")


def _releases(path: str | os.PathLike) -> list[dict]:
    """Each release entry with the parties of the run it belongs to (its last run_started)."""
    out, parties = [], []
    for e in Ledger(path).readable_entries():
        d = e.get("data") or {}
        if e.get("kind") == "run_started":
            parties = list(d.get("parties") or [])
        elif e.get("kind") == "release":
            out.append({**e, "run_parties": parties})
    return out


def _value(entry: dict, field: str):
    d = entry.get("data") or {}
    if field == "plan_hash":
        return entry.get("plan_hash")
    if field == "outputs":  # how many cells were suppressed is known only at receivers
        return [{k: o.get(k) for k in ("name", "columns", "cells")} for o in d.get("outputs") or []]
    return d.get(field)


def group_runs(ledgers: dict[str, os.PathLike]) -> list[dict[str, list[dict]]]:
    """[{party: its release entries of the run (one, unless recorded twice)}] per run, in the order
    of the runs' first release."""
    by_id: dict[tuple, dict[str, list[dict]]] = {}
    pending: list[tuple[str, dict, int]] = []
    for party, path in ledgers.items():
        seen: Counter = Counter()
        for e in _releases(path):
            rid = (e.get("data") or {}).get("run_id")
            if rid:
                by_id.setdefault(("id", rid), {}).setdefault(party, []).append(e)
            else:
                pending.append((party, e, seen[e.get("plan_hash")]))
                seen[e.get("plan_hash")] += 1
    ordered = sorted(by_id, key=lambda k: min(e.get("time", "") for es in by_id[k].values() for e in es))
    per_plan: dict[str, list[tuple]] = {}
    for k in ordered:
        plan = next(e["plan_hash"] for es in by_id[k].values() for e in es)
        per_plan.setdefault(plan, []).append(k)
    for party, e, n in pending:  # the n-th release of a plan without run id: the n-th run of that plan
        keys = per_plan.get(e.get("plan_hash"), [])
        key = keys[n] if n < len(keys) else ("plan", e.get("plan_hash"), n)
        by_id.setdefault(key, {}).setdefault(party, []).append(e)
    return sorted(by_id.values(), key=lambda g: min(e.get("time", "") for es in g.values() for e in es))


def _where(party: str, entry: dict) -> str:
    return f"{party} (entry {entry['seq']})"


def _label(run: dict[str, dict]) -> str:
    e = next(iter(run.values()))
    d = e.get("data") or {}
    rid = d.get("run_id")
    return (f"release of {d.get('query')} ({str(e.get('plan_hash'))[:19]}..."
            + (f", run {rid[7:19]}" if rid else "") + f", {str(e.get('time'))[:19]})")


def compare(ledgers: dict[str, os.PathLike]) -> tuple[list[str], int]:
    """(every mismatch, one sentence each naming the parties and entries; the number of runs)."""
    findings: list[str] = []
    runs = group_runs(ledgers)
    for group in runs:
        run = {p: es[0] for p, es in group.items()}
        label = _label(run)
        for party, es in ((p, es) for p, es in group.items() if len(es) > 1):
            findings.append(f"{label}: {party} records it twice (entries {', '.join(str(e['seq']) for e in es)})")
        expected = set()
        for e in run.values():
            expected |= set(e["run_parties"]) | set((e.get("data") or {}).get("receivers") or [])
        holders = ", ".join(_where(p, e) for p, e in sorted(run.items()))
        for party in sorted(expected & set(ledgers) - set(run)):
            findings.append(f"{label}: {party} records no such release, but {holders} do: "
                            f"{party}'s ledger omits it (or the run failed there)")
        for field in FIELDS:
            values = {p: canonical_json(_value(e, field)) for p, e in run.items()}
            if len(set(values.values())) > 1:
                findings.append(_differs(label, field, run, values))
        findings += _commitments(label, run)
    return findings, len(runs)


def _differs(label: str, field: str, run: dict[str, dict], values: dict[str, str]) -> str:
    counts = Counter(values.values())
    top, n = counts.most_common(1)[0]
    sides = "; ".join(f"{_where(p, run[p])} {values[p][:120]}" for p in sorted(run))
    if n > len(values) / 2:
        odd = [_where(p, run[p]) for p in sorted(run) if values[p] != top]
        verb = "disagrees" if len(odd) == 1 else "disagree"
        return f"{label}: the {field} field differs: {', '.join(odd)} {verb} with the other parties ({sides})"
    return f"{label}: the {field} field differs: {sides}"


def _commitments(label: str, run: dict[str, dict]) -> list[str]:
    out = []
    if not any("commitment" in (e.get("data") or {}) for e in run.values()):
        return out  # entries written before commitments
    schemes = set()
    for party, e in sorted(run.items()):
        d = e.get("data") or {}
        c = d.get("commitment")
        receives = party in (d.get("receivers") or [])
        if receives and not c:
            out.append(f"{label}: {_where(party, e)} is a receiver but records no commitment to what it received")
        elif c and not receives:
            out.append(f"{label}: {_where(party, e)} records a commitment to released values but is not a receiver")
        if c:
            schemes.add(c.get("scheme"))
    if len(schemes) > 1:
        out.append(f"{label}: the receivers' commitments use different schemes ({', '.join(map(str, sorted(schemes)))})")
    return out
