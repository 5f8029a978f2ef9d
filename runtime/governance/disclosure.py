"""What a release disclosed, provably: a salted commitment to the released table and the leakage
items a party learned beside it (spec/governance.md 2.4).

A receiver commits to the canonical JSON of the table it received, ``{"columns", "rows"}`` as
``ResultTable.to_json`` writes them (suppressed cells included), with HMAC-SHA256 keyed by a
fresh random 32-byte salt. The commitment goes into the ledger; the salt goes into its own file
``<ledger>.salts/<salt_id>.salt`` (folder 0700, file 0600), never into the ledger: without the
salt the commitment reveals nothing about the values, with it anyone can check that a result
file is the one released (``iq audit prove``). A party that receives nothing commits to nothing
(``commitment: null``). Every party records the plan's leakage items addressed to it (their
``to`` list names it), except the output itself: row counts, match pattern, suppression flags.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from insightql.runtime.governance.ledger import canonical_json

SCHEME = "hmac-sha256/canonical-json"
SALT_BYTES = 32


def released_document(doc: dict) -> dict:
    """The committed part of a result (a parsed result.json or ``json.loads(table.to_json())``)."""
    return {"columns": list(doc["columns"]), "rows": list(doc["rows"])}


def commitment_value(doc: dict, salt: bytes) -> str:
    body = canonical_json(released_document(doc)).encode("utf-8")
    return "hmac-sha256:" + hmac.new(salt, body, hashlib.sha256).hexdigest()


def salt_folder(ledger_path: str | os.PathLike) -> Path:
    p = Path(ledger_path)
    return p.with_name(p.name + ".salts")


def commit_table(table, ledger_path: str | os.PathLike) -> dict:
    """Commit to ``table`` (a ResultTable): writes the salt file, returns the ledger's record."""
    salt, salt_id = secrets.token_bytes(SALT_BYTES), secrets.token_hex(8)
    folder = salt_folder(ledger_path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    fd = os.open(folder / f"{salt_id}.salt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(salt.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return {"scheme": SCHEME, "value": commitment_value(json.loads(table.to_json()), salt), "salt_id": salt_id}


def read_salt(path: str | os.PathLike) -> bytes:
    text = Path(path).read_text(encoding="ascii").strip()
    try:
        salt = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path}: not a salt file (expected {SALT_BYTES} bytes in hex)") from None
    if len(salt) != SALT_BYTES:
        raise ValueError(f"{path}: not a salt file (expected {SALT_BYTES} bytes in hex)")
    return salt


def prove(entry: dict, result_doc: dict, salt: bytes) -> str | None:
    """None if ``result_doc`` is what ``entry`` (a release) committed to; else why not."""
    if entry.get("kind") != "release":
        return f"entry {entry.get('seq')} is a {entry.get('kind')} entry, not a release"
    c = (entry.get("data") or {}).get("commitment")
    if not c:
        return (f"release entry {entry['seq']} holds no commitment (this party received nothing, or the "
                "entry predates commitments)")
    if c.get("scheme") != SCHEME:
        return f"unknown commitment scheme {c.get('scheme')!r}"
    try:
        got = commitment_value(result_doc, salt)
    except (KeyError, TypeError, ValueError) as e:
        return f"the result file is not a released table ({e})"
    if not hmac.compare_digest(got, c["value"]):
        return "the result does not match the commitment (values changed, or the wrong salt)"
    return None


def learned_items(plan: dict, me: str) -> list[dict]:
    """The plan's leakage items addressed to ``me``, except the output values themselves."""
    return [{k: v for k, v in item.items() if k != "to"} for item in plan.get("leakage", [])
            if me in item.get("to", []) and item.get("item") != "output"]
