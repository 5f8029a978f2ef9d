"""What a party checks and records around a run: approvals, reproducible compilation, the
differencing guard's coverage, and its ledger (spec/governance.md).

`Governance.preflight()` runs before the party reads its data. A refusal is a one-line reason
that `runtime/launch/party.py` sends through the status handshake, so every party stops before any
share is sent and names who refused and why. Ledger entries written here:

    approval (each valid approval: signer, legal basis, purpose)  run_refused (own refusal, or another's)
    run_started (after the handshake agreed; peer ledger heads)  release (commitment to the received
    values, leakage items learned)  run_finished | run_failed

A killed party leaves a run_started without an end (runtime/governance/history.py reports it).

Approvals are verified when approvals are passed or a dataset of the plan has `require_approval`
in this party's catalog; revocations given among them or lying next to them (`*.revocation.json`)
are honoured. Always (also in the demo) the party checks the plan
hash, checks the plan's differencing guard against its own ledger (a guarded plan needs one),
recompiles the source with the guard rebuilt from its own ledger, and keeps its ledger.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from insightql.compiler.plan import guard as guard_mod
from insightql.compiler.plan.dp_lower import exact_releases
from insightql.compiler.plan.plan_io import plan_hash

from insightql.runtime.governance.disclosure import commit_table, learned_items
from insightql.runtime.governance import budget
from insightql.runtime.governance.ledger import Ledger, LedgerError, release_data


@dataclass
class GovernanceOptions:
    approvals: list[str] = field(default_factory=list)
    trust: list[str] = field(default_factory=list)
    ledger: str | None = None
    """Explicit ledger file; None: `<party>.ledger.jsonl` next to the party's data (or plan)."""
    source: str | None = None
    """The .iq source this party's owner reviewed; default: the plan's own `query.source`."""
    today: date | None = None


def default_ledger_path(me: str, data: dict[str, str], plan_path: str | None) -> Path:
    """`<party>.ledger.jsonl` next to the party's first data file, else next to the plan."""
    near = next(iter(data.values()), None) or plan_path
    return (Path(near).resolve().parent if near else Path.cwd()) / f"{me}.ledger.jsonl"


class Governance:
    def __init__(self, plan: dict, me: str, catalog, opts: GovernanceOptions, ledger_path: Path):
        self.plan, self.me, self.catalog, self.opts = plan, me, catalog, opts
        self.ledger = Ledger(ledger_path)
        required = any(catalog.datasets[d].policy.require_approval for d in plan.get("datasets", {})
                       if d in catalog.datasets)
        self.need_approvals = bool(required or opts.approvals)
        self.refused: str | None = None
        self.usable_ledger = True

    # -- before data is read ------------------------------------------------------------------
    def preflight(self) -> str | None:
        """None if this party may take part; else the reason (also recorded as run_refused)."""
        problems = self._ledger_problems() or self._guard_problems()
        if not problems:
            problems = self._plan_problems() or self._approval_problems()
        if not problems:  # differential privacy: this owner's budget in its own ledger (spec/privacy.md 7)
            problems = budget.check(self.plan, self.ledger, self.catalog, self.me)
        if problems:
            self.refused = "; ".join(problems)
            self._append("run_refused", {"by": [self.me], "reasons": problems,
                                         "query": self.plan.get("query", {}).get("name"), **self._datasets()})
        return self.refused

    def _ledger_problems(self) -> list[str]:
        if not self.ledger.path.exists():
            return []
        bad = self.ledger.verify()
        if bad:
            self.usable_ledger = False
            return [f"its ledger {self.ledger.path.name} is corrupted ({bad[0]}; {len(bad)} problem(s)); "
                    f"run `iq audit verify` and repair it before any run"]
        return []

    def _plan_problems(self) -> list[str]:
        actual = plan_hash(self.plan)
        if self.plan.get("hash") != actual:
            return [f"the plan was modified after compilation (recorded hash {str(self.plan.get('hash'))[:19]}..., "
                    f"contents hash {actual[:19]}...)"]
        from insightql.compiler.pipeline import compile_source
        from insightql.runtime.governance.approvals import compare_recompiled

        q = self.plan["query"]
        try:
            text = Path(self.opts.source).read_text(encoding="utf-8") if self.opts.source else q["source"]
        except OSError as e:
            return [f"cannot read the source {self.opts.source}: {e.strerror}"]
        # the guard from this party's own ledger only: tampered guard entries change the hash
        earlier = [r["guard_signature"] for r in self._own_releases()]
        res = compile_source(text, q["source_name"], self.catalog, earlier=earlier)
        if res.plan is None:
            first = res.diagnostics[0].message if res.diagnostics else "no plan"
            return [f"the source does not compile with {self.me}'s catalog ({first})"]
        diff = compare_recompiled(self.plan, res.plan)
        if diff:
            fields = [d.split("'")[1] for d in diff[1:] if d.startswith("field '")]
            return [f"recompiling the source with {self.me}'s own catalog gives plan hash {res.plan['hash'][:19]}..., "
                    f"not the plan's {self.plan['hash'][:19]}... (differs in: {', '.join(fields) or '?'})"]
        return []

    def _approval_problems(self) -> list[str]:
        if not self.need_approvals:
            return []
        from insightql.runtime.governance.approvals import load_trusted_keys, read_approval, verify_approvals

        if not self.opts.trust:
            return ["approvals must be checked but no trusted keys were given (--trust DIR)"]
        from insightql.runtime.governance.revocations import is_revocation, revocations_near

        try:
            trusted = load_trusted_keys(self.opts.trust)
            files = list(dict.fromkeys(map(Path, self.opts.approvals)))
            files += [p for p in revocations_near(files) if p not in files]
            records = [read_approval(p) for p in files]
        except (OSError, ValueError) as e:
            return [f"cannot read approvals or keys: {e}"]
        approvals = [r for r in records if not is_revocation(r)]  # revocations: given or next to them
        # required: the owner of every dataset the plan reads (this party's owner among them)
        problems = verify_approvals(self.plan, approvals, trusted, None, self.opts.today, ledger=self.ledger,
                                    revocations=[r for r in records if is_revocation(r)], mode="report")
        if not problems:
            self._approvals = approvals
        return problems

    def _guard_problems(self) -> list[str]:
        """The plan's differencing guard against this party's own ledger (spec/disclosure.md 3.4):
        a guarded plan needs a ledger; every comparable release it records must be in the guard,
        and every guard entry must be a release it records."""
        guard = self.plan.get("guard", [])
        if guard and not self.ledger.path.exists():
            return [f"the plan's differencing guard names earlier release(s), but this party keeps no ledger "
                    f"({self.ledger.path.name}) to confirm them; a guarded plan runs only where each party's own "
                    "ledger records those releases"]
        releases = [r["guard_signature"] for r in self._own_releases()]
        if self.plan.get("policy", {}).get("privacy"):  # a DP plan is compared with the exact releases only
            releases = exact_releases(releases)
        new = guard_mod.signature_of_plan(self.plan)
        missing, unknown = guard_mod.coverage(guard, new, releases)
        out = []
        if missing:
            names = ", ".join(f"{o['query']} ({o['plan_hash'][:19]}...)" for o in missing)
            out.append(f"stale guard: its ledger records earlier release(s) over these datasets that the plan's "
                       f"differencing guard does not include: {names}; recompile with --ledger")
        if unknown:
            names = ", ".join(f"{o['query']} ({o['plan_hash'][:19]}...)" for o in unknown)
            out.append(f"the plan's differencing guard names release(s) its ledger does not record: {names}")
        return out

    def _own_releases(self) -> list[dict]:
        return [e["data"] for e in self.ledger.entries()
                if e.get("kind") == "release" and "guard_signature" in e.get("data", {})]

    # -- during and after the run ---------------------------------------------------------------
    def status(self) -> dict:
        """Extra fields of this party's handshake message: its ledger head."""
        try:
            return {"ledger_head": self.ledger.head() if self.usable_ledger else None}
        except (OSError, ValueError):
            return {"ledger_head": None}

    def started(self, statuses: list[dict]) -> None:
        """All parties agreed at the handshake; data is input next."""
        for rec in getattr(self, "_approvals", []):  # who signed, on what basis (absent in format 1)
            basis = {k: rec[k] for k in ("signer", "legal_basis", "purpose", "reference") if k in rec}
            self._append("approval", {"approver": rec["approver"], "fingerprint": rec["public_key_fingerprint"],
                                      "signature": rec["signature"], "conditions": rec["conditions"], **basis})
        from insightql.runtime.governance.heads import run_id  # the same at every computing party
        self.run_id = run_id(self.plan.get("hash"), statuses)
        self._append("run_started", {"parties": self.plan["parties"], "query": self.plan["query"]["name"],
                                     "peer_heads": {s["party"]: s.get("ledger_head") for s in statuses
                                                    if s["party"] != self.me}, **self._datasets(),
                                     **({"run_id": self.run_id} if self.run_id else {})})
        budget.record(self.plan, self._append)  # differential privacy: the spend, before any input

    def aborted(self, message: str, statuses_bad: list[str]) -> None:
        if self.refused is None:
            self._append("run_refused", {"by": statuses_bad, "reasons": [message],
                                         "query": self.plan.get("query", {}).get("name"), **self._datasets()})

    def failed(self, error: str) -> None:
        """Record the run as failed, once: the watchdog and the error it causes can both report it."""
        if getattr(self, "_failed", False):
            return
        self._failed = True
        self._append("run_failed", {"error": error[:500], "query": self.plan.get("query", {}).get("name"),
                                    **self._datasets()})

    def _datasets(self) -> dict:
        return {"datasets": sorted(self.plan.get("datasets", {}))}

    def finished(self, table, receiver: bool) -> None:
        node = next(n for n in self.plan["nodes"] if n["op"] == "table")
        cols = [o["name"] for o in node["attrs"]["outputs"] if o["kind"] == "value"]
        outputs = [{"name": self.plan["query"]["name"], "columns": cols, "cells": self.plan["cells"]}]
        data = release_data(self.plan, outputs)
        data["guard_signature"] = guard_mod.signature_of_plan(self.plan)
        data["guard"] = [o["plan_hash"] for e in self.plan.get("guard", []) for o in e["from"]]
        data["learned"] = learned_items(self.plan, self.me)
        if getattr(self, "run_id", None):
            data["run_id"] = self.run_id
        data["commitment"] = None  # what this party knows of the values: nothing, unless it received them
        if receiver and table is not None:
            from insightql.compiler.plaintext.results import Suppressed
            sup = [r for r in table.rows if any(isinstance(v, Suppressed) for v in r)]
            outputs[0]["suppressed"] = len(sup)
            try:
                data["commitment"] = commit_table(table, self.ledger.path)
            except OSError as e:
                print(f"error: [{self.me}] cannot write the commitment's salt: {e}", file=sys.stderr, flush=True)
        self._append("release", data)
        self._append("run_finished", {})

    def _append(self, kind: str, data: dict) -> None:
        if not self.usable_ledger:
            return
        try:
            self.ledger.append(kind, self.plan.get("hash"), data)
        except (LedgerError, OSError) as e:
            print(f"error: [{self.me}] cannot write to its ledger {self.ledger.path}: {e}", file=sys.stderr, flush=True)


def load_plan_unchecked(text: str) -> dict:
    """Parse a plan file without checking its hash: the party checks it in `preflight` and tells
    the other parties through the handshake, instead of exiting before it connects."""
    from insightql.compiler.plan.plan_io import PLAN_FORMAT

    plan = json.loads(text)
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise ValueError(f"not an InsightQL plan (format {plan.get('format') if isinstance(plan, dict) else None!r})")
    return plan


def earlier_releases(ledgers) -> list[dict]:
    """Guard signatures of every release recorded in these ledgers (each must verify), once each."""
    out: dict[str, dict] = {}
    for path in ledgers:
        led = Ledger(path)
        if not led.path.exists():
            continue
        bad = led.verify()
        if bad:
            raise ValueError(f"ledger {path} does not verify ({bad[0]}); the differencing guard cannot use it")
        for e in led.entries():
            sig = e["data"].get("guard_signature") if e.get("kind") == "release" else None
            if sig:
                out.setdefault(sig["plan_hash"], sig)
    return list(out.values())
