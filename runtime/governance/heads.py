"""Ledger heads checked by a command (spec/governance.md 2.3): signed heads, and each ledger
checked against the heads the others hold.

A party's ledger can be rewritten consistently (its hash chain and sidecar recomputed), which no
check of the ledger alone can see. Two kinds of outside evidence catch it:

* a **signed head**, exported by the party after a run (``iq audit head``) and kept by the other
  parties or an auditor: ``{"format": "insightql-ledger-head/1", "party", "count", "entry_hash",
  "time", "public_key_fingerprint", "signature"}`` (canonical JSON; ``entry_hash`` is that of entry
  ``count - 1``, ``sha256:0`` for an empty ledger), signed with the party's approval key;
* the **peer heads** every other party recorded in its own ``run_started`` entries at each run's
  handshake (``data.peer_heads``).

``verify_heads`` checks every ledger given against both: the entry at each head's position must
exist and have that hash (else entries were cut off, or the ledger was rewritten there), and every
run another party recorded with this party among its ``parties`` must follow in this party's
ledger after the head recorded for it, with the same run id (else the run was omitted). Each run also gets a
``run_id``, the same at every computing party: the hash of the plan hash and of every computing
party's head at the handshake.
"""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from insightql.runtime.governance.keys import (_utc_iso, check_signature, fingerprint, key_problem,
                                               load_private_key, sign_record)
from insightql.runtime.governance.ledger import GENESIS, Ledger, canonical_json, sha256_tag, verify

HEAD_FORMAT = "insightql-ledger-head/1"
HEAD_FIELDS = ("format", "party", "count", "entry_hash", "time", "public_key_fingerprint", "signature")


def run_id(plan_hash: str | None, statuses: list[dict]) -> str | None:
    """The run's id from the handshake: every computing party computes the same one. None when
    the statuses carry no ledger heads (an output-only receiver hears only hellos)."""
    if not statuses or any("ledger_head" not in s for s in statuses):
        return None
    heads = {s["party"]: s.get("ledger_head") for s in statuses}
    return sha256_tag(canonical_json({"plan_hash": plan_hash, "heads": heads}))


def ledger_party(path: str | os.PathLike) -> str | None:
    """Whose ledger this is: the party its run_started entries list among the parties but not
    among the peers; else the ``<party>.ledger.jsonl`` file name; else None."""
    for e in Ledger(path).readable_entries():
        d = e.get("data") or {}
        if e.get("kind") == "run_started" and isinstance(d.get("peer_heads"), dict):
            me = set(d.get("parties") or []) - set(d["peer_heads"])
            if len(me) == 1:
                return me.pop()
    m = re.fullmatch(r"(.+)\.ledger\.jsonl", Path(path).name)
    return m.group(1) if m else None


def signed_head(path: str | os.PathLike, key_path: str | os.PathLike, *, passphrase: bytes | str | None = None,
                now: datetime | None = None) -> dict:
    """A head of the ledger at ``path`` signed with the party's key; ValueError if the ledger does
    not verify or is another party's."""
    problems = verify(path, use_sidecar=True)
    if problems:
        raise ValueError(f"{path} does not verify ({problems[0]}); a head of a broken ledger proves nothing")
    identity, key = load_private_key(key_path, passphrase)
    owner = ledger_party(path)
    if owner is not None and owner != identity:
        raise ValueError(f"{path} is {owner}'s ledger, and the key is {identity}'s; each party signs its own head")
    entries = list(Ledger(path).entries())
    record = {"format": HEAD_FORMAT, "party": identity, "count": len(entries),
              "entry_hash": entries[-1]["entry_hash"] if entries else GENESIS,
              "time": _utc_iso(now or datetime.now(timezone.utc)),
              "public_key_fingerprint": fingerprint(key.public_key())}
    return sign_record(record, key)


def head_text(record: dict) -> str:
    return canonical_json(record) + "\n"


def read_head(path: str | os.PathLike) -> dict:
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a signed head (not valid JSON at line {e.lineno}, column {e.colno})") from None
    if not isinstance(rec, dict) or rec.get("format") != HEAD_FORMAT:
        raise ValueError(f"{path}: not a signed head (format {HEAD_FORMAT} expected)")
    missing = [f for f in HEAD_FIELDS if f not in rec]
    if missing:
        raise ValueError(f"{path}: signed head is missing {', '.join(missing)}")
    if not isinstance(rec["count"], int) or rec["count"] < 0:
        raise ValueError(f"{path}: signed head has a count that is not a number of entries: {rec['count']!r}")
    return rec


def head_signature_problem(rec: dict, trusted) -> str | None:
    """Why a signed head is not authentic, or None. Expiry does not matter (a head is history);
    a revoked key does (it may have been stolen)."""
    who = rec.get("party")
    key = trusted.get(who)
    if key is None:
        return f"head of {who!r} signed {rec.get('time')}: no trusted public key for {who!r}"
    if rec.get("public_key_fingerprint") != fingerprint(key) or not check_signature(rec, key):
        return f"head of {who!r} signed {rec.get('time')}: signature does not verify (altered or forged)"
    status = dict(getattr(trusted, "status", {}).get(who) or {}, expires=None)
    revoked = key_problem(status, who, datetime.now(timezone.utc).date())
    return f"head of {who!r} signed {rec.get('time')}: {revoked}" if revoked else None


def _hashes(path) -> list[str]:
    return [e.get("entry_hash") for e in Ledger(path).readable_entries()]


def _at(hashes: list[str], count: int, expected: str, who: str, whose: str, what: str) -> str | None:
    """Compare the entry at position count-1 with a head of ``who``; the finding or None."""
    if count == 0:
        return None if expected == GENESIS else f"{what} records an empty ledger with hash {expected}"
    if count > len(hashes):
        return (f"{what} records {who}'s head at entry {count - 1}, but {whose} has only {len(hashes)} "
                f"entries: entries were cut off its end or the ledger was rewritten shorter")
    if hashes[count - 1] != expected:
        return (f"{what} records {who}'s entry {count - 1} as {expected[:19]}..., but {whose} has "
                f"{hashes[count - 1][:19]}... there: {who}'s ledger was rewritten at or before entry {count - 1}")
    return None


def verify_heads(ledgers: dict[str, Path], signed: list[dict] = (), trusted=None) -> dict[str, dict]:
    """party -> {"problems": [...], "checked": n, "sources": [...]} for every ledger given."""
    out = {p: {"problems": [f"chain: {x}" for x in verify(path)], "checked": 0, "sources": set()}
           for p, path in ledgers.items()}
    hashes = {p: _hashes(path) for p, path in ledgers.items()}
    runs = {p: [e for e in Ledger(path).readable_entries() if e.get("kind") == "run_started"]
            for p, path in ledgers.items()}
    for rec in signed:
        who = rec.get("party")
        if who not in ledgers:
            continue
        bad = head_signature_problem(rec, trusted or {})
        what = f"the head {who} signed at {rec['time']}"
        problem = bad or _at(hashes[who], rec["count"], str(rec["entry_hash"]), who, f"{who}'s ledger", what)
        out[who]["problems"] += [problem] if problem else []
        out[who]["checked"] += 1
        out[who]["sources"].add("signed heads")
    for witness, started in runs.items():
        for e in started:
            d = e.get("data") or {}
            for who, head in (d.get("peer_heads") or {}).items():
                if who == witness or who not in ledgers or head is None:
                    continue  # None: no ledger yet at the handshake, or not told (an output-only receiver)
                what = f"{witness}'s entry {e['seq']} (run_started of {d.get('query')}, {str(e.get('time'))[:19]})"
                if not isinstance(head, dict) or not isinstance(head.get("seq"), int) or "entry_hash" not in head:
                    problem = f"{what} records a malformed head of {who}: {str(head)[:80]}"
                else:
                    count = head["seq"] + 1
                    problem = _at(hashes[who], count, str(head["entry_hash"]), who, f"{who}'s ledger", what)
                    problem = problem or _run_follows(runs[who], count, e, who, what)
                out[who]["problems"] += [problem] if problem else []
                out[who]["checked"] += 1
                out[who]["sources"].add(witness)
    return {p: {**r, "sources": sorted(r["sources"])} for p, r in out.items()}


def _run_follows(own_runs: list[dict], count: int, peer_start: dict, who: str, what: str) -> str | None:
    """The run a peer recorded must be in ``who``'s ledger after the head it had at the handshake:
    a run_started of the same plan (and the same run id where both record one; two runs at once
    of different plans may interleave, so not necessarily the next one)."""
    rid = peer_start["data"].get("run_id")
    for e in own_runs:
        if e["seq"] >= count and e.get("plan_hash") == peer_start.get("plan_hash") and (
                rid is None or e["data"].get("run_id") in (None, rid)):
            return None
    return (f"{what} records a run with {who} among its parties, started when {who}'s ledger had {count} "
            f"entries; {who}'s ledger records no such run after entry {count - 1}: the run was omitted")
