"""spec/governance.schema.json is generated from runtime/governance/schemas.py and is current, and
what the governance code writes validates against it: keys, approvals (1 and 2), revocations of
an approval and of a key, signed heads, ledger entries with run_started and release data."""
from __future__ import annotations

import json
from datetime import date, timedelta

import jsonschema
import pytest

from insightql.runtime.governance import heads, schemas
from insightql.runtime.governance.approvals import APPROVAL_FORMAT_V1, fingerprint, load_private_key, sign_record
from insightql.runtime.governance.keys import generate_key, revoke_key
from insightql.runtime.governance.ledger import Ledger
from insightql.runtime.governance.revocations import revoke

from test_approvals import SIGNED, approve_all, make_plan
from test_audit_heads import PARTIES, run

DOC = json.loads(schemas.SCHEMA_PATH.read_text(encoding="utf-8"))


def check(name: str, record) -> None:
    jsonschema.Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": DOC["$defs"]}).validate(record)


def test_schema_file_is_current():
    assert schemas.SCHEMA_PATH.read_text(encoding="utf-8") == schemas.schema_text(), \
        "spec/governance.schema.json is out of date: run `.venv/bin/python -m insightql.runtime.governance.schemas`"
    assert set(schemas.MODELS) <= set(DOC["$defs"])


@pytest.fixture
def keys(tmp_path):
    return {who: generate_key(who, tmp_path / "keys") for who in ("police", "ngo", "helpline")}


def test_records_written_validate(keys, tmp_path):
    plan = make_plan()
    approvals = approve_all(plan, keys)
    for a in approvals:
        check("approval", a)
    _, key = load_private_key(keys["police"][0])
    old = sign_record({"format": APPROVAL_FORMAT_V1, "plan_hash": plan["hash"], "query_name": "q", "approver": "police",
                       "conditions": {"expires": None, "runs": None}, "signed_at": "2024-01-01T00:00:00Z",
                       "public_key_fingerprint": fingerprint(key.public_key())}, key)
    check("approval_v1", old)
    check("revocation", revoke(approvals[0], keys["police"][0], "agreement ended", now=SIGNED))
    check("key_revocation", revoke_key(keys["police"][1], keys["police"][0], "stolen"))
    check("public_key", json.loads(keys["ngo"][1].read_text()))
    _, dated = generate_key("bank", tmp_path / "more", expires=date.today() + timedelta(days=10))
    assert "expires" in json.loads(dated.read_text())
    check("public_key", json.loads(dated.read_text()))


def test_ledger_entries_and_heads_validate(keys, tmp_path):
    led = {p: tmp_path / f"{p}.ledger.jsonl" for p in PARTIES}
    run(led, "sha256:" + "a" * 64, "by_region")
    run(led, "sha256:" + "a" * 64, "by_region")
    for e in Ledger(led["police"]).entries():
        check("ledger_entry", e)
        if e["kind"] == "run_started":
            check("run_started_data", e["data"])
        if e["kind"] == "release":
            e["data"]["commitment"] = {"scheme": "hmac-sha256/canonical-json", "value": "hmac-sha256:" + "0" * 64,
                                       "salt_id": "ab"}
            check("release_data", e["data"])
    check("ledger_head", heads.signed_head(led["police"], keys["police"][0]))


@pytest.mark.parametrize("name,record", [
    ("approval", {"format": "insightql-approval/2"}),
    ("ledger_head", {"format": "insightql-ledger-head/1", "party": "p", "count": -1, "entry_hash": "sha256:0",
                     "time": "t", "public_key_fingerprint": "sha256:" + "0" * 64, "signature": "s"}),
    ("ledger_entry", {"seq": 0, "time": "t", "prev": "sha256:0", "kind": "deleted", "plan_hash": None, "data": {},
                      "entry_hash": "sha256:" + "0" * 64}),
])
def test_malformed_records_fail(name, record):
    with pytest.raises(jsonschema.ValidationError):
        check(name, record)
