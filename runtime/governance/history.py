"""Every run a party's ledger records, successful or not (spec/governance.md 2.5).

A run is one of: ``refused`` (a ``run_refused`` entry: this party or another refused at the
handshake, nothing shared, no run consumed), ``finished`` (``run_started`` ... ``run_finished``),
``failed`` (``run_started`` ... ``run_failed``) and ``killed`` (a ``run_started`` that no end
follows before the next run begins, or before the ledger ends: the process was killed or crashed,
or it is still running). Every started run consumed one of the runs its approvals allow, so each
started run is shown as "run n of N approved", N from the ``approval`` entries recorded for that
plan (per approver the largest limit it granted, then the smallest over approvers; unlimited if
none sets one).
"""
from __future__ import annotations

import os

from insightql.runtime.governance.ledger import Ledger

KILLED = "started, never finished (killed or crashed)"


def _approved(per_approver: dict[str, int | None]) -> int | None:
    finite = [v for v in per_approver.values() if v is not None]
    return min(finite) if finite else None


def runs(path: str | os.PathLike) -> list[dict]:
    """One dict per run: seq, time, plan_hash, query, outcome, detail, and for started runs
    ``run`` (the how-many-th start of this plan) and ``approved`` (runs allowed, None: unlimited
    or no approval recorded), ``approvals`` (how many approval entries were recorded)."""
    out: list[dict] = []
    open_run: dict | None = None
    started: dict[str, int] = {}
    limits: dict[str, dict[str, int | None]] = {}
    approvals: dict[str, int] = {}

    def close(outcome: str, detail: str) -> None:
        nonlocal open_run
        if open_run is not None:
            open_run.update(outcome=outcome, detail=detail)
            open_run = None

    for e in Ledger(path).readable_entries():
        kind, ph, data = e.get("kind"), e.get("plan_hash"), e.get("data") or {}
        if kind == "approval":
            cond = data.get("conditions") or {}
            granted = limits.setdefault(ph, {})
            who, n = data.get("approver", "?"), cond.get("runs")
            granted[who] = None if n is None or (who in granted and granted[who] is None) else max(n, granted.get(who) or 0)
            approvals[ph] = approvals.get(ph, 0) + 1
        elif kind == "run_started":
            close("killed", KILLED)
            started[ph] = started.get(ph, 0) + 1
            open_run = {"seq": e["seq"], "time": e["time"], "plan_hash": ph, "query": data.get("query"),
                        "outcome": "killed", "detail": KILLED, "run": started[ph],
                        "approved": _approved(limits.get(ph, {})), "approvals": approvals.get(ph, 0)}
            out.append(open_run)
        elif kind == "run_finished" and open_run is not None and open_run["plan_hash"] == ph:
            close("finished", "released")
        elif kind == "run_failed" and open_run is not None and open_run["plan_hash"] == ph:
            close("failed", str(data.get("error", "")))
        elif kind == "run_refused":
            close("killed", KILLED)
            by = ", ".join(data.get("by") or []) or "?"
            out.append({"seq": e["seq"], "time": e["time"], "plan_hash": ph, "query": data.get("query"),
                        "outcome": "refused", "detail": f"refused by {by}: " + "; ".join(data.get("reasons") or []),
                        "run": None, "approved": None, "approvals": 0})
    return out


def describe(run: dict) -> str:
    """The run's outcome in words, with the runs used against the runs approved."""
    if run["run"] is None:
        return run["detail"]
    if run["approvals"]:
        allowed = "unlimited" if run["approved"] is None else str(run["approved"])
        used = f"run {run['run']} of {allowed} approved"
    else:
        used = f"run {run['run']}; no approval recorded"
    if run["outcome"] == "killed":
        return f"{run['detail']}: consumed approved run ({used})" if run["approvals"] else f"{run['detail']}: {used}"
    return f"{run['detail']} ({used})" if run["detail"] else used
