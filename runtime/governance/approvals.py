"""Data owners approve plans with Ed25519 signatures; parties check approvals before input.

An approval is a detached record signing one plan hash under conditions (expiry date, number
of runs). A party runs a plan only if ``verify_approvals`` returns no problems: the plan's own
hash recomputes, and every required approver (by default: the owner of each dataset the plan
reads) has a valid, unexpired approval, signed by the key this party trusts for that owner, for
exactly this plan hash, whose run limit this party's ledger has not reached, and which its
approver has not revoked (``revocations.py``). An approval names who signed it (person and role),
the legal basis and purpose it relies on and an optional reference, all under the signature.
Keys (``keys.py``) may be encrypted with a passphrase, may expire, and may be revoked; an approval
signed with an expired or revoked key is refused. See spec/governance.md for the whole flow.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from insightql.compiler.plan.plan_io import plan_hash

from insightql.runtime.governance.keys import (PUBLIC_KEY_FORMAT, PUBLIC_KEY_SUFFIX, KeyPassphraseError,  # noqa: F401
                                               PublicKeyLike, _as_public_key, _utc_iso, check_signature,
                                               fingerprint, generate_key, key_is_encrypted, key_problem,
                                               load_private_key, load_trusted_keys, private_key_expiry,
                                               read_public_key, sign_record)
from insightql.runtime.governance.ledger import Ledger, canonical_json

APPROVAL_FORMAT = "insightql-approval/2"
APPROVAL_FORMAT_V1 = "insightql-approval/1"
"""Version 1 (no signer, legal basis, purpose): still verifies, shown as "basis not recorded"."""
APPROVAL_FIELDS = ("format", "plan_hash", "query_name", "approver", "conditions", "signed_at",
                   "public_key_fingerprint", "signature")
REVOCATION_FORMAT = "insightql-revocation/1"
REVOCATION_FIELDS = ("format", "approval_id", "plan_hash", "approver", "reason", "revoked_at",
                     "public_key_fingerprint", "signature")
BASIS_FIELDS = ("signer", "legal_basis", "purpose", "reference")
"""Version 2 adds these; ``signer`` is {"name", "role"}; ``reference`` may be null."""
__all__ = ["ApprovalError", "KeyPassphraseError", "approve", "compare_recompiled", "generate_key",
           "load_trusted_keys", "plan_hash", "read_approval", "verify_approvals", "write_approval"]


class ApprovalError(Exception):
    """A plan may not run (or be approved): ``problems`` lists every reason."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("plan not approved:\n" + "\n".join(f"  - {p}" for p in self.problems))


# -- approving ----------------------------------------------------------------------------------
def basis_fields(signer: Mapping | None, legal_basis: str | None, purpose: str | None,
                 reference: str | None) -> dict:
    """The signed "who and on what basis" fields; ValueError naming what is missing."""
    signer = dict(signer or {})
    missing = [f"signer {k}" for k in ("name", "role") if not str(signer.get(k) or "").strip()]
    missing += [n for n, v in (("legal basis", legal_basis), ("purpose", purpose)) if not str(v or "").strip()]
    if missing:
        raise ValueError(f"an approval must say who signs and on what basis; missing: {', '.join(missing)}")
    return {"signer": {"name": str(signer["name"]).strip(), "role": str(signer["role"]).strip()},
            "legal_basis": legal_basis.strip(), "purpose": purpose.strip(),
            "reference": reference.strip() if reference and reference.strip() else None}


def approve(plan: dict, private_key_path: str | os.PathLike, expires: date | str | None = None,
            runs: int | None = None, *, signer: Mapping | None = None, legal_basis: str | None = None,
            purpose: str | None = None, reference: str | None = None, passphrase: bytes | str | None = None,
            now: datetime | None = None) -> dict:
    """A signed approval of exactly this plan; refuses a plan whose hash does not recompute.

    ``signer`` is {"name", "role"} of the person signing for the owner; ``purpose`` defaults to
    the plan's declared ``@purpose``. Every field, these included, is under the signature."""
    actual = plan_hash(plan)
    if plan.get("hash") != actual:
        raise ApprovalError([f"refusing to approve: plan hash {plan.get('hash')} does not match its "
                             f"contents ({actual}); the plan was modified after compilation"])
    now = now or datetime.now(timezone.utc)
    if isinstance(expires, str):
        expires = date.fromisoformat(expires)
    if expires is not None and expires < now.date():
        raise ValueError(f"expiry {expires} is in the past")
    if runs is not None and (not isinstance(runs, int) or isinstance(runs, bool) or runs < 1):
        raise ValueError(f"runs must be a positive integer, got {runs!r}")
    purpose = purpose if purpose is not None else plan.get("query", {}).get("purpose")
    basis = basis_fields(signer, legal_basis, purpose, reference)
    key_expires = private_key_expiry(private_key_path)
    if key_expires is not None and now.date() > key_expires:
        raise ValueError(f"the key {private_key_path} expired on {key_expires.isoformat()}; make a new key "
                         "(`iq keygen`) and give its public key to every party")
    identity, key = load_private_key(private_key_path, passphrase)
    record = {
        "format": APPROVAL_FORMAT,
        "plan_hash": actual,
        "query_name": plan.get("query", {}).get("name"),
        "approver": identity,
        "conditions": {"expires": expires.isoformat() if expires else None, "runs": runs},
        "signed_at": _utc_iso(now),
        "public_key_fingerprint": fingerprint(key.public_key()),
        **basis,
    }
    return sign_record(record, key)


def approval_id(rec: dict) -> str:
    """Names one approval (revocations point at it): sha256 of its signature."""
    return "sha256:" + hashlib.sha256(str(rec.get("signature")).encode("ascii")).hexdigest()


def write_approval(record: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_text(json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_approval(path: str | os.PathLike) -> dict:
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ValueError(f"{path}: an approval must be a JSON object")
    return record


def default_approval_path(plan_path: str | os.PathLike, identity: str) -> Path:
    """PLAN.json -> PLAN.approval.<identity>.json next to the plan."""
    plan_path = Path(plan_path)
    stem = plan_path.name[: -len(".json")] if plan_path.name.endswith(".json") else plan_path.name
    return plan_path.with_name(f"{stem}.approval.{identity}.json")


# -- verifying ----------------------------------------------------------------------------------
def required_approvers(plan: dict) -> dict[str, list[str]]:
    """owner -> datasets it owns in this plan: by default every owner must approve."""
    owners: dict[str, list[str]] = {}
    for name, ds in sorted(plan.get("datasets", {}).items()):
        owners.setdefault(ds["owner"], []).append(name)
    return owners


def _check_one(rec: dict, actual_hash: str, trusted: dict[str, Ed25519PublicKey], today: date,
               runs_done: int | None, revoked: Mapping[str, str], key_status: Mapping[str, dict]
               ) -> tuple[str, str | None]:
    """("bad" | "stale" | "ok", message). Bad: not authentic. Stale: authentic but unusable."""
    if not isinstance(rec, dict):
        return "bad", f"approval is malformed (a JSON object was expected, got {type(rec).__name__})"
    who = rec.get("approver")
    fields = APPROVAL_FIELDS + (BASIS_FIELDS if rec.get("format") == APPROVAL_FORMAT else ())
    missing = [f for f in fields if f not in rec]
    if missing or not isinstance(rec.get("conditions"), dict):
        return "bad", f"approval by {who!r} is malformed (missing {missing or ['conditions']})"
    if rec["format"] not in (APPROVAL_FORMAT, APPROVAL_FORMAT_V1):
        return "bad", f"approval by {who!r} has unknown format {rec['format']!r}"
    label = f"approval by {who!r} signed {rec['signed_at']}"
    if who not in trusted:
        return "bad", (f"{label}: signed by unknown key {rec['public_key_fingerprint']}; "
                       f"no trusted public key for {who!r}")
    key = trusted[who]
    if rec["public_key_fingerprint"] != fingerprint(key):
        return "bad", (f"{label}: signed by unknown key {rec['public_key_fingerprint']}; "
                       f"the trusted key for {who!r} is {fingerprint(key)}")
    if not check_signature(rec, key):
        return "bad", f"{label}: signature does not verify; the approval was altered or forged"
    unusable = key_problem(key_status.get(who), who, today)
    if unusable:
        return "bad", f"{label}: signed with a key that may no longer be used: {unusable}"
    if approval_id(rec) in revoked:
        return "stale", f"{label} was revoked {revoked[approval_id(rec)]}"
    if rec["plan_hash"] != actual_hash:
        return "stale", f"{label} is for a different plan ({rec['plan_hash']}, this plan is {actual_hash})"
    expires, runs = rec["conditions"].get("expires"), rec["conditions"].get("runs")
    if expires is not None and today > date.fromisoformat(expires):
        return "stale", f"{label} expired on {expires} (today is {today.isoformat()})"
    if runs is not None:
        if runs_done is None:
            return "stale", f"{label} allows {runs} run(s) but no ledger was given to count past runs"
        if runs_done >= runs:
            return "stale", (f"{label} allows {runs} run(s); this party's ledger already records "
                             f"{runs_done} run(s) of this plan")
    return "ok", None


def verify_approvals(plan: dict, approvals: list[dict], trusted_keys: Mapping[str, PublicKeyLike],
                     required: set[str] | None = None, today: date | None = None, *,
                     ledger: Ledger | str | os.PathLike | None = None, runs_done: int | None = None,
                     revocations: list[dict] = (), mode: str = "report") -> list[str]:
    """Every reason this plan may not run; empty if it may. ``mode="enforce"`` raises instead.

    ``required`` defaults to the owners of the plan's datasets. Run limits are counted in
    ``ledger`` (this party's) or taken from ``runs_done``. A ``revocations`` record signed by
    the approver's trusted key makes its approval unusable; one that does not verify is a problem.
    """
    if mode not in ("report", "enforce"):
        raise ValueError(f"mode must be 'report' or 'enforce', got {mode!r}")
    today = today or datetime.now(timezone.utc).date()
    trusted = {who: _as_public_key(k) for who, k in trusted_keys.items()}
    key_status = getattr(trusted_keys, "status", {})  # expiry and revocation (keys.TrustedKeys)
    name = plan.get("query", {}).get("name", "?")
    actual = plan_hash(plan)
    problems: list[str] = []
    if plan.get("hash") != actual:
        problems.append(f"plan {name!r}: recorded hash {plan.get('hash')} does not match its contents "
                        f"({actual}); the plan was modified after compilation")
    if ledger is not None:
        runs_done = (ledger if isinstance(ledger, Ledger) else Ledger(ledger)).runs_of(actual)
    owners = required_approvers(plan)
    required = set(owners) if required is None else set(required)
    revoked, bad_revocations = _revocations(revocations, approvals, trusted)
    problems += bad_revocations
    by_identity: dict[str, list[tuple[str, str | None]]] = {}
    for rec in approvals:
        status, message = _check_one(rec, actual, trusted, today, runs_done, revoked, key_status)
        if status == "bad":
            problems.append(message)
        who = rec.get("approver") if isinstance(rec, dict) else None
        by_identity.setdefault(who, []).append((status, message))
    for who in sorted(required):
        results = by_identity.get(who, [])
        if any(status == "ok" for status, _ in results):
            continue
        owns = f" (owner of {', '.join(owners[who])})" if who in owners else ""
        stale = [m for status, m in results if status == "stale"]
        if stale:
            problems.append(f"no valid approval from {who!r}{owns}: " + "; ".join(stale))
        elif results:
            problems.append(f"no valid approval from {who!r}{owns}: its approvals are not authentic")
        else:
            problems.append(f"missing approval from {who!r}{owns}")
    if problems and mode == "enforce":
        raise ApprovalError(problems)
    return problems


def _revocations(revocations: Iterable[dict], approvals: Iterable[dict],
                      trusted: Mapping[str, Ed25519PublicKey]) -> tuple[dict[str, str], list[str]]:
    """(approval id -> why it is revoked, problems). Only revocations of the given approvals are
    looked at; one that is malformed or not signed by the approver's trusted key is a problem
    (fail closed: the approval is treated as neither valid nor revoked, the plan does not run)."""
    ids = {approval_id(a): a.get("approver") for a in approvals if isinstance(a, dict)}
    revoked: dict[str, str] = {}
    problems: list[str] = []
    for rec in revocations:
        if not isinstance(rec, dict) or rec.get("approval_id") not in ids:
            continue
        who = rec.get("approver")
        missing = [f for f in REVOCATION_FIELDS if f not in rec]
        key = trusted.get(who) if who == ids[rec["approval_id"]] else None
        if missing or rec["format"] != REVOCATION_FORMAT:
            problems.append(f"revocation by {who!r} is malformed (missing {missing or ['format']})")
        elif key is None or rec["public_key_fingerprint"] != fingerprint(key) or not check_signature(rec, key):
            problems.append(f"revocation by {who!r} of {rec['approval_id'][:19]}... does not verify against the "
                            f"trusted key for {who!r}; it was altered or forged")
        else:
            revoked[rec["approval_id"]] = f"by {who!r} on {rec['revoked_at']}: {rec['reason']}"
    return revoked, problems


def compare_recompiled(plan: dict, recompiled: dict) -> list[str]:
    """Reproducible compilation: a party recompiles the plan's source with its own catalog."""
    if plan_hash(recompiled) == plan_hash(plan) == plan.get("hash"):
        return []
    problems = [f"recompiled plan hash {plan_hash(recompiled)} differs from the received plan "
                f"{plan.get('hash')}"]
    for key in sorted((set(plan) | set(recompiled)) - {"hash"}):
        if canonical_json(plan.get(key)) != canonical_json(recompiled.get(key)):
            problems.append(f"field {key!r} differs: received {json.dumps(plan.get(key))[:80]}, "
                            f"recompiled {json.dumps(recompiled.get(key))[:80]}")
    return problems
