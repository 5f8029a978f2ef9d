"""The governance record formats as pydantic models, from which spec/governance.schema.json (JSON
Schema, draft 2020-12) is generated: public keys, approvals (formats 1 and 2), revocations of an
approval or of a key, signed ledger heads and ledger entries (with the data of the entry kinds
whose fields are fixed). The writers build plain dicts (approvals.py, keys.py, revocations.py,
heads.py, ledger.py, party_checks.py); tests/test_governance_schemas.py validates what they write
against these models and checks that the schema file is current. Regenerate it with

    .venv/bin/python -m insightql.runtime.governance.schemas

Never edit spec/governance.schema.json by hand.
"""
from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

SHA = r"^sha256:[0-9a-f]{64}$"
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "spec" / "governance.schema.json"
KIND = Literal["run_started", "run_finished", "run_failed", "run_refused", "release", "approval", "note"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PublicKey(_Strict):
    """`<identity>.pub.json` from `iq keygen` (keys.py)."""
    format: Literal["insightql-public-key/1"]
    identity: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    algorithm: Literal["ed25519"]
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    fingerprint: str = Field(pattern=SHA)
    expires: Optional[date] = Field(None, description="last day (UTC) the key may be used; absent: never")


class Signer(_Strict):
    name: str
    role: str


class Conditions(_Strict):
    expires: Optional[date] = Field(description="last day (UTC) the approval is valid; null: never")
    runs: Optional[int] = Field(ge=1, description="runs each party may start; null: unlimited")


class ApprovalV1(_Strict):
    """An approval of format 1 (before signer and legal basis); still verifies."""
    format: Literal["insightql-approval/1"]
    plan_hash: str = Field(pattern=SHA)
    query_name: Optional[str]
    approver: str
    conditions: Conditions
    signed_at: str
    public_key_fingerprint: str = Field(pattern=SHA)
    signature: str = Field(description="base64 Ed25519 signature of the canonical JSON of the other fields")


class Approval(ApprovalV1):
    """`iq approve`: who signed, on what basis, all under the signature (section 1)."""
    format: Literal["insightql-approval/2"]
    signer: Signer
    legal_basis: str
    purpose: str
    reference: Optional[str]


class Revocation(_Strict):
    """`iq revoke APPROVAL`: withdraws one approval (revocations.py)."""
    format: Literal["insightql-revocation/1"]
    approval_id: str = Field(pattern=SHA, description="sha256 of the approval's signature")
    plan_hash: str = Field(pattern=SHA)
    approver: str
    reason: str
    revoked_at: str
    public_key_fingerprint: str = Field(pattern=SHA)
    signature: str


class KeyRevocation(_Strict):
    """`iq revoke KEY.pub.json`: a key revoked with itself (keys.py)."""
    format: Literal["insightql-key-revocation/1"]
    identity: str
    public_key_fingerprint: str = Field(pattern=SHA)
    reason: str
    revoked_at: str
    signature: str


class LedgerHead(_Strict):
    """`iq audit head`: a party's ledger head signed with its key (heads.py)."""
    format: Literal["insightql-ledger-head/1"]
    party: str
    count: int = Field(ge=0, description="number of entries")
    entry_hash: str = Field(pattern=r"^sha256:([0-9a-f]{64}|0)$", description="hash of entry count - 1")
    time: str
    public_key_fingerprint: str = Field(pattern=SHA)
    signature: str


class PeerHead(_Strict):
    seq: int = Field(ge=0)
    entry_hash: str = Field(pattern=SHA)


class RunStarted(BaseModel):
    """`run_started` data (later versions may add fields)."""
    parties: list[str]
    query: Optional[str]
    peer_heads: dict[str, Optional[PeerHead]]
    datasets: list[str] = Field(default_factory=list)
    run_id: Optional[str] = Field(None, pattern=SHA)


class Output(BaseModel):
    name: str
    columns: list[str]
    cells: int = Field(ge=0)
    suppressed: Optional[int] = Field(None, ge=0, description="at receivers only")


class Commitment(_Strict):
    scheme: Literal["hmac-sha256/canonical-json"]
    value: str = Field(pattern=r"^hmac-sha256:[0-9a-f]{64}$")
    salt_id: str


class Release(BaseModel):
    """`release` data (section 2.1, 2.4); later versions may add fields."""
    query: Optional[str]
    source_sha256: Optional[str] = None
    datasets: list[str]
    receivers: list[str]
    outputs: list[Output]
    guard_signature: Optional[dict] = None
    guard: list[str] = Field(default_factory=list)
    learned: list[dict] = Field(default_factory=list)
    commitment: Optional[Commitment] = None
    run_id: Optional[str] = Field(None, pattern=SHA)


class LedgerEntry(_Strict):
    """One line of a ledger (ledger.py, section 2.1)."""
    seq: int = Field(ge=0)
    time: str
    prev: str = Field(pattern=r"^sha256:([0-9a-f]{64}|0)$")
    kind: KIND
    plan_hash: Optional[str]
    data: dict
    entry_hash: str = Field(pattern=SHA)


MODELS = {"public_key": PublicKey, "approval": Approval, "approval_v1": ApprovalV1, "revocation": Revocation,
          "key_revocation": KeyRevocation, "ledger_head": LedgerHead, "ledger_entry": LedgerEntry,
          "run_started_data": RunStarted, "release_data": Release}


def governance_schema() -> dict:
    """One JSON Schema document whose $defs hold every record format."""
    defs = {}
    for name, model in MODELS.items():
        schema = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(schema.pop("$defs", {}))
        defs[name] = schema
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://insightql.example/spec/governance.schema.json",
            "title": "InsightQL governance records (generated from runtime/governance/schemas.py)",
            "$defs": dict(sorted(defs.items()))}


def schema_text() -> str:
    return json.dumps(governance_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    if not SCHEMA_PATH.exists() or SCHEMA_PATH.read_text(encoding="utf-8") != schema_text():
        SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
        print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
