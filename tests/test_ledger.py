"""Hash-chained ledger: any edit, removal, swap or truncation is detected; `iq audit` handlers."""
from __future__ import annotations

import argparse
import json

import pytest

from insightql.runtime.governance import ledger as L
from insightql.runtime.cli.audit import add_commands

PLAN = "sha256:" + "12" * 32
OTHER = "sha256:" + "34" * 32


@pytest.fixture()
def path(tmp_path):
    led = L.Ledger(tmp_path / "police.ledger")
    led.append("approval", PLAN, {"approver": "police", "signature": "c2ln"})
    led.append("run_started", PLAN, {"parties": ["police", "ngo"]})
    led.append("release", PLAN, {"query": "victims_by_region", "receivers": ["ngo"], "datasets": ["cases"],
                                 "outputs": [{"name": "by_region", "columns": ["region", "n"], "cells": 7}]})
    led.append("run_finished", PLAN, {"ok": True})
    led.append("run_started", OTHER, {"note": "Zürich"})
    return led.path


def lines(path):
    return path.read_bytes().splitlines(keepends=True)


def test_untouched_ledger_verifies(path):
    assert L.verify(path) == []
    assert L.Ledger(path).verify() == []
    entries = list(L.Ledger(path).entries())
    assert [e["seq"] for e in entries] == [0, 1, 2, 3, 4]
    assert entries[0]["prev"] == L.GENESIS and entries[1]["prev"] == entries[0]["entry_hash"]


def test_empty_and_missing_ledger(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    assert L.verify(tmp_path / "empty") == []
    assert "does not exist" in L.verify(tmp_path / "nope")[0]


def test_every_single_byte_change_is_detected(path):
    raw = path.read_bytes()
    for i in range(len(raw)):
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:])
        assert L.verify(path, use_sidecar=False), f"byte {i} changed but not detected"


def test_whitespace_edit_keeping_json_is_detected(path):
    ls = lines(path)
    ls[2] = ls[2].replace(b'"kind":', b'"kind": ', 1)
    path.write_bytes(b"".join(ls))
    assert any("not in canonical form" in p for p in L.verify(path))


@pytest.mark.parametrize("index", [0, 2, 4])
def test_one_line_removed_is_detected(path, index):
    ls = lines(path)
    del ls[index]
    path.write_bytes(b"".join(ls))
    problems = L.verify(path)
    assert problems
    if index < 4:
        assert any("removed, inserted or reordered" in p for p in problems)
    else:
        assert any("cut off the end" in p for p in problems)


def test_two_lines_swapped_is_detected(path):
    ls = lines(path)
    ls[1], ls[2] = ls[2], ls[1]
    path.write_bytes(b"".join(ls))
    assert any("removed, inserted or reordered" in p for p in L.verify(path, use_sidecar=False))


def test_truncation_mid_line_is_detected_without_head(path):
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 10])
    assert any("middle of an entry" in p for p in L.verify(path, use_sidecar=False))


def test_truncation_of_whole_lines(path, tmp_path):
    published = L.Ledger(path).head()
    ls = lines(path)
    path.write_bytes(b"".join(ls[:3]))
    # The chain alone cannot tell a shorter ledger from an older one...
    assert L.verify(path, use_sidecar=False) == []
    # ...the sidecar head written by append() and a head published elsewhere can.
    assert any("cut off the end" in p for p in L.verify(path))
    assert any("cut off the end" in p for p in L.verify(path, head=published, use_sidecar=False))
    text_head = f"{published['seq']}:{published['entry_hash']}"
    assert L.verify(path, head=text_head, use_sidecar=False)


def test_rewritten_ledger_detected_only_against_published_head(path, tmp_path):
    published = L.Ledger(path).head()
    path.unlink()
    forged = L.Ledger(path)  # the party rewrites its whole history, releases left out
    for _ in range(5):
        forged.append("note", PLAN, {"innocent": True})
    assert L.verify(path) == []  # self-consistent, sidecar rewritten too
    problems = L.verify(path, head=published)
    assert any("ledger was rewritten" in p for p in problems)


def test_published_older_head_still_verifies_after_growth(path):
    old = L.Ledger(path).head()
    L.Ledger(path).append("note", None, {})
    assert L.verify(path, head=old) == []


def test_append_refuses_partial_tail_and_unknown_kind(path):
    with pytest.raises(L.LedgerError, match="unknown ledger entry kind"):
        L.Ledger(path).append("oops", PLAN, {})
    raw = path.read_bytes()
    path.write_bytes(raw[:-5])
    with pytest.raises(L.LedgerError, match="incomplete"):
        L.Ledger(path).append("note", PLAN, {})


def test_runs_of_and_releases(path):
    led = L.Ledger(path)
    assert led.runs_of(PLAN) == 1 and led.runs_of(OTHER) == 1 and led.runs_of("sha256:00") == 0
    (rel,) = led.releases()
    assert rel["query"] == "victims_by_region" and rel["receivers"] == ["ngo"] and rel["seq"] == 2
    assert rel["outputs"][0]["cells"] == 7


def test_release_data_from_plan():
    plan = {"query": {"name": "q", "source_sha256": "sha256:aa"}, "receivers": ["ngo"],
            "datasets": {"b": {"owner": "ngo"}, "a": {"owner": "police"}}}
    data = L.release_data(plan, [{"name": "t", "columns": ["x"], "cells": 2}])
    assert data["datasets"] == ["a", "b"] and data["receivers"] == ["ngo"] and data["query"] == "q"


# -- CLI handlers -----------------------------------------------------------------------------
def iq(*argv) -> int:
    parser = argparse.ArgumentParser(prog="iq")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.fn(args)


def test_cli_audit_verify(path, capsys, tmp_path):
    assert iq("audit", "verify", path) == 0
    out = capsys.readouterr().out
    assert "OK:" in out and "5 entries" in out
    head_file = tmp_path / "published.head"
    head_file.write_text(json.dumps(L.Ledger(path).head()))
    ls = lines(path)
    path.write_bytes(ls[0] + ls[2] + b"".join(ls[3:]))
    assert iq("audit", "verify", path, "--head", head_file) == 1
    out = capsys.readouterr().out
    assert "LEDGER BROKEN" in out and "removed, inserted or reordered" in out


def test_cli_audit_show(path, capsys):
    assert iq("audit", "show", path) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["TIME", "SEQ", "QUERY", "PLAN", "RECEIVERS", "RELEASED"]
    assert "victims_by_region" in out[1] and "121212121212" in out[1] and "by_region[region,n] 7 cells" in out[1]
    assert "1 release(s)" in out
    assert iq("audit", "show", path, "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["receivers"] == ["ngo"]
    path.write_bytes(path.read_bytes().replace(b'"ngo"]', b'"press"]', 1))
    assert iq("audit", "show", path) == 1
    assert "verification failed" in capsys.readouterr().err


def test_a_broken_line_is_named_in_words(tmp_path):
    """A line that is not JSON, or not UTF-8, is reported with its place, never Python's exception."""
    path = tmp_path / "p.ledger.jsonl"
    path.write_bytes(b'{"seq": 0\n\xff\xfe\n')
    problems = L.verify(path)
    text = "\n".join(problems)
    assert f"{path}:1: the entry is not valid JSON (at column 10)" in text
    assert f"{path}:2: the entry is not UTF-8 text (byte 1)" in text
    assert "Error" not in text
