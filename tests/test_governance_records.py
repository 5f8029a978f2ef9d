"""Issue 21 items 1-3 without parties: who signed and on what basis (each field signed), passphrase-
protected keys, revocations, commitments to released values, and every run in `iq audit show`."""
from __future__ import annotations

import copy
import json
import stat

import pytest

from insightql.compiler.plaintext.results import ResultTable, Suppressed
from insightql.runtime.governance import disclosure, history
from insightql.runtime.governance.approvals import (APPROVAL_FIELDS, APPROVAL_FORMAT_V1, KeyPassphraseError,
                                                    approve, fingerprint, generate_key, load_private_key,
                                                    load_trusted_keys, sign_record, verify_approvals, write_approval)
from insightql.runtime.governance.ledger import Ledger
from insightql.runtime.governance.revocations import default_revocation_path, revoke, write_revocation

from test_approvals import BASIS, CLI_BASIS, OWNERS, SIGNED, TODAY, approve_all, iq, make_plan


@pytest.fixture()
def keys(tmp_path):
    return {who: generate_key(who, tmp_path / "keys") for who in OWNERS}


@pytest.fixture()
def trusted(keys, tmp_path):
    return load_trusted_keys([tmp_path / "keys"])


# -- 1. who signed, on what basis ---------------------------------------------------------------
def test_basis_fields_recorded(keys):
    rec = approve(make_plan(), keys["police"][0], now=SIGNED, **BASIS)
    assert rec["format"] == "insightql-approval/2"
    assert rec["signer"] == {"name": "A. Jansen", "role": "data protection officer"}
    assert rec["legal_basis"].startswith("GDPR") and rec["purpose"] == "research" and rec["reference"] == "DPA-2024-17"


@pytest.mark.parametrize("path,value", [(("signer", "name"), "M. Mallory"), (("signer", "role"), "intern"),
                                        (("legal_basis",), "consent"), (("purpose",), "marketing"),
                                        (("reference",), "DPA-2099-1"), (("reference",), None)])
def test_each_basis_field_is_signed(keys, trusted, path, value):
    plan = make_plan()
    approvals = approve_all(plan, keys)
    assert verify_approvals(plan, approvals, trusted, today=TODAY) == []
    target = approvals[0]
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    problems = verify_approvals(plan, approvals, trusted, today=TODAY)
    assert any("'police'" in p and "signature does not verify" in p for p in problems), problems


def test_basis_field_removed_is_malformed(keys, trusted):
    plan = make_plan()
    approvals = approve_all(plan, keys)
    del approvals[1]["legal_basis"]
    problems = verify_approvals(plan, approvals, trusted, today=TODAY)
    assert any("'ngo' is malformed (missing ['legal_basis'])" in p for p in problems), problems


def test_approve_requires_signer_and_basis(keys):
    plan = make_plan()
    with pytest.raises(ValueError, match="missing: signer role, legal basis"):
        approve(plan, keys["police"][0], signer={"name": "A. Jansen"}, purpose="research")
    plan_with_purpose = make_plan(query={"name": "q", "source": "...", "purpose": "statistics"})
    rec = approve(plan_with_purpose, keys["police"][0], signer=BASIS["signer"], legal_basis="law")
    assert rec["purpose"] == "statistics" and rec["reference"] is None  # the plan's @purpose by default


def test_format_1_approval_still_verifies(keys, trusted):
    """Approvals signed before format 2 have no signer or basis; they verify as they were signed."""
    plan = make_plan()
    _, key = load_private_key(keys["police"][0])
    old = sign_record({"format": APPROVAL_FORMAT_V1, "plan_hash": plan["hash"], "query_name": "victims_by_region",
                       "approver": "police", "conditions": {"expires": None, "runs": None},
                       "signed_at": "2024-01-01T00:00:00Z", "public_key_fingerprint": fingerprint(key.public_key())},
                      key)
    assert set(old) == set(APPROVAL_FIELDS)
    assert verify_approvals(plan, [old], trusted, required={"police"}, today=TODAY) == []
    old["query_name"] = "other"
    assert "signature does not verify" in verify_approvals(plan, [old], trusted, required={"police"}, today=TODAY)[0]


# -- passphrase-protected keys ------------------------------------------------------------------
def test_passphrase_key_round_trip(tmp_path, trusted):
    key_path, _ = generate_key("police", tmp_path / "secret", passphrase="correct horse")
    assert "ENCRYPTED PRIVATE KEY" in key_path.read_text() and stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert load_private_key(key_path, "correct horse")[0] == "police"
    with pytest.raises(KeyPassphraseError, match="protected by a passphrase; none was given"):
        load_private_key(key_path)
    with pytest.raises(KeyPassphraseError, match="wrong passphrase"):
        load_private_key(key_path, b"wrong")
    rec = approve(make_plan(), key_path, now=SIGNED, passphrase="correct horse", **BASIS)
    assert verify_approvals(make_plan(), [rec], load_trusted_keys([tmp_path / "secret"]), required={"police"},
                            today=TODAY) == []


def test_cli_passphrase_file_env_and_wrong_passphrase(tmp_path, capsys, monkeypatch):
    plan_path = tmp_path / "q.json"
    plan_path.write_text(json.dumps(make_plan()))
    good, bad = tmp_path / "pass.txt", tmp_path / "wrong.txt"
    good.write_text("s3cret phrase\n")
    bad.write_text("guess\n")
    assert iq("keygen", "--identity", "police", "--out", tmp_path / "k", "--passphrase-file", good) == 0
    assert "passphrase-protected" in capsys.readouterr().out
    key = tmp_path / "k" / "police.key"
    args = ("approve", plan_path, "--key", key, *CLI_BASIS, "--purpose", "research", "-o", tmp_path / "a.json")
    assert iq(*args, "--passphrase-file", bad) == 2
    err = capsys.readouterr().err
    assert "iq: wrong passphrase for" in err and "Traceback" not in err
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert iq(*args) == 2  # no passphrase and no terminal: a clear error, no prompt, no traceback
    assert "needs a passphrase: give --passphrase-file FILE or set IQ_KEY_PASSPHRASE" in capsys.readouterr().err
    assert iq(*args, "--passphrase-file", good) == 0
    monkeypatch.setenv("IQ_KEY_PASSPHRASE", "s3cret phrase")
    assert iq(*args) == 0
    assert "signed by A. Jansen (data protection officer)" in capsys.readouterr().out


# -- revocation ---------------------------------------------------------------------------------
def test_revoked_approval_is_refused(keys, trusted):
    plan = make_plan()
    approvals = approve_all(plan, keys)
    gone = revoke(approvals[0], keys["police"][0], "consent withdrawn by the board")
    problems = verify_approvals(plan, approvals, trusted, today=TODAY, revocations=[gone])
    assert len(problems) == 1 and "no valid approval from 'police'" in problems[0]
    assert "was revoked by 'police' on" in problems[0] and "consent withdrawn by the board" in problems[0]
    renewed = approve(plan, keys["police"][0], **BASIS)  # a new approval supersedes the revoked one
    assert verify_approvals(plan, approvals + [renewed], trusted, today=TODAY, revocations=[gone]) == []
    other = revoke(approve_all(make_plan("other"), keys)[0], keys["police"][0], "x")
    assert verify_approvals(plan, approvals, trusted, today=TODAY, revocations=[other]) == []  # not about these


def test_only_the_approver_revokes_and_forgeries_refuse(keys, trusted):
    plan = make_plan()
    approvals = approve_all(plan, keys)
    with pytest.raises(ValueError, match="only the approver's own key can revoke it"):
        revoke(approvals[0], keys["ngo"][0], "not mine")
    forged = revoke(approvals[0], keys["police"][0], "x")
    forged["reason"] = "edited"
    problems = verify_approvals(plan, approvals, trusted, today=TODAY, revocations=[forged])
    assert problems and "revocation by 'police'" in problems[0] and "does not verify" in problems[0]


def test_cli_revoke_then_verify_reads_it_next_to_the_approval(tmp_path, keys, capsys):
    plan = make_plan()
    plan_path = tmp_path / "q.json"
    plan_path.write_text(json.dumps(plan))
    paths = [write_approval(a, tmp_path / f"q.approval.{w}.json") for w, a in zip(OWNERS, approve_all(plan, keys))]
    assert iq("revoke", paths[0], "--key", keys["police"][0], "--reason", "agreement ended") == 0
    assert default_revocation_path(paths[0]).name == "q.approval.police.revocation.json"
    assert default_revocation_path(paths[0]).exists()
    capsys.readouterr()
    assert iq("verify", plan_path, "--approvals", *paths, "--trust", tmp_path / "keys") == 1
    assert "was revoked by 'police'" in capsys.readouterr().out
    assert iq("revoke", paths[1], "--key", keys["police"][0], "--reason", "x") == 2  # ngo's approval


# -- 2. what was disclosed, provably ------------------------------------------------------------
def table() -> ResultTable:
    return ResultTable(["region", "n"], [["North", 30], ["East", Suppressed("fewer than k=10 rows")], ["South", 12.5]],
                       ["1 row(s) suppressed"])


def test_commitment_verifies_and_detects_a_changed_value(tmp_path):
    ledger = tmp_path / "ngo.ledger.jsonl"
    c = disclosure.commit_table(table(), ledger)
    salt_file = disclosure.salt_folder(ledger) / f"{c['salt_id']}.salt"
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(salt_file.parent.stat().st_mode) == 0o700
    entry = Ledger(ledger).append("release", "sha256:aa", {"query": "q", "commitment": c})
    assert salt_file.read_text().strip() not in ledger.read_text()  # the salt never enters the ledger
    salt = disclosure.read_salt(salt_file)
    doc = json.loads(table().to_json())
    assert disclosure.prove(entry, doc, salt) is None
    changed = copy.deepcopy(doc)
    changed["rows"][0]["n"] = 31
    assert "does not match the commitment" in disclosure.prove(entry, changed, salt)
    assert "does not match" in disclosure.prove(entry, doc, bytes(32))  # the wrong salt
    old = Ledger(ledger).append("release", "sha256:aa", {"query": "q"})  # entries before commitments
    assert "holds no commitment" in disclosure.prove(old, doc, salt)


def test_cli_audit_prove(tmp_path, capsys):
    ledger = tmp_path / "ngo.ledger.jsonl"
    c = disclosure.commit_table(table(), ledger)
    Ledger(ledger).append("run_started", "sha256:aa", {})
    Ledger(ledger).append("release", "sha256:aa", {"query": "q", "commitment": c})
    result = tmp_path / "result.json"
    result.write_text(table().to_json())
    salt = disclosure.salt_folder(ledger) / f"{c['salt_id']}.salt"
    assert iq("audit", "prove", ledger, "--entry", 1, "--result", result, "--salt", salt) == 0
    assert "OK: " in capsys.readouterr().out
    result.write_text(table().to_json().replace("30", "29"))
    assert iq("audit", "prove", ledger, "--entry", 1, "--result", result, "--salt", salt) == 1
    assert "NOT PROVEN" in capsys.readouterr().out
    assert iq("audit", "prove", ledger, "--entry", 0, "--result", result, "--salt", salt) == 1
    assert "not a release" in capsys.readouterr().out


def test_learned_items_are_the_leakage_report_for_this_party():
    plan = {"leakage": [{"item": "output", "to": ["ngo"]},
                        {"item": "suppression_flag", "to": ["ngo", "police"], "cells": 4},
                        {"item": "match_pattern", "to": ["police", "helper"], "detail": "which rows match"},
                        {"item": "input_sizes", "to": [], "public": False}]}
    assert disclosure.learned_items(plan, "ngo") == [{"item": "suppression_flag", "cells": 4}]
    assert [i["item"] for i in disclosure.learned_items(plan, "police")] == ["suppression_flag", "match_pattern"]
    assert disclosure.learned_items(plan, "helpline") == []


# -- 3. every run ---------------------------------------------------------------------------------
A, B = "sha256:" + "aa" * 32, "sha256:" + "bb" * 32


def history_ledger(path):
    led = Ledger(path)
    led.append("run_refused", A, {"by": ["police"], "reasons": ["approval ... was revoked"], "query": "qa"})
    for _ in range(2):
        led.append("approval", A, {"approver": "police", "conditions": {"runs": 3, "expires": None}})
        led.append("approval", A, {"approver": "ngo", "conditions": {"runs": None, "expires": None}})
        led.append("run_started", A, {"query": "qa"})
        if _ == 0:
            led.append("run_failed", A, {"error": "PeerLost: ngo disconnected", "query": "qa"})
    led.append("run_started", B, {"query": "qb"})  # killed after qa's second start: no approvals for B
    led.append("release", B, {"query": "qb", "receivers": ["ngo"], "outputs": []})
    led.append("run_finished", B, {})
    return led.path


def test_history_of_every_run(tmp_path):
    runs = history.runs(history_ledger(tmp_path / "p.ledger.jsonl"))
    assert [(r["query"], r["outcome"]) for r in runs] == [("qa", "refused"), ("qa", "failed"), ("qa", "killed"),
                                                          ("qb", "finished")]
    assert [history.describe(r) for r in runs[1:3]] == [
        "PeerLost: ngo disconnected (run 1 of 3 approved)",
        "started, never finished (killed or crashed): consumed approved run (run 2 of 3 approved)"]
    assert history.describe(runs[3]) == "released (run 1; no approval recorded)"


def test_cli_audit_show_lists_every_run(tmp_path, capsys):
    path = history_ledger(tmp_path / "p.ledger.jsonl")
    assert iq("audit", "show", path) == 0
    out = capsys.readouterr().out
    assert "4 run(s): 1 finished, 1 failed, 1 refused, 1 killed" in out
    assert "refused by police: approval ... was revoked" in out
    assert "killed    started, never finished (killed or crashed): consumed approved run (run 2 of 3 approved)" in out
    assert iq("audit", "show", path, "--runs", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert [r["outcome"] for r in shown] == ["refused", "failed", "killed", "finished"]
    assert shown[2]["run"] == 2 and shown[2]["approved"] == 3
