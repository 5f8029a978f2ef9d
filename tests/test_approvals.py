"""Plan approvals: every refusal with real key files, and the `iq keygen|approve|verify` handlers."""
from __future__ import annotations

import argparse
import copy
import json
import stat
from datetime import date, datetime, timezone

import pytest

from insightql.runtime.governance.approvals import (ApprovalError, approve, compare_recompiled, default_approval_path,
                                         generate_key, load_trusted_keys, plan_hash, read_approval,
                                         verify_approvals, write_approval)
from insightql.runtime.cli import audit
from insightql.runtime.cli.governance import add_commands
from insightql.runtime.governance.ledger import Ledger

OWNERS = ("police", "ngo", "helpline")
TODAY = date(2024, 3, 1)
SIGNED = datetime(2024, 2, 1, 12, 0, tzinfo=timezone.utc)


def make_plan(name: str = "victims_by_region", **extra) -> dict:
    plan = {
        "format": "insightql-plan/1",
        "compiler_version": "0.1.0",
        "catalog_digest": "sha256:" + "ab" * 32,
        "query": {"name": name, "source": f"insight {name} ...", "source_sha256": "sha256:" + "cd" * 32},
        "datasets": {"police_cases": {"owner": "police"}, "ngo_cases": {"owner": "ngo"},
                     "calls": {"owner": "helpline"}},
        "parties": list(OWNERS),
        "receivers": ["ngo"],
        "leakage": [],
        "outputs": [{"name": "by_region", "columns": ["region", "victims"]}],
    }
    plan.update(extra)
    plan["hash"] = plan_hash(plan)
    return plan


@pytest.fixture()
def keys(tmp_path):
    d = tmp_path / "keys"
    return {who: generate_key(who, d) for who in OWNERS}


@pytest.fixture()
def trusted(keys, tmp_path):
    return load_trusted_keys([tmp_path / "keys"])


BASIS = {"signer": {"name": "A. Jansen", "role": "data protection officer"},
         "legal_basis": "GDPR art. 6(1)(e); Police Data Act s. 8", "purpose": "research", "reference": "DPA-2024-17"}
CLI_BASIS = ("--signer", "A. Jansen", "--role", "data protection officer", "--legal-basis", "GDPR art. 6(1)(e)")


def sign(plan, key, **kw):
    """An approval with who signed and on what basis (required since format 2)."""
    return approve(plan, key, **{**BASIS, **kw})


def approve_all(plan, keys, **kw):
    kw.setdefault("now", SIGNED)
    return [sign(plan, keys[who][0], **kw) for who in OWNERS]


def test_all_owners_approve_passes(keys, trusted):
    plan = make_plan()
    assert verify_approvals(plan, approve_all(plan, keys), trusted, today=TODAY) == []


def test_key_files(keys, tmp_path):
    private_path, public_path = keys["police"]
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert "identity: police" in private_path.read_text()
    pub = json.loads(public_path.read_text())
    assert pub["identity"] == "police" and pub["algorithm"] == "ed25519" and pub["public_key"]
    with pytest.raises(FileExistsError):
        generate_key("police", tmp_path / "keys")
    with pytest.raises(ValueError):
        generate_key("../evil", tmp_path / "keys")


def test_approval_record_fields_and_roundtrip(keys, tmp_path):
    plan = make_plan()
    rec = sign(plan, keys["ngo"][0], expires=date(2024, 6, 30), runs=3, now=SIGNED)
    assert rec["plan_hash"] == plan["hash"] and rec["approver"] == "ngo"
    assert rec["conditions"] == {"expires": "2024-06-30", "runs": 3}
    assert rec["signed_at"] == "2024-02-01T12:00:00Z"
    assert rec["public_key_fingerprint"].startswith("sha256:") and rec["signature"]
    path = write_approval(rec, tmp_path / "a.json")
    assert read_approval(path) == rec


def test_refuses_tampered_plan(keys, trusted):
    plan = make_plan()
    approvals = approve_all(plan, keys)
    tampered = copy.deepcopy(plan)
    tampered["receivers"] = ["ngo", "press"]  # hash left as it was
    problems = verify_approvals(tampered, approvals, trusted, today=TODAY)
    assert any("modified after compilation" in p for p in problems)
    rehashed = dict(tampered, hash=plan_hash(tampered))  # attacker also recomputes the hash
    problems = verify_approvals(rehashed, approvals, trusted, today=TODAY)
    assert len(problems) == 3 and all("for a different plan" in p for p in problems)


def test_approve_refuses_tampered_plan(keys):
    plan = make_plan()
    plan["leakage"] = ["everything"]
    with pytest.raises(ApprovalError, match="modified after compilation"):
        sign(plan, keys["police"][0])


def test_refuses_unknown_key(keys, trusted, tmp_path):
    plan = make_plan()
    impostor_key, _ = generate_key("police", tmp_path / "mallory")  # claims to be police
    approvals = [sign(plan, impostor_key, now=SIGNED)] + approve_all(plan, keys)[1:]
    problems = verify_approvals(plan, approvals, trusted, today=TODAY)
    assert any("signed by unknown key" in p and "trusted key for 'police'" in p for p in problems)
    assert any("no valid approval from 'police'" in p for p in problems)


def test_refuses_approver_without_trusted_key(keys, trusted, tmp_path):
    plan = make_plan()
    outsider_key, _ = generate_key("press", tmp_path / "press")
    approvals = approve_all(plan, keys) + [sign(plan, outsider_key, now=SIGNED)]
    problems = verify_approvals(plan, approvals, trusted, today=TODAY)
    assert problems == [p for p in problems if "no trusted public key for 'press'" in p] and problems


def test_refuses_altered_approval(keys, trusted):
    plan = make_plan()
    approvals = approve_all(plan, keys, expires=date(2024, 2, 10))
    approvals[1]["conditions"]["expires"] = "2099-12-31"  # stretch the expiry
    problems = verify_approvals(plan, approvals, trusted, today=TODAY)
    assert any("'ngo'" in p and "signature does not verify" in p for p in problems)


def test_refuses_expired_approval(keys, trusted):
    plan = make_plan()
    approvals = approve_all(plan, keys, expires=date(2024, 2, 29))
    assert verify_approvals(plan, approvals, trusted, today=date(2024, 2, 29)) == []  # last valid day
    problems = verify_approvals(plan, approvals, trusted, today=TODAY)
    assert len(problems) == 3 and all("expired on 2024-02-29" in p for p in problems)


def test_approve_rejects_past_expiry_and_bad_runs(keys):
    plan = make_plan()
    with pytest.raises(ValueError, match="in the past"):
        sign(plan, keys["police"][0], expires=date(2024, 1, 1), now=SIGNED)
    with pytest.raises(ValueError, match="positive integer"):
        sign(plan, keys["police"][0], runs=0)


def test_refuses_wrong_plan_hash(keys, trusted):
    plan, other = make_plan(), make_plan("calls_by_month")
    approvals = approve_all(plan, keys)
    approvals[2] = sign(other, keys["helpline"][0], now=SIGNED)
    problems = verify_approvals(plan, approvals, trusted, today=TODAY)
    assert len(problems) == 1
    assert "no valid approval from 'helpline'" in problems[0] and "for a different plan" in problems[0]


def test_refuses_missing_owner_approval(keys, trusted):
    plan = make_plan()
    problems = verify_approvals(plan, approve_all(plan, keys)[:2], trusted, today=TODAY)
    assert problems == ["missing approval from 'helpline' (owner of calls)"]


def test_required_set_overrides_owners(keys, trusted):
    plan = make_plan()
    police_only = approve_all(plan, keys)[:1]
    assert verify_approvals(plan, police_only, trusted, required={"police"}, today=TODAY) == []


def test_refuses_runs_exceeded(keys, trusted, tmp_path):
    plan = make_plan()
    approvals = approve_all(plan, keys, runs=2)
    ledger = Ledger(tmp_path / "police.ledger")
    ledger.append("run_started", make_plan("other")["hash"], {})  # runs of other plans do not count
    for _ in range(2):
        assert verify_approvals(plan, approvals, trusted, today=TODAY, ledger=ledger) == []
        ledger.append("run_started", plan["hash"], {})
        ledger.append("run_finished", plan["hash"], {})
    problems = verify_approvals(plan, approvals, trusted, today=TODAY, ledger=ledger)
    assert len(problems) == 3 and all("already records 2 run(s)" in p for p in problems)
    problems = verify_approvals(plan, approvals, trusted, today=TODAY)  # limit without a ledger
    assert all("no ledger was given" in p for p in problems) and problems


def test_enforce_mode_raises_with_all_problems(keys, trusted):
    plan = make_plan()
    with pytest.raises(ApprovalError) as exc:
        verify_approvals(plan, approve_all(plan, keys)[:1], trusted, today=TODAY, mode="enforce")
    assert len(exc.value.problems) == 2 and "helpline" in str(exc.value)
    verify_approvals(plan, approve_all(plan, keys), trusted, today=TODAY, mode="enforce")


def test_compare_recompiled():
    plan = make_plan()
    assert compare_recompiled(plan, copy.deepcopy(plan)) == []
    other_catalog = make_plan(catalog_digest="sha256:" + "ef" * 32)
    problems = compare_recompiled(plan, other_catalog)
    assert len(problems) == 2 and "'catalog_digest' differs" in problems[1]


# -- CLI handlers -----------------------------------------------------------------------------
def iq(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="iq")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    audit.add_commands(sub)
    args = parser.parse_args([str(a) for a in argv])
    return args.fn(args)


def test_cli_keygen_approve_verify(tmp_path, capsys):
    plan_path = tmp_path / "q.json"
    plan_path.write_text(json.dumps(make_plan()))
    keydir = tmp_path / "k"
    for who in OWNERS:
        assert iq("keygen", "--identity", who, "--out", keydir) == 0
    assert iq("keygen", "--identity", "police", "--out", keydir) == 2  # refuses to overwrite
    for who in OWNERS:
        assert iq("approve", plan_path, "--key", keydir / f"{who}.key", "--runs", "5", *CLI_BASIS,
                  "--purpose", "research") == 0
    approvals = [default_approval_path(plan_path, who) for who in OWNERS]
    assert approvals[0].name == "q.approval.police.json" and approvals[0].exists()
    capsys.readouterr()
    assert iq("verify", plan_path, "--approvals", *approvals, "--trust", keydir,
              "--ledger", tmp_path / "ledger") == 0
    assert "OK: plan 'victims_by_region'" in capsys.readouterr().out
    assert iq("verify", plan_path, "--approvals", *approvals[:2], "--trust", keydir, "--ledger",
              tmp_path / "ledger") == 1
    out = capsys.readouterr().out
    assert "NOT APPROVED" in out and "missing approval from 'helpline'" in out
    assert iq("verify", plan_path, "--approvals", approvals[0], "--trust", *sorted(keydir.glob("*.pub.json")),
              "--require", "police", "--ledger", tmp_path / "ledger") == 0


def test_cli_verify_expired_and_output_option(tmp_path, capsys):
    plan_path = tmp_path / "q.json"
    plan_path.write_text(json.dumps(make_plan()))
    iq("keygen", "--identity", "police", "--out", tmp_path / "k")
    out = tmp_path / "mine.json"
    assert iq("approve", plan_path, "--key", tmp_path / "k" / "police.key", "--expires", "2999-01-01",
              "-o", out, *CLI_BASIS, "--purpose", "research") == 0
    assert read_approval(out)["conditions"] == {"expires": "2999-01-01", "runs": None}
    args = ("verify", plan_path, "--approvals", out, "--trust", tmp_path / "k", "--require", "police")
    assert iq(*args, "--today", "2999-01-01") == 0
    assert iq(*args, "--today", "2999-01-02") == 1
    assert "expired on 2999-01-01" in capsys.readouterr().out


def test_cli_approve_refuses_tampered_plan(tmp_path, capsys):
    plan = make_plan()
    plan["receivers"] = ["press"]
    plan_path = tmp_path / "q.json"
    plan_path.write_text(json.dumps(plan))
    iq("keygen", "--identity", "ngo", "--out", tmp_path)
    assert iq("approve", plan_path, "--key", tmp_path / "ngo.key", *CLI_BASIS, "--purpose", "research") == 1
    assert "refused:" in capsys.readouterr().out
    assert not default_approval_path(plan_path, "ngo").exists()
    with pytest.raises(SystemExit):
        iq("approve", plan_path, "--key", tmp_path / "ngo.key", "--runs", "0", *CLI_BASIS)
