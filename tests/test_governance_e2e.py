"""Governance through real party processes (`iq party`, one OS process per organisation).

Every refusal happens before any data is read or shared: the refusing party prints why and exits
7; the others learn it at the status handshake ("party police cannot take part: refused the
plan: ...") and exit 4; nobody reaches the secure steps or writes a result. Real Ed25519 key
files and approval files throughout. The attack test runs `iq run` three times on one ledger
folder: a query, the same query AND NOT one person, and one value removed from an IN list.
"""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plan.guard import signature_of_plan
from insightql.compiler.plan.plan_io import plan_hash
from insightql.runtime.governance.approvals import approve, generate_key, write_approval
from insightql.runtime.governance.ledger import Ledger

from conftest import CATALOG, Parties, compile_plan, printed_lines
from randdata import random_rows, write_csv

pytestmark = pytest.mark.mpc

CAT = load_catalog(CATALOG)
QUERY = """@name by_region
@purpose research
SELECT exp_Region, COUNT(*) AS n FROM police_victims GROUP BY exp_Region;"""
EXIT_REFUSED, EXIT_ABORTED = 7, 4


class GovParties(Parties):
    """Parties with per-party options (ledger, approvals, source)."""

    def __init__(self, *a, per_party: dict[str, list[str]] | None = None, **kw):
        super().__init__(*a, **kw)
        self.per_party = per_party or {}

    def cmd(self, name: str) -> list[str]:
        return super().cmd(name) + self.per_party.get(name, [])


@pytest.fixture
def keys(tmp_path) -> dict[str, Path]:
    """police's real key pair, the trust folder holding its public key, and an impostor's key."""
    key, _ = generate_key("police", tmp_path / "keys")
    evil, _ = generate_key("police", tmp_path / "evil")
    return {"police": key, "trust": tmp_path / "keys", "evil": evil}


def ledger_of(tmp_path: Path, name: str) -> Path:
    return tmp_path / "ledgers" / f"{name}.ledger.jsonl"


BASIS = {"signer": {"name": "A. Jansen", "role": "data protection officer"}, "legal_basis": "GDPR art. 6(1)(e)"}


def approval_file(tmp_path: Path, plan: dict, key: Path, **kw) -> Path:
    return write_approval(approve(plan, key, **BASIS, **kw), tmp_path / f"approval-{key.parent.name}.json")


def run_parties(tmp_path, plan, data, *, approvals=(), trust=None, per_party=None, plans=None, catalog=CATALOG):
    common = (["--approvals", *map(str, approvals)] if approvals else []) + (["--trust", str(trust)] if trust else [])
    per = {n: ["--ledger", str(ledger_of(tmp_path, n)), *common, *(per_party or {}).get(n, [])]
           for n in plan["parties"]}
    parties = GovParties(plan, data, tmp_path, per_party=per, plans=plans, catalog_path=catalog).start()
    try:
        codes = parties.wait(timeout=90)
    finally:
        parties.stop_all()
    return codes, parties


def assert_refused(plan, codes, parties, refusers: list[str], reason: str, recorded: bool = True):
    """Refusers exit 7 naming the reason; the rest stop at the handshake naming them; nothing shared."""
    for name in plan["parties"]:
        err = parties.stderr(name)
        assert "Traceback" not in err, err
        if name in refusers:
            assert codes[name] == EXIT_REFUSED, err
            assert f"error: [{name}] refused the plan: " in err and reason in err, err
        else:
            assert codes[name] == EXIT_ABORTED, err
        for r in refusers:
            assert f"party {r} cannot take part: refused the plan: " in err, err
        assert reason in err and "no data was shared" in err, err
        assert "secure steps" not in err and "local steps" not in err  # stopped at the handshake
        assert printed_lines(parties.out[name]) == [] and not parties.result_path(name).exists()
    for r in refusers if recorded else []:  # a corrupted ledger is not written to
        kinds = [e["kind"] for e in Ledger(ledger_of(parties.workdir, r)).entries()]
        assert kinds[-1] == "run_refused", kinds


# -- refusals ------------------------------------------------------------------------------------
def test_tampered_plan(tmp_path, corpus_data):
    plan = compile_plan(QUERY, CAT)
    bad = json.loads(json.dumps(plan))
    ge = next(n for n in bad["nodes"] if n["op"] == "ge_const")
    ge["attrs"]["const"] = 1  # lower k to 1, keep the recorded hash
    codes, parties = run_parties(tmp_path, plan, corpus_data, plans={"police": bad})
    assert_refused(plan, codes, parties, ["police"], "the plan was modified after compilation")


def test_tampered_plan_with_recomputed_hash_fails_recompilation(tmp_path, corpus_data):
    plan = compile_plan(QUERY, CAT)
    ge = next(n for n in plan["nodes"] if n["op"] == "ge_const")
    ge["attrs"]["const"] = 1
    plan["hash"] = plan_hash(plan)  # consistent, so only recompiling the source can tell
    codes, parties = run_parties(tmp_path, plan, corpus_data)
    assert_refused(plan, codes, parties, plan["parties"], "recompiling the source with")
    assert "differs in: nodes" in parties.stderr("ngo")


def test_reviewed_source_differs_from_the_plan(tmp_path, corpus_data):
    plan = compile_plan(QUERY, CAT)
    src = tmp_path / "reviewed.iq"
    src.write_text(QUERY.replace("exp_Region", "exp_Type"))
    codes, parties = run_parties(tmp_path, plan, corpus_data, per_party={"police": ["--source", str(src)]})
    assert_refused(plan, codes, parties, ["police"], "recompiling the source with police's own catalog gives plan hash")


def test_signature_by_unknown_key(tmp_path, corpus_data, keys):
    plan = compile_plan(QUERY, CAT)
    fake = approval_file(tmp_path, plan, keys["evil"])
    codes, parties = run_parties(tmp_path, plan, corpus_data, approvals=[fake], trust=keys["trust"])
    assert_refused(plan, codes, parties, plan["parties"], "signed by unknown key")


def test_expired_approval(tmp_path, corpus_data, keys):
    plan = compile_plan(QUERY, CAT)
    old = approval_file(tmp_path, plan, keys["police"], expires=date(2020, 1, 31),
                        now=datetime(2020, 1, 1, tzinfo=timezone.utc))
    codes, parties = run_parties(tmp_path, plan, corpus_data, approvals=[old], trust=keys["trust"])
    assert_refused(plan, codes, parties, plan["parties"], "expired on 2020-01-31")


def test_approval_for_another_plan(tmp_path, corpus_data, keys):
    plan = compile_plan(QUERY, CAT)
    other = compile_plan(QUERY.replace("exp_Region", "exp_Type"), CAT)
    wrong = approval_file(tmp_path, other, keys["police"])
    codes, parties = run_parties(tmp_path, plan, corpus_data, approvals=[wrong], trust=keys["trust"])
    assert_refused(plan, codes, parties, plan["parties"], "is for a different plan")


def test_corrupted_ledger(tmp_path, corpus_data):
    plan = compile_plan(QUERY, CAT)
    path = ledger_of(tmp_path, "police")
    Ledger(path).append("note", None, {"text": "party installed"})
    Ledger(path).append("note", None, {"text": "keys exchanged"})
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"installed")] ^= 0x01  # one byte changed
    path.write_bytes(bytes(raw))
    codes, parties = run_parties(tmp_path, plan, corpus_data)
    assert_refused(plan, codes, parties, ["police"], "is corrupted", recorded=False)
    assert path.read_bytes() == bytes(raw)  # nothing appended to a broken chain


def test_required_approval_missing(tmp_path, corpus_data, keys):
    text = CATALOG.read_text().replace("[datasets.police_victims.policy]\n",
                                       "[datasets.police_victims.policy]\nrequire_approval = true\n", 1)
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(text)
    plan = compile_plan(QUERY, load_catalog(catalog))
    codes, parties = run_parties(tmp_path, plan, corpus_data, trust=keys["trust"], catalog=catalog)
    assert_refused(plan, codes, parties, plan["parties"], "missing approval from 'police' (owner of police_victims)")


def test_iq_run_all_parties_refuse(tmp_path, corpus_data, keys):
    """`iq run` when every party refuses (police's approval is required and missing): its whole
    output is the headline and each party's reason once (not the handshake lines in which each
    repeats the others'), no Python text."""
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG.read_text().replace("[datasets.police_victims.policy]\n",
                                                   "[datasets.police_victims.policy]\nrequire_approval = true\n", 1))
    query = tmp_path / "q.iq"
    query.write_text(QUERY)
    plan = compile_plan(QUERY, load_catalog(catalog))
    names = plan["parties"] + plan.get("output_parties", [])
    assert len(names) == 4, names
    proc = iq("run", query, "--catalog", catalog, "--data", f"police_victims={corpus_data['police_victims']}",
              "--trust", keys["trust"], "--ledger-dir", tmp_path / "ledgers", "--quiet", "--timeout", "90")
    why = "missing approval from 'police' (owner of police_victims)"
    assert proc.returncode == EXIT_REFUSED and proc.stdout == "", proc.stdout + proc.stderr
    assert proc.stderr == (
        f"iq: the run stopped because of parties {', '.join(names[:-1])} and {names[-1]} (refused the plan); "
        "every party stopped at the handshake, no data was shared\n"
        + "".join(f"party {n} failed:\n  error: [{n}] refused the plan: {why}\n" for n in names)), proc.stderr


def test_stale_guard(tmp_path, corpus_data):
    """Every party's ledger records a release over police_victims; a plan compiled without that
    ledger has no guard entry for it."""
    earlier = compile_plan(QUERY.replace("GROUP BY", "WHERE prs_Age > 30 GROUP BY").replace("by_region", "older"), CAT)
    for name in earlier["parties"]:
        Ledger(ledger_of(tmp_path, name)).append("release", earlier["hash"],
                                                 {"guard_signature": signature_of_plan(earlier)})
    plan = compile_plan(QUERY, CAT)
    codes, parties = run_parties(tmp_path, plan, corpus_data)
    assert_refused(plan, codes, parties, plan["parties"], "stale guard")
    assert "older (sha256:" in parties.stderr("helper") and "recompile with --ledger" in parties.stderr("helper")


def test_approved_run_is_recorded_then_runs_exceeded(tmp_path, corpus_data, keys):
    plan = compile_plan(QUERY, CAT)
    ok = approval_file(tmp_path, plan, keys["police"], runs=1)
    codes, parties = run_parties(tmp_path, plan, corpus_data, approvals=[ok], trust=keys["trust"])
    assert all(c == 0 for c in codes.values()), {n: parties.stderr(n) for n in codes}
    assert parties.result_path("police").exists()
    for name in plan["parties"]:
        led = Ledger(ledger_of(tmp_path, name))
        assert led.verify() == []
        kinds = [e["kind"] for e in led.entries()]
        assert kinds == ["approval", "run_started", "release", "run_finished"], kinds
        release = [e for e in led.entries() if e["kind"] == "release"][0]["data"]
        assert release["receivers"] == plan["receivers"] and release["outputs"][0]["columns"] == ["n"]
        assert release["outputs"][0]["cells"] == 4 and release["guard_signature"]["datasets"] == ["police_victims"]
        assert ("suppressed" in release["outputs"][0]) == (name in plan["receivers"])
        learned = [i["item"] for i in release["learned"]]  # the leakage report's items addressed to it
        assert learned == [i["item"] for i in plan["leakage"] if name in i["to"] and i["item"] != "output"]
        approval = [e for e in led.entries() if e["kind"] == "approval"][0]["data"]
        assert approval["signer"] == BASIS["signer"] and approval["legal_basis"] == BASIS["legal_basis"]
        if name not in plan["receivers"]:
            assert release["commitment"] is None  # it knows no values
            continue
        salt = ledger_of(tmp_path, name).with_name(f"{name}.ledger.jsonl.salts") / f"{release['commitment']['salt_id']}.salt"
        seq = str([e for e in led.entries() if e["kind"] == "release"][0]["seq"])
        proved = iq("audit", "prove", ledger_of(tmp_path, name), "--entry", seq, "--result",
                    parties.result_path(name), "--salt", salt)
        assert proved.returncode == 0, proved.stdout + proved.stderr
        changed = tmp_path / f"changed-{name}.json"
        doc = json.loads(parties.result_path(name).read_text())
        doc["rows"][0]["n"] = doc["rows"][0]["n"] + 1 if isinstance(doc["rows"][0]["n"], int) else 1
        changed.write_text(json.dumps(doc))
        proved = iq("audit", "prove", ledger_of(tmp_path, name), "--entry", seq, "--result", changed, "--salt", salt)
        assert proved.returncode == 1 and "does not match the commitment" in proved.stdout
    for name in plan["parties"]:
        parties.result_path(name).unlink(missing_ok=True)
    codes, parties = run_parties(tmp_path, plan, corpus_data, approvals=[ok], trust=keys["trust"])
    assert_refused(plan, codes, parties, plan["parties"], "allows 1 run(s); this party's ledger already records 1 run(s)")


def test_revoked_approval_is_refused_by_the_parties(tmp_path, corpus_data, keys):
    """The approver revokes before the run: `iq revoke` writes the record next to the approval and
    every party, given only the approval file, finds it and refuses; the refusal is a run in the
    ledger, and no approved run is consumed."""
    plan = compile_plan(QUERY, CAT)
    ok = approval_file(tmp_path, plan, keys["police"], runs=2)
    revoked = iq("revoke", ok, "--key", keys["police"], "--reason", "agreement with the NGO ended")
    assert revoked.returncode == 0, revoked.stderr
    codes, parties = run_parties(tmp_path, plan, corpus_data, approvals=[ok], trust=keys["trust"])
    assert_refused(plan, codes, parties, plan["parties"], "was revoked by 'police' on")
    assert "agreement with the NGO ended" in parties.stderr("police")
    shown = iq("audit", "show", ledger_of(tmp_path, "ngo"), "--runs")
    assert "1 run(s): 0 finished, 0 failed, 1 refused, 0 killed" in shown.stdout, shown.stdout
    assert Ledger(ledger_of(tmp_path, "ngo")).runs_of(plan["hash"]) == 0


# -- the differencing attack through `iq run` ---------------------------------------------------------
def iq(*args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "insightql.runtime.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def police_csv(tmp_path) -> Path:
    """120 rows, 30 per region; one person aged 77 (North); three BG nationals (North)."""
    ds = CAT.datasets["police_victims"]
    rows = random_rows(ds, 120, np.random.default_rng(11), null_rate=0.0)
    for i, r in enumerate(rows):
        r.update(exp_Region=["North", "East", "South", "West"][i % 4], prs_Age=str(20 + i % 40),
                 prs_Nationality="NG" if i % 2 else "RO", person_id=str(1000 + i))
    rows[0]["prs_Age"] = "77"
    for i in (4, 8, 12):
        rows[i]["prs_Nationality"] = "BG"
    return write_csv(tmp_path / "police.csv", ds, rows)


def test_differencing_attack_is_suppressed(tmp_path, police_csv):
    led = tmp_path / "ledgers"
    queries = {
        "base": "WHERE prs_Nationality IN ('NG', 'RO', 'BG')",
        "minus_one": "WHERE prs_Nationality IN ('NG', 'RO', 'BG') AND NOT prs_Age = 77",
        "in_removed": "WHERE prs_Nationality IN ('NG', 'RO')",
    }
    results = {}
    for name, where in queries.items():
        q = tmp_path / f"{name}.iq"
        q.write_text(f"@name {name}\n@purpose research\n"
                     f"SELECT exp_Region, COUNT(*) AS n FROM police_victims {where} GROUP BY exp_Region;")
        out = tmp_path / f"{name}.json"
        proc = iq("run", q, "--catalog", CATALOG, "--data", f"police={police_csv}", "--ledger-dir", led,
                  "--quiet", "--timeout", "90", "--out", out)
        assert proc.returncode == 0, proc.stderr
        results[name] = {r["exp_Region"]: r["n"] for r in json.loads(out.read_text())["rows"]}
        results[name + "_text"] = proc.stdout
    assert results["base"] == {"North": 30, "East": 30, "South": 30, "West": 30}
    for name in ("minus_one", "in_removed"):  # every region could hold the removed rows: all suppressed
        for region in ("North", "East", "South", "West"):
            cell = results[name][region]
            assert isinstance(cell, dict) and cell["suppressed"], results[name]
            assert "earlier release" in cell["reason"], cell
        assert "compared with earlier release(s) base" in results[name + "_text"]  # the note the analyst reads
    assert "base, minus_one" in results["in_removed_text"]  # compared with both earlier releases

    # the ledgers written by these real runs verify, show the releases, and detect tampering
    police = led / "police.ledger.jsonl"
    assert iq("audit", "verify", police).returncode == 0
    shown = iq("audit", "show", police)
    assert shown.returncode == 0 and all(n in shown.stdout for n in queries)
    lines = police.read_bytes().splitlines(keepends=True)
    edits = {
        "byte": b"".join(lines).replace(b'"minus_one"', b'"minus_onf"', 1),
        "removed": b"".join(lines[:2] + lines[3:]),
        "swapped": b"".join(lines[:2] + [lines[3], lines[2]] + lines[4:]),
    }
    for kind, content in edits.items():
        bad = tmp_path / f"{kind}.ledger.jsonl"
        bad.write_bytes(content)
        res = iq("audit", "verify", bad)
        assert res.returncode == 1, (kind, res.stdout, res.stderr)
