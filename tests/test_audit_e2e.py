"""Issue 21 end to end, through real `iq party` processes (one OS process per organisation):

* a party killed mid-run: police is SIGKILLed while it computes; its ledger shows the run as
  killed (started, never finished) and the approved run it consumed, the others' show it failed,
  and the heads the parties hold of each other still agree (nobody rewrote anything);
* passphrase-protected keys: police's key is made with `iq keygen --protect`, the approval signed
  with `iq approve` reading the passphrase from IQ_KEY_PASSPHRASE, the head with --passphrase-file;
* cross-party head verification: after two runs police rewrites its ledger consistently (the first
  release without the helpline among its receivers; hash chain and sidecar recomputed, so `iq audit
  verify` passes), and `iq audit verify-heads` (through the heads ngo and the helper recorded at
  the second run's start, and police's own signed head that an auditor kept) and `iq audit
  compare` (the release entries of all four ledgers, the output-only helpline's included) catch it.
"""
from __future__ import annotations

import json
import os
import signal

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.runtime.governance.ledger import Ledger

from conftest import CATALOG, Parties, compile_plan
from test_audit_heads import iq, rewrite
from test_governance_schemas import check

pytestmark = pytest.mark.mpc

CAT = load_catalog(CATALOG)
LIGHT = """@name by_region
@purpose research
SELECT exp_Region, COUNT(*) AS n FROM police_victims GROUP BY exp_Region;"""
HEAVY = """@name heavy
@purpose research
SELECT exp_Type, prs_Gender, COUNT(*) AS n, AVG(prs_Age) AS age, VAR(prs_Age) AS spread, MEDIAN(prs_Age) AS mid
FROM police_victims GROUP BY exp_Type, prs_Gender;"""
PASSPHRASE = "correct horse battery staple"
BASIS = ("--signer", "A. Jansen", "--role", "data protection officer", "--legal-basis", "GDPR art. 6(1)(e)")


class LedgerParties(Parties):
    """Every party, the output-only receivers too, with its own ledger and the given options."""

    def __init__(self, *a, options=(), **kw):
        super().__init__(*a, **kw)
        self.options = list(options)

    def ledger(self, name: str):
        return self.workdir / "ledgers" / f"{name}.ledger.jsonl"

    def cmd(self, name: str) -> list[str]:
        return super().cmd(name) + ["--ledger", str(self.ledger(name)), *self.options]


def protected_key(tmp_path):
    """police's key pair made with `iq keygen --protect`; the passphrase from the environment."""
    res = iq_env("keygen", "--identity", "police", "--out", tmp_path / "keys", "--protect")
    assert res.returncode == 0, res.stderr
    key = tmp_path / "keys" / "police.key"
    assert "BEGIN ENCRYPTED PRIVATE KEY" in key.read_text()
    return key


def iq_env(*args):
    os.environ["IQ_KEY_PASSPHRASE"] = PASSPHRASE
    try:
        return iq(*args)
    finally:
        del os.environ["IQ_KEY_PASSPHRASE"]


def test_party_killed_mid_run_shows_in_its_ledger(tmp_path, corpus_data):
    plan = compile_plan(HEAVY, CAT)
    plan_path = tmp_path / "heavy.json"
    from insightql.compiler.plan.plan_io import dump_plan
    plan_path.write_text(dump_plan(plan))
    key = protected_key(tmp_path)
    assert iq("approve", plan_path, "--key", key, "--runs", "2", *BASIS).returncode == 2  # no passphrase: refused
    res = iq_env("approve", plan_path, "--key", key, "--runs", "2", *BASIS)
    assert res.returncode == 0, res.stderr
    approval = tmp_path / "heavy.approval.police.json"
    parties = LedgerParties(plan, corpus_data, tmp_path,
                            options=["--approvals", str(approval), "--trust", str(tmp_path / "keys")]).start()
    try:
        assert parties.wait_for_line("police", "secure steps", timeout=90), parties.stderr("police")
        parties.kill("police", signal.SIGKILL)
        codes = parties.wait(timeout=60, names=[n for n in parties.names if n != "police"])
    finally:
        parties.stop_all()
    assert all(c not in (None, 0) for c in codes.values()), codes
    shown = iq("audit", "show", parties.ledger("police"), "--runs")
    assert shown.returncode == 0, shown.stderr
    assert "started, never finished (killed or crashed): consumed approved run (run 1 of 2 approved)" in shown.stdout
    assert "1 run(s): 0 finished, 0 failed, 0 refused, 1 killed" in shown.stdout, shown.stdout
    kinds = [e["kind"] for e in Ledger(parties.ledger("police")).entries()]
    assert kinds == ["approval", "run_started"], kinds  # recorded before any input; nothing after the kill
    for name in ("ngo", "helper"):
        shown = iq("audit", "show", parties.ledger(name), "--runs")
        assert "1 run(s): 0 finished, 1 failed, 0 refused, 0 killed" in shown.stdout, (name, shown.stdout)
        assert "lost the connection to party" in shown.stdout and "(run 1 of 2 approved)" in shown.stdout
    ledgers = [parties.ledger(n) for n in plan["parties"]]
    res = iq("audit", "verify-heads", *ledgers)
    assert res.returncode == 0 and res.stdout.count("OK: ") == 3, res.stdout
    res = iq("audit", "compare", *ledgers)
    assert res.returncode == 0 and "OK: 0 release(s) agree" in res.stdout, res.stdout


def test_rewritten_ledger_is_caught_by_the_others_heads(tmp_path, corpus_data):
    plan = compile_plan(LIGHT, CAT)
    key = protected_key(tmp_path)
    passfile = tmp_path / "passphrase.txt"
    passfile.write_text(PASSPHRASE + "\n")
    head = tmp_path / "auditor" / "police.head.json"
    head.parent.mkdir()
    names = plan["parties"] + plan["output_parties"]
    for attempt in range(2):
        parties = LedgerParties(plan, corpus_data, tmp_path)
        codes = parties.run_to_end(timeout=120)
        assert all(c == 0 for c in codes.values()), {n: parties.stderr(n) for n in codes}
        if attempt == 0:  # after the first run police gives its signed head to the auditor
            res = iq("audit", "head", "--ledger", parties.ledger("police"), "--key", key,
                     "--passphrase-file", passfile, "-o", head)
            assert res.returncode == 0, res.stderr
    ledgers = [parties.ledger(n) for n in names]
    for path in ledgers:  # what real parties write matches spec/governance.schema.json
        for e in Ledger(path).entries():
            check("ledger_entry", e)
            if e["kind"] in ("run_started", "release"):
                check("release_data" if e["kind"] == "release" else "run_started_data", e["data"])
    check("ledger_head", json.loads(head.read_text()))
    starts = [e for e in Ledger(parties.ledger("ngo")).entries() if e["kind"] == "run_started"]
    assert len(starts) == 2 and starts[0]["data"]["run_id"] != starts[1]["data"]["run_id"]
    res = iq("audit", "verify-heads", *ledgers, "--heads", head, "--trust", tmp_path / "keys")
    assert res.returncode == 0 and res.stdout.count("OK: ") == 4, res.stdout
    assert "OK: police's ledger" in res.stdout and "signed heads" in res.stdout
    res = iq("audit", "compare", *ledgers)
    assert res.returncode == 0 and "OK: 2 release(s) agree across the ledgers of police, ngo, helper, helpline" \
        in res.stdout, res.stdout

    def hide_helpline(entries):
        first = next(e for e in entries if e["kind"] == "release")
        first["data"]["receivers"] = [r for r in first["data"]["receivers"] if r != "helpline"]
        return entries
    police = parties.ledger("police")
    rewrite(police, hide_helpline)
    assert iq("audit", "verify", police).returncode == 0  # consistent: the ledger alone cannot tell
    res = iq("audit", "verify-heads", *ledgers)
    assert res.returncode == 1, res.stdout
    assert "MISMATCH: police's ledger" in res.stdout and res.stdout.count("OK: ") == 3
    assert "ngo's entry 3 (run_started of by_region" in res.stdout and "helper's entry 3" in res.stdout
    assert "police's ledger was rewritten at or before entry 2" in res.stdout
    res = iq("audit", "verify-heads", police, "--heads", head, "--trust", tmp_path / "keys")
    assert res.returncode == 1 and "the head police signed at" in res.stdout, res.stdout
    res = iq("audit", "compare", *ledgers)
    assert res.returncode == 1, res.stdout
    assert "the receivers field differs: police (entry 1) disagrees with the other parties" in res.stdout
    out = tmp_path / "report"
    res = iq("audit", "report", "--ledger", *ledgers, "--catalog", CATALOG, "--format", "html", "--out", out,
             "--heads", head, "--trust", tmp_path / "keys")
    assert res.returncode == 1 and "verification problem(s)" in res.stdout, res.stdout + res.stderr
    page = (out / "audit-police_victims-start-end.html").read_text()
    learned = page[page.index("<h2>What each party learned</h2>"):page.index("<h2>Runs refused")]
    assert learned.count("group_domain: 4 cell(s)") == 6  # police, ngo, helpline in each of the two runs
    assert learned.count("<td>helper</td><td>no</td>") == 2  # the helper receives nothing
    assert '<td class="PROBLEM">PROBLEM</td>' in page and "the head police signed at" in page


def test_party_that_hangs_leaves_failed_runs_at_the_others(tmp_path, corpus_data):
    """police is stopped (SIGSTOP) while it computes: the others stop at their watchdog (or on seeing
    a peer stop) and record the run as failed, with why; police, killed afterwards, shows it killed."""
    plan = compile_plan(HEAVY, CAT)
    parties = LedgerParties(plan, corpus_data, tmp_path, options=["--timeout", "8"]).start()
    try:
        assert parties.wait_for_line("police", "secure steps", timeout=90), parties.stderr("police")
        parties.kill("police", signal.SIGSTOP)
        codes = parties.wait(timeout=60, names=["ngo", "helper"])
    finally:
        parties.kill("police", signal.SIGCONT)
        parties.stop_all()
    assert all(codes[n] in (5, 6) for n in ("ngo", "helper")), codes
    errors = []
    for name in ("ngo", "helper"):
        runs = [e for e in Ledger(parties.ledger(name)).entries() if e["kind"] in ("run_started", "run_failed")]
        assert [e["kind"] for e in runs] == ["run_started", "run_failed"], (name, runs)
        errors.append(runs[1]["data"]["error"])
    assert any("did not finish within 8 s" in e for e in errors), errors  # at least one stopped at its watchdog
    shown = iq("audit", "show", parties.ledger("police"), "--runs")
    assert "1 run(s): 0 finished, 0 failed, 0 refused, 1 killed" in shown.stdout, shown.stdout
