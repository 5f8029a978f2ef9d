"""Data owners approve plans with Ed25519 signatures; parties check approvals before input.

An approval is a detached record signing one plan hash under conditions (expiry date, number
of runs). A party runs a plan only if ``verify_approvals`` returns no problems: the plan's own
hash recomputes, and every required approver (by default: the owner of each dataset the plan
reads) has a valid, unexpired approval, signed by the key this party trusts for that owner, for
exactly this plan hash, whose run limit this party's ledger has not reached, and which its
approver has not revoked (``revocations.py``). An approval names who signed it (person and role),
the legal basis and purpose it relies on and an optional reference, all under the signature.
Private keys may be encrypted with a passphrase. See spec/governance.md for the whole flow.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from insightql.compiler.plan.plan_io import plan_hash

from insightql.runtime.governance.ledger import Ledger, canonical_json

APPROVAL_FORMAT = "insightql-approval/2"
APPROVAL_FORMAT_V1 = "insightql-approval/1"
"""Version 1 (no signer, legal basis, purpose): still verifies, shown as "basis not recorded"."""
PUBLIC_KEY_FORMAT = "insightql-public-key/1"
PRIVATE_KEY_SUFFIX = ".key"
PUBLIC_KEY_SUFFIX = ".pub.json"
APPROVAL_FIELDS = ("format", "plan_hash", "query_name", "approver", "conditions", "signed_at",
                   "public_key_fingerprint", "signature")
REVOCATION_FORMAT = "insightql-revocation/1"
REVOCATION_FIELDS = ("format", "approval_id", "plan_hash", "approver", "reason", "revoked_at",
                     "public_key_fingerprint", "signature")
BASIS_FIELDS = ("signer", "legal_basis", "purpose", "reference")
"""Version 2 adds these; ``signer`` is {"name", "role"}; ``reference`` may be null."""
_IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

PublicKeyLike = Ed25519PublicKey | bytes | str | Mapping
__all__ = ["ApprovalError", "KeyPassphraseError", "approve", "compare_recompiled", "generate_key",
           "load_trusted_keys", "plan_hash", "read_approval", "verify_approvals", "write_approval"]


class KeyPassphraseError(ValueError):
    """A private key needs a passphrase that was not given, or the given one is wrong."""


class ApprovalError(Exception):
    """A plan may not run (or be approved): ``problems`` lists every reason."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("plan not approved:\n" + "\n".join(f"  - {p}" for p in self.problems))


# -- keys ---------------------------------------------------------------------------------------
def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    return "sha256:" + hashlib.sha256(_raw(public_key)).hexdigest()


def generate_key(identity: str, out_dir: str | os.PathLike, overwrite: bool = False,
                 passphrase: bytes | str | None = None) -> tuple[Path, Path]:
    """Create ``<identity>.key`` (PEM, mode 0600) and ``<identity>.pub.json`` in ``out_dir``.

    With a ``passphrase`` the PKCS#8 key is encrypted (``BestAvailableEncryption``)."""
    if not _IDENTITY.match(identity):
        raise ValueError(f"identity {identity!r} must be 1-64 letters, digits, '_', '.', '-'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / (identity + PRIVATE_KEY_SUFFIX), out / (identity + PUBLIC_KEY_SUFFIX)
    for p in (private_path, public_path):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    fp = fingerprint(key.public_key())
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    if passphrase is not None and not passphrase:
        raise ValueError("an empty passphrase protects nothing; omit it or give a real one")
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            encryption).decode("ascii")
    header = f"InsightQL approval key. Keep secret.\nidentity: {identity}\nfingerprint: {fp}\n"
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(header + pem)
    public = {"format": PUBLIC_KEY_FORMAT, "identity": identity, "algorithm": "ed25519",
              "public_key": base64.b64encode(_raw(key.public_key())).decode("ascii"), "fingerprint": fp}
    public_path.write_text(json.dumps(public, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return private_path, public_path


def key_is_encrypted(path: str | os.PathLike) -> bool:
    return "BEGIN ENCRYPTED PRIVATE KEY" in Path(path).read_text(encoding="ascii")


def load_private_key(path: str | os.PathLike, passphrase: bytes | str | None = None
                     ) -> tuple[str, Ed25519PrivateKey]:
    """(identity, key) from a key file written by ``generate_key``; KeyPassphraseError when an
    encrypted key gets no passphrase or a wrong one."""
    text = Path(path).read_text(encoding="ascii")
    m = re.search(r"^identity:\s*(\S+)\s*$", text, re.MULTILINE)
    if not m:
        raise ValueError(f"{path}: no 'identity:' line; not an InsightQL key file")
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    encrypted = "BEGIN ENCRYPTED PRIVATE KEY" in text
    if encrypted and not passphrase:
        raise KeyPassphraseError(f"{path} is protected by a passphrase; none was given")
    try:
        key = serialization.load_pem_private_key(text.encode("ascii"), password=passphrase if encrypted else None)
    except ValueError:
        if encrypted:
            raise KeyPassphraseError(f"wrong passphrase for {path}") from None
        raise
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return m.group(1), key


def _as_public_key(value: PublicKeyLike) -> Ed25519PublicKey:
    if isinstance(value, Ed25519PublicKey):
        return value
    if isinstance(value, Mapping):
        value = value["public_key"]
    if isinstance(value, str):
        value = base64.b64decode(value, validate=True)
    return Ed25519PublicKey.from_public_bytes(bytes(value))


def read_public_key(path: str | os.PathLike) -> tuple[str, Ed25519PublicKey]:
    """(identity, key) from a ``.pub.json`` file; checks the recorded fingerprint."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if doc.get("format") != PUBLIC_KEY_FORMAT or doc.get("algorithm") != "ed25519":
        raise ValueError(f"{path}: not an InsightQL Ed25519 public key file")
    key = _as_public_key(doc)
    if doc.get("fingerprint") not in (None, fingerprint(key)):
        raise ValueError(f"{path}: recorded fingerprint does not match the key")
    return doc["identity"], key


def load_trusted_keys(paths: Iterable[str | os.PathLike]) -> dict[str, Ed25519PublicKey]:
    """identity -> key from ``.pub.json`` files and directories of them."""
    trusted: dict[str, Ed25519PublicKey] = {}
    for p in map(Path, paths):
        files = sorted(p.glob("*" + PUBLIC_KEY_SUFFIX)) if p.is_dir() else [p]
        for f in files:
            identity, key = read_public_key(f)
            if identity in trusted and _raw(trusted[identity]) != _raw(key):
                raise ValueError(f"{f}: a different key for {identity!r} is already trusted")
            trusted[identity] = key
    return trusted


# -- approving ----------------------------------------------------------------------------------
def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


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


def sign_record(record: dict, key: Ed25519PrivateKey) -> dict:
    """``record`` plus ``signature``: Ed25519 over the canonical JSON of every other field."""
    signature = key.sign(canonical_json(record).encode("utf-8"))
    return {**record, "signature": base64.b64encode(signature).decode("ascii")}


def check_signature(rec: dict, key: Ed25519PublicKey) -> bool:
    body = {k: v for k, v in rec.items() if k != "signature"}
    try:
        key.verify(base64.b64decode(rec["signature"], validate=True), canonical_json(body).encode("utf-8"))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


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
               runs_done: int | None, revoked: Mapping[str, str]) -> tuple[str, str | None]:
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
        status, message = _check_one(rec, actual, trusted, today, runs_done, revoked)
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
