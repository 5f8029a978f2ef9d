"""The governance, audit and certs commands say what is wrong with a file in words (issue 20 item 3):
one `iq:` line naming the file, exit 2, never Python's text (`[Errno 21]`, `Expecting value`, a
library's PEM message, a traceback)."""
from __future__ import annotations

from pathlib import Path

import pytest

from insightql.runtime.cli import main
from insightql.runtime.governance import heads
from insightql.runtime.governance.keys import generate_key
from insightql.runtime.governance.ledger import Ledger

PYTHON_TEXT = ("Errno", "Expecting value", "Traceback", "codec", "PEM", "Error:", "(char ")


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IQ_KEY_PASSPHRASE", raising=False)
    (tmp_path / "folder").mkdir()
    (tmp_path / "notjson.json").write_text("nope\n")
    (tmp_path / "object.json").write_text("{}")
    (tmp_path / "damaged.key").write_text("identity: police\n-----BEGIN PRIVATE KEY-----\nxx\n")
    (tmp_path / "binary.key").write_bytes(bytes(range(200, 256)))
    (tmp_path / "parties.toml").write_text('[[party]]\nname = "a"\nhost = "127.0.0.1"\nport = 1\n')
    generate_key("police", tmp_path / "keys")
    Ledger(tmp_path / "police.ledger.jsonl").append("note", None, {"text": "one"})
    return tmp_path


APPROVE = ["--signer", "A", "--role", "B", "--legal-basis", "C"]
CASES = [
    (["keygen", "--identity", "police", "--out", "notjson.json"], "--out notjson.json is a file; give the folder"),
    (["keygen", "--identity", "police", "--out", "keys"], "keys/police.key already exists; refusing to overwrite "
                                                          "a key (--force replaces the key pair)"),
    (["approve", "missing.json", "--key", "keys/police.key", *APPROVE], "missing.json: no such file or folder"),
    (["approve", "folder", "--key", "keys/police.key", *APPROVE], "folder: is a folder, not a file"),
    (["approve", "notjson.json", "--key", "keys/police.key", *APPROVE],
     "notjson.json: not valid JSON (at line 1, column 1)"),
    (["approve", "object.json", "--key", "keys/police.key", *APPROVE],
     "object.json: not a compiled plan (iq compile writes one)"),
    (["revoke", "notjson.json", "--key", "keys/police.key", "--reason", "r"],
     "notjson.json: not valid JSON (at line 1, column 1)"),
    (["revoke", "keys/police.pub.json", "--key", "damaged.key", "--reason", "r"],
     "damaged.key: not an InsightQL private key file, or a damaged one"),
    (["revoke", "keys/police.pub.json", "--key", "binary.key", "--reason", "r"],
     "binary.key: not an InsightQL private key file, or a damaged one"),
    (["verify", "notjson.json", "--trust", "keys"], "notjson.json: not valid JSON"),
    (["verify", "object.json", "--trust", "folder"], "object.json: not a compiled plan"),
    (["audit", "verify", "missing.jsonl"], "missing.jsonl: no such ledger file"),
    (["audit", "verify", "folder"], "folder: is a folder, not a ledger file"),
    (["audit", "show", "folder"], "folder: is a folder, not a ledger file"),
    (["audit", "show", "notjson.json"], "notjson.json: cannot read its entries (an entry is not JSON)"),
    (["audit", "prove", "missing.jsonl", "--entry", "1", "--result", "r.json", "--salt", "s"],
     "missing.jsonl: no such ledger file"),
    (["audit", "head", "--ledger", "folder", "--key", "keys/police.key"], "folder: is a folder, not a ledger file"),
    (["audit", "compare", "police=folder"], "folder: is a folder, not a ledger file"),
    (["audit", "verify-heads", "police=notjson.json", "--heads", "notjson.json", "--trust", "keys"],
     "notjson.json: not valid JSON (at line 1, column 1)"),
    (["audit", "verify", "police.ledger.jsonl", "--head", "notjson.json"], "--head notjson.json: not a ledger head"),
    (["audit", "report", "--ledger", "police.ledger.jsonl", "--catalog", "c.toml", "--format", "md", "--out",
      "object.json"], "--out object.json is a file; give the folder for the reports"),
    (["certs", "--parties", "missing.toml"], "missing.toml: no such parties file"),
    (["certs", "--parties", "folder"], "folder: is a folder, not a parties file"),
    (["certs", "--parties", "parties.toml", "--days", "0"], "--days 0: a certificate must be valid for at least one day"),
]


@pytest.mark.parametrize("argv, words", CASES, ids=[" ".join(c[0][:2]) + f" {i}" for i, c in enumerate(CASES)])
def test_errors_in_words(files, capsys, argv, words):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.startswith("iq: ") and len(err.splitlines()) == 1, err
    assert words in err, err
    assert not [t for t in PYTHON_TEXT if t in err], err


def test_audit_verify_takes_a_signed_head(files, capsys):
    """`--head` accepts the file `iq audit head` writes: a ledger cut back before it is caught."""
    ledger = files / "police.ledger.jsonl"
    Ledger(ledger).append("note", None, {"text": "two"})
    signed = files / "police.head.json"
    signed.write_text(heads.head_text(heads.signed_head(ledger, files / "keys" / "police.key")))
    assert main(["audit", "verify", str(ledger), "--head", str(signed)]) == 0
    assert "intact, 2 entries (head checked)" in capsys.readouterr().out
    ledger.write_text(ledger.read_text().splitlines(keepends=True)[0])
    Path(str(ledger) + ".head").unlink(missing_ok=True)
    assert main(["audit", "verify", str(ledger), "--head", str(signed)]) == 1
    assert "entries were cut off the end" in capsys.readouterr().out
