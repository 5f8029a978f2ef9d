"""Revoking an approval before it is used: a signed record that names one approval.

A revocation is written by the approver (``iq revoke APPROVAL --key KEY``) with the same key
that signed the approval, and lies next to it as ``<approval>.revocation.json``. A party that is
given approval files also reads every ``*.revocation.json`` in their folders (and any revocation
passed among the approval files), and refuses an approval that its approver revoked. The record:

    {"format": "insightql-revocation/1", "approval_id": "sha256:<of the approval's signature>",
     "plan_hash", "approver", "reason", "revoked_at", "public_key_fingerprint", "signature"}

signed like an approval (Ed25519 over the canonical JSON of every other field); parties check it
in ``approvals.verify_approvals(..., revocations=...)``. See spec/governance.md section 1.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from insightql.runtime.governance.approvals import (REVOCATION_FORMAT, _utc_iso, approval_id, fingerprint,
                                                    load_private_key, sign_record)

REVOCATION_SUFFIX = ".revocation.json"


def revoke(approval: dict, private_key_path: str | os.PathLike, reason: str, *,
           passphrase: bytes | str | None = None, now: datetime | None = None) -> dict:
    """A signed revocation of ``approval``; only the key that signed the approval may revoke it."""
    if not str(reason or "").strip():
        raise ValueError("a revocation must give its reason")
    identity, key = load_private_key(private_key_path, passphrase)
    if identity != approval.get("approver") or fingerprint(key.public_key()) != approval.get("public_key_fingerprint"):
        raise ValueError(f"this key ({identity}) did not sign the approval (by {approval.get('approver')!r}); "
                         "only the approver's own key can revoke it")
    record = {
        "format": REVOCATION_FORMAT,
        "approval_id": approval_id(approval),
        "plan_hash": approval.get("plan_hash"),
        "approver": identity,
        "reason": reason.strip(),
        "revoked_at": _utc_iso(now or datetime.now(timezone.utc)),
        "public_key_fingerprint": fingerprint(key.public_key()),
    }
    return sign_record(record, key)


def default_revocation_path(approval_path: str | os.PathLike) -> Path:
    """A.json -> A.revocation.json next to the approval."""
    p = Path(approval_path)
    return p.with_name((p.name[:-len(".json")] if p.name.endswith(".json") else p.name) + REVOCATION_SUFFIX)


def is_revocation(record) -> bool:
    return isinstance(record, dict) and record.get("format") == REVOCATION_FORMAT


def revocations_near(approval_paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Every ``*.revocation.json`` in the folders of these approval files, once each."""
    folders = dict.fromkeys(Path(p).resolve().parent for p in approval_paths)
    return sorted({f for d in folders for f in d.glob("*" + REVOCATION_SUFFIX)})


def write_revocation(record: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_text(json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
