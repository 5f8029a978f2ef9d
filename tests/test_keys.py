"""Issue 21 item 5: checks that do not pass silently. Keys may expire (`iq keygen --expires`) and
be revoked (`iq revoke KEY.pub.json`); approvals signed with such a key are refused with the
reason; key files without an expiry (written before it existed) still load; `iq verify` with a
ledger path that does not exist says it treats it as a new ledger."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from insightql.runtime.governance import heads
from insightql.runtime.governance.approvals import verify_approvals, write_approval
from insightql.runtime.governance.keys import generate_key, load_trusted_keys, read_public_key_file
from insightql.runtime.governance.ledger import Ledger

from test_approvals import OWNERS, SIGNED, approve_all, iq, make_plan, sign

SOON = datetime.now(timezone.utc).date() + timedelta(days=30)


@pytest.fixture()
def keys(tmp_path):
    out = {who: generate_key(who, tmp_path / "keys") for who in OWNERS if who != "police"}
    out["police"] = generate_key("police", tmp_path / "keys", expires=SOON)
    return out


def test_expiry_is_written_and_old_key_files_still_load(keys, tmp_path):
    private, public = keys["police"]
    assert json.loads(public.read_text())["expires"] == SOON.isoformat()
    assert f"expires: {SOON.isoformat()}" in private.read_text()
    assert read_public_key_file(keys["ngo"][1])[2] is None and "expires" not in json.loads(keys["ngo"][1].read_text())
    trusted = load_trusted_keys([tmp_path / "keys"])
    assert trusted.status["police"] == {"expires": SOON, "revoked": None}
    assert trusted.status["ngo"] == {"expires": None, "revoked": None}
    with pytest.raises(ValueError, match="in the past"):
        generate_key("bank", tmp_path / "keys", expires=date(2020, 1, 1))


def test_approval_with_an_expired_key_is_refused(keys, tmp_path):
    plan = make_plan()
    approvals = approve_all(plan, keys)
    trusted = load_trusted_keys([tmp_path / "keys"])
    assert verify_approvals(plan, approvals, trusted, today=SOON) == []  # the last valid day
    problems = verify_approvals(plan, approvals, trusted, today=SOON + timedelta(days=1))
    assert any("'police'" in p and f"the key of 'police' expired on {SOON.isoformat()}" in p for p in problems), problems
    assert not any("'ngo'" in p for p in problems)
    with pytest.raises(ValueError, match=f"expired on {SOON.isoformat()}"):
        sign(plan, keys["police"][0], now=datetime.combine(SOON + timedelta(days=1), datetime.min.time(), timezone.utc))


def test_revoked_key_is_refused_with_the_reason(keys, tmp_path, capsys):
    plan = make_plan()
    plan_path = tmp_path / "q.json"
    plan_path.write_text(json.dumps(plan))
    files = [write_approval(a, tmp_path / f"a-{a['approver']}.json") for a in approve_all(plan, keys)]
    assert iq("verify", plan_path, "--approvals", *files, "--trust", tmp_path / "keys") == 0
    capsys.readouterr()
    assert iq("revoke", keys["ngo"][1], "--key", keys["police"][0], "--reason", "not mine") == 2
    assert "is not the private key of" in capsys.readouterr().err
    assert iq("revoke", keys["police"][1], "--key", keys["police"][0], "--reason", "laptop stolen") == 0
    revocation = tmp_path / "keys" / "police.key-revocation.json"
    assert revocation.exists() and "police.key-revocation.json" in capsys.readouterr().out
    assert iq("verify", plan_path, "--approvals", *files, "--trust", tmp_path / "keys") == 1
    out = capsys.readouterr().out
    assert "NOT APPROVED" in out and "the key of 'police' was revoked on " in out and "laptop stolen" in out, out
    rec = json.loads(revocation.read_text())
    revocation.write_text(json.dumps(dict(rec, reason="routine rotation")))  # edited: fails closed
    assert iq("verify", plan_path, "--approvals", *files, "--trust", tmp_path / "keys") == 2
    err = capsys.readouterr().err
    assert err.startswith("iq: ") and "does not verify against that key" in err and "Traceback" not in err


def test_head_signed_with_a_revoked_key_is_not_authentic(keys, tmp_path):
    led = tmp_path / "police.ledger.jsonl"
    Ledger(led).append("note", None, {"text": "installed"})
    head = heads.signed_head(led, keys["police"][0])
    assert heads.head_signature_problem(head, load_trusted_keys([tmp_path / "keys"])) is None
    assert iq("revoke", keys["police"][1], "--key", keys["police"][0], "--reason", "stolen") == 0
    assert "was revoked" in heads.head_signature_problem(head, load_trusted_keys([tmp_path / "keys"]))


def test_verify_with_a_missing_ledger_says_it_is_new(keys, tmp_path, capsys):
    plan = make_plan()
    plan_path = tmp_path / "q.json"
    plan_path.write_text(json.dumps(plan))
    files = [write_approval(a, tmp_path / f"a-{a['approver']}.json") for a in approve_all(plan, keys, runs=1)]
    missing = tmp_path / "typo" / "police.ledger.jsonl"
    assert iq("verify", plan_path, "--approvals", *files, "--trust", tmp_path / "keys", "--ledger", missing) == 0
    out = capsys.readouterr().out
    assert f"warning: ledger {missing} does not exist; treated as a new ledger with no runs recorded" in out
    assert "OK: plan" in out and not missing.exists()  # it is not created either
    broken = tmp_path / "broken.ledger.jsonl"
    Ledger(broken).append("note", None, {"text": "x"})
    broken.write_text(broken.read_text().replace('"x"', '"y"'))
    assert iq("verify", plan_path, "--approvals", *files, "--trust", tmp_path / "keys", "--ledger", broken) == 1
    out = capsys.readouterr().out
    assert "NOT APPROVED" in out and f"ledger {broken} does not verify" in out
    assert SIGNED.year == 2024  # the approvals above were signed in the past and have no expiry of their own
