"""Issue 21 item 4 without parties: signed ledger heads (`iq audit head`), every ledger checked
against the heads the others hold (`iq audit verify-heads`), and the release entries of all
parties compared (`iq audit compare`). The ledgers are written here as three parties write them
(run_started with the peers' heads and the run id, release, run_finished); a party that rewrites
its ledger recomputes the whole hash chain and sidecar, so `iq audit verify` alone passes."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from insightql.runtime.governance import compare, heads
from insightql.runtime.governance.keys import generate_key, load_trusted_keys
from insightql.runtime.governance.ledger import GENESIS, Ledger, canonical_json, entry_hash

PARTIES = ["police", "ngo", "helper"]
RECEIVERS = ["police", "ngo"]


def iq(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "insightql.runtime.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def run(ledgers: dict, plan_hash: str, query: str, receivers=RECEIVERS) -> None:
    """One run as the parties record it: the handshake's heads, then run_started, release, run_finished."""
    statuses = [{"party": p, "ledger_head": Ledger(ledgers[p]).head()} for p in PARTIES]
    rid = heads.run_id(plan_hash, statuses)
    for p in PARTIES:
        led = Ledger(ledgers[p])
        led.append("run_started", plan_hash, {"parties": PARTIES, "query": query, "datasets": ["police_victims"],
                                              "run_id": rid, "peer_heads": {s["party"]: s["ledger_head"]
                                                                            for s in statuses if s["party"] != p}})
        commitment = {"scheme": "hmac-sha256/canonical-json", "value": f"hmac-sha256:{p}", "salt_id": p}
        led.append("release", plan_hash, {"query": query, "datasets": ["police_victims"], "receivers": receivers,
                                          "outputs": [{"name": query, "columns": ["n"], "cells": 4}],
                                          "run_id": rid, "learned": [],
                                          "commitment": commitment if p in receivers else None})
        led.append("run_finished", plan_hash, {})


def rewrite(path, change) -> None:
    """Rewrite a ledger consistently: change the entries, recompute seq, prev, hashes and the sidecar."""
    entries = change(list(Ledger(path).entries()))
    prev, lines = GENESIS, []
    for seq, e in enumerate(entries):
        e = {k: v for k, v in e.items() if k != "entry_hash"} | {"seq": seq, "prev": prev}
        e["entry_hash"] = prev = entry_hash(e)
        lines.append(canonical_json(e) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    last = json.loads(lines[-1])
    path.with_name(path.name + ".head").write_text(canonical_json({"seq": last["seq"], "entry_hash": last["entry_hash"]}))


@pytest.fixture
def ledgers(tmp_path):
    led = {p: tmp_path / f"{p}.ledger.jsonl" for p in PARTIES}
    run(led, "sha256:aaa", "by_region")
    run(led, "sha256:bbb", "by_type")
    return led


@pytest.fixture
def police_key(tmp_path):
    key, _ = generate_key("police", tmp_path / "keys")
    return key


def test_run_id_is_the_same_at_every_party_and_differs_per_run(ledgers):
    ids = {p: [e["data"]["run_id"] for e in Ledger(ledgers[p]).entries() if e["kind"] == "run_started"]
           for p in PARTIES}
    assert ids["police"] == ids["ngo"] == ids["helper"] and len(set(ids["police"])) == 2
    assert heads.run_id("sha256:aaa", [{"party": "x", "plan_hash": "sha256:aaa"}]) is None  # no heads: no id


def test_whose_ledger(ledgers, tmp_path):
    other = tmp_path / "copy.jsonl"
    other.write_bytes(ledgers["ngo"].read_bytes())
    assert heads.ledger_party(other) == "ngo"  # from its run_started entries, not the file name
    empty = tmp_path / "helpline.ledger.jsonl"
    Ledger(empty).append("note", None, {"text": "installed"})
    assert heads.ledger_party(empty) == "helpline"


def test_all_consistent(ledgers):
    res = iq("audit", "verify-heads", *ledgers.values())
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK: police's ledger" in res.stdout and "held by helper, ngo" in res.stdout
    res = iq("audit", "compare", *ledgers.values())
    assert res.returncode == 0 and "OK: 2 release(s) agree" in res.stdout, res.stdout


def test_signed_head_catches_truncation_and_rewrite(ledgers, police_key, tmp_path):
    head = tmp_path / "police.head.json"
    res = iq("audit", "head", "--ledger", ledgers["police"], "--key", police_key, "-o", head)
    assert res.returncode == 0, res.stderr
    rec = json.loads(head.read_text())
    assert rec["format"] == "insightql-ledger-head/1" and rec["party"] == "police" and rec["count"] == 6
    assert head.read_text() == canonical_json(rec) + "\n"  # canonical JSON
    trust = tmp_path / "keys"
    ok = iq("audit", "verify-heads", ledgers["police"], "--heads", head, "--trust", trust)
    assert ok.returncode == 0 and "agrees with 1 head(s) held by signed heads" in ok.stdout, ok.stdout
    run(ledgers, "sha256:ccc", "later")  # ledgers only grow: an older head still holds
    assert iq("audit", "verify-heads", ledgers["police"], "--heads", head, "--trust", trust).returncode == 0

    rewrite(ledgers["police"], lambda es: es[:3])  # the last runs dropped, chain and sidecar recomputed
    assert iq("audit", "verify", ledgers["police"]).returncode == 0  # alone it looks intact
    res = iq("audit", "verify-heads", ledgers["police"], "--heads", head, "--trust", trust)
    assert res.returncode == 1 and "MISMATCH: police's ledger" in res.stdout
    assert "has only 3 entries: entries were cut off" in res.stdout, res.stdout


def test_forged_head_and_head_of_another_ledger(ledgers, police_key, tmp_path):
    rec = heads.signed_head(ledgers["police"], police_key)
    assert heads.head_signature_problem(rec, load_trusted_keys([tmp_path / "keys"])) is None
    forged = dict(rec, count=3)
    problem = heads.head_signature_problem(forged, load_trusted_keys([tmp_path / "keys"]))
    assert "signature does not verify" in problem
    with pytest.raises(ValueError, match="is ngo's ledger, and the key is police's"):
        heads.signed_head(ledgers["ngo"], police_key)


def test_consistent_rewrite_caught_by_peer_heads_and_compare(ledgers):
    def drop_receiver(es):
        es[1]["data"]["receivers"] = ["police"]  # police says ngo never received the first release
        return es
    rewrite(ledgers["police"], drop_receiver)
    assert iq("audit", "verify", ledgers["police"]).returncode == 0
    res = iq("audit", "verify-heads", *ledgers.values())
    assert res.returncode == 1, res.stdout
    assert "MISMATCH: police's ledger" in res.stdout and "OK: ngo's ledger" in res.stdout
    assert "ngo's entry 3 (run_started of by_type" in res.stdout and "rewritten at or before entry 2" in res.stdout
    only = iq("audit", "verify-heads", *ledgers.values(), "--party", "ngo")
    assert only.returncode == 0 and only.stdout.startswith("OK: ngo's ledger") and "MISMATCH" not in only.stdout
    res = iq("audit", "compare", *ledgers.values())
    assert res.returncode == 1
    assert "the receivers field differs: police (entry 1) disagrees with the other parties" in res.stdout, res.stdout
    assert "ngo (entry 1) [\"police\",\"ngo\"]" in res.stdout


def test_omitted_last_run_caught(ledgers):
    rewrite(ledgers["police"], lambda es: es[:3])  # police drops its second run altogether
    res = iq("audit", "verify-heads", *ledgers.values())
    assert res.returncode == 1 and "the run was omitted" in res.stdout, res.stdout
    res = iq("audit", "compare", *ledgers.values())
    assert res.returncode == 1 and "police records no such release, but helper (entry 4), ngo (entry 4) do" in res.stdout


def test_commitment_at_a_non_receiver(ledgers):
    def commit(es):
        es[1]["data"]["commitment"] = {"scheme": "hmac-sha256/canonical-json", "value": "hmac-sha256:x", "salt_id": "x"}
        return es
    rewrite(ledgers["helper"], commit)
    findings, n = compare.compare(ledgers)
    assert n == 2 and any("helper (entry 1) records a commitment to released values but is not a receiver" in f
                          for f in findings), findings


@pytest.mark.parametrize("args,message", [
    (["compare", "missing.ledger.jsonl"], "no such ledger file"),
    (["verify-heads", "LEDGER", "--heads", "HEAD"], "need --trust"),
    (["verify-heads", "LEDGER", "--party", "bank"], "no ledger of bank"),
])
def test_usage_errors(ledgers, police_key, tmp_path, args, message):
    head = tmp_path / "h.json"
    head.write_text(heads.head_text(heads.signed_head(ledgers["police"], police_key)))
    args = [str(ledgers["police"]) if a == "LEDGER" else str(head) if a == "HEAD" else a for a in args]
    res = iq("audit", *args)
    assert res.returncode == 2 and res.stderr.startswith("iq: ") and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_a_damaged_ledger_is_a_finding_not_a_crash(ledgers):
    with open(ledgers["helper"], "ab") as f:
        f.write(b'{"seq": 6, "half a line\n')
    res = iq("audit", "verify-heads", *ledgers.values())
    assert res.returncode == 1 and "MISMATCH: helper's ledger" in res.stdout and "chain: " in res.stdout, res.stdout
    assert "OK: police's ledger" in res.stdout and "Traceback" not in res.stderr
    res = iq("audit", "compare", *ledgers.values())
    assert res.returncode == 1 and "helper's ledger" in res.stdout and "does not verify" in res.stdout, res.stdout


def test_malformed_peer_head_and_signed_head(ledgers, police_key, tmp_path):
    def bad_head(es):
        es[3]["data"]["peer_heads"]["police"] = {"seq": "two"}
        return es
    rewrite(ledgers["ngo"], bad_head)
    res = iq("audit", "verify-heads", *ledgers.values())
    assert res.returncode == 1 and "ngo's entry 3 (run_started of by_type" in res.stdout
    assert "records a malformed head of police" in res.stdout and "Traceback" not in res.stderr, res.stderr
    head = tmp_path / "h.json"
    head.write_text(heads.head_text(dict(heads.signed_head(ledgers["police"], police_key), count="6")))
    res = iq("audit", "verify-heads", ledgers["police"], "--heads", head, "--trust", tmp_path / "keys")
    assert res.returncode == 2 and "count that is not a number of entries" in res.stderr, res.stderr
