"""Approval keys: Ed25519 key pairs of data owners, their expiry, and key revocations.

``iq keygen`` writes ``<identity>.key`` (PKCS#8 PEM, 0600, optionally passphrase-encrypted) and
``<identity>.pub.json``; each party keeps the public keys it trusts in its trust folder. A public
key may carry ``expires`` (the last day it is valid, UTC; absent or null: never, so key files
written before expiry existed read unchanged). A key is revoked by a signed record made with the
key itself (``iq revoke police.pub.json --key police.key --reason ...``):

    {"format": "insightql-key-revocation/1", "identity", "public_key_fingerprint", "reason",
     "revoked_at", "signature"}

written as ``<identity>.key-revocation.json`` next to the public key; a party that puts it in its
trust folder refuses every approval signed with that key, and so does ``iq verify``.
``load_trusted_keys`` returns the keys with that status (``TrustedKeys.status``); a key
revocation that does not verify against the trusted key stops the loading (fail closed).
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

from insightql.runtime.governance.ledger import canonical_json

PUBLIC_KEY_FORMAT = "insightql-public-key/1"
KEY_REVOCATION_FORMAT = "insightql-key-revocation/1"
KEY_REVOCATION_FIELDS = ("format", "identity", "public_key_fingerprint", "reason", "revoked_at", "signature")
PRIVATE_KEY_SUFFIX = ".key"
PUBLIC_KEY_SUFFIX = ".pub.json"
KEY_REVOCATION_SUFFIX = ".key-revocation.json"
_IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

PublicKeyLike = Ed25519PublicKey | bytes | str | Mapping


class KeyPassphraseError(ValueError):
    """A private key needs a passphrase that was not given, or the given one is wrong."""


class TrustedKeys(dict):
    """identity -> Ed25519PublicKey, with ``status[identity]``: {"expires": date | None,
    "revoked": "on <time>: <reason>" | None} of each key."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.status: dict[str, dict] = {}


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    return "sha256:" + hashlib.sha256(_raw(public_key)).hexdigest()


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def generate_key(identity: str, out_dir: str | os.PathLike, overwrite: bool = False,
                 passphrase: bytes | str | None = None, expires: date | None = None) -> tuple[Path, Path]:
    """Create ``<identity>.key`` (PEM, mode 0600) and ``<identity>.pub.json`` in ``out_dir``.

    With a ``passphrase`` the PKCS#8 key is encrypted (``BestAvailableEncryption``); with
    ``expires`` both files record the last day the key may sign."""
    if not _IDENTITY.match(identity):
        raise ValueError(f"identity {identity!r} must be 1-64 letters, digits, '_', '.', '-'")
    if expires is not None and expires < datetime.now(timezone.utc).date():
        raise ValueError(f"key expiry {expires} is in the past")
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
    header += f"expires: {expires.isoformat()}\n" if expires else ""
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(header + pem)
    public = {"format": PUBLIC_KEY_FORMAT, "identity": identity, "algorithm": "ed25519",
              "public_key": base64.b64encode(_raw(key.public_key())).decode("ascii"), "fingerprint": fp}
    if expires:
        public["expires"] = expires.isoformat()
    public_path.write_text(json.dumps(public, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return private_path, public_path


def key_is_encrypted(path: str | os.PathLike) -> bool:
    return "BEGIN ENCRYPTED PRIVATE KEY" in Path(path).read_text(encoding="ascii")


def private_key_expiry(path: str | os.PathLike) -> date | None:
    """The ``expires:`` line of a key file (None: the key does not expire)."""
    m = re.search(r"^expires:\s*(\S+)\s*$", Path(path).read_text(encoding="ascii"), re.MULTILINE)
    return _day(m.group(1), path) if m else None


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


def _day(text, where) -> date:
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        raise ValueError(f"{where}: expiry {text!r} is not a date (YYYY-MM-DD)") from None


def read_public_key_file(path: str | os.PathLike) -> tuple[str, Ed25519PublicKey, date | None]:
    """(identity, key, expiry) from a ``.pub.json`` file; checks the recorded fingerprint."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("format") != PUBLIC_KEY_FORMAT or doc.get("algorithm") != "ed25519":
        raise ValueError(f"{path}: not an InsightQL Ed25519 public key file")
    key = _as_public_key(doc)
    if doc.get("fingerprint") not in (None, fingerprint(key)):
        raise ValueError(f"{path}: recorded fingerprint does not match the key")
    expires = doc.get("expires")
    return doc["identity"], key, None if expires is None else _day(expires, path)


def read_public_key(path: str | os.PathLike) -> tuple[str, Ed25519PublicKey]:
    """(identity, key) from a ``.pub.json`` file; checks the recorded fingerprint."""
    identity, key, _ = read_public_key_file(path)
    return identity, key


def load_trusted_keys(paths: Iterable[str | os.PathLike]) -> TrustedKeys:
    """identity -> key from ``.pub.json`` files and directories of them, with each key's expiry
    and revocation (``*.key-revocation.json`` in the directories, or given as files)."""
    trusted, revocations = TrustedKeys(), []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(p.glob("*" + PUBLIC_KEY_SUFFIX))
            revocations += sorted(p.glob("*" + KEY_REVOCATION_SUFFIX))
        elif p.name.endswith(KEY_REVOCATION_SUFFIX):
            files, revocations = [], revocations + [p]
        else:
            files = [p]
        for f in files:
            identity, key, expires = read_public_key_file(f)
            if identity in trusted and _raw(trusted[identity]) != _raw(key):
                raise ValueError(f"{f}: a different key for {identity!r} is already trusted")
            trusted[identity] = key
            trusted.status[identity] = {"expires": expires, "revoked": None}
    for f in dict.fromkeys(revocations):
        rec = json.loads(Path(f).read_text(encoding="utf-8"))
        who = rec.get("identity") if isinstance(rec, dict) else None
        if who not in trusted or rec.get("public_key_fingerprint") != fingerprint(trusted[who]):
            continue  # another identity's key, or an older key of this one: nothing to revoke here
        missing = [k for k in KEY_REVOCATION_FIELDS if k not in rec]
        if missing or rec["format"] != KEY_REVOCATION_FORMAT or not check_signature(rec, trusted[who]):
            raise ValueError(f"{f}: the revocation of {who!r}'s key does not verify against that key "
                             "(altered or forged); remove it or get a valid one")
        trusted.status[who]["revoked"] = f"on {rec['revoked_at']}: {rec['reason']}"
    return trusted


def key_problem(status: Mapping | None, who: str, today: date) -> str | None:
    """Why the trusted key of ``who`` may not be used today (expired or revoked), or None."""
    status = status or {}
    if status.get("revoked"):
        return f"the key of {who!r} was revoked {status['revoked']}"
    if status.get("expires") is not None and today > status["expires"]:
        return f"the key of {who!r} expired on {status['expires'].isoformat()} (today is {today.isoformat()})"
    return None


def revoke_key(public_key_path: str | os.PathLike, private_key_path: str | os.PathLike, reason: str, *,
               passphrase: bytes | str | None = None, now: datetime | None = None) -> dict:
    """A key revocation signed by the key itself (proving the revoker holds it)."""
    if not str(reason or "").strip():
        raise ValueError("a key revocation must give its reason")
    identity, public, _ = read_public_key_file(public_key_path)
    me, key = load_private_key(private_key_path, passphrase)
    if me != identity or fingerprint(key.public_key()) != fingerprint(public):
        raise ValueError(f"{private_key_path} is not the private key of {public_key_path}; a key is revoked with "
                         "itself")
    record = {"format": KEY_REVOCATION_FORMAT, "identity": identity, "public_key_fingerprint": fingerprint(public),
              "reason": reason.strip(), "revoked_at": _utc_iso(now or datetime.now(timezone.utc))}
    return sign_record(record, key)


def default_key_revocation_path(public_key_path: str | os.PathLike, identity: str) -> Path:
    return Path(public_key_path).with_name(identity + KEY_REVOCATION_SUFFIX)


def sign_record(record: dict, key: Ed25519PrivateKey) -> dict:
    """``record`` plus ``signature``: Ed25519 over the canonical JSON of every other field."""
    signature = key.sign(canonical_json(record).encode("utf-8"))
    return {**record, "signature": base64.b64encode(signature).decode("ascii")}


def check_signature(rec: dict, key: Ed25519PublicKey) -> bool:
    body = {k: v for k, v in rec.items() if k != "signature"}
    try:
        key.verify(base64.b64decode(rec["signature"], validate=True), canonical_json(body).encode("utf-8"))
    except (InvalidSignature, ValueError, TypeError, KeyError):
        return False
    return True
