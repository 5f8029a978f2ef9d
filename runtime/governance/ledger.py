"""Per-party, append-only, hash-chained ledger of runs, approvals and releases.

One JSON object per line, each line the canonical JSON of its entry:

    {"seq", "time", "prev", "kind", "plan_hash", "data", "entry_hash"}

``entry_hash`` is ``sha256:`` + sha256 of the canonical JSON of the entry without
``entry_hash``; ``prev`` is the ``entry_hash`` of the previous entry (``sha256:0`` for the
first). ``verify`` therefore detects an edited byte, a removed, inserted or reordered line and
a file cut in the middle of a line. Cutting whole lines off the end, or rewriting the whole
file, is only detected against a head (seq + entry_hash) kept elsewhere: ``head()`` returns it,
every append also writes it to the sidecar ``<ledger>.head``, and ``verify(path, head=...)``
checks a head published to someone else. See spec/governance.md.
"""
from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

GENESIS = "sha256:0"
KINDS = frozenset(
    {"run_started", "run_finished", "run_failed", "run_refused", "release", "approval", "note"}
)
ENTRY_FIELDS = ("seq", "time", "prev", "kind", "plan_hash", "data", "entry_hash")

try:  # POSIX advisory lock so two processes of one party cannot interleave appends.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None



def json_words(exc: Exception) -> str:
    """What is wrong with a line that does not parse, in words (never Python's exception text)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start + 1})"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON (at column {exc.colno})"
    return "not readable"

class LedgerError(Exception):
    """The ledger cannot be appended to (corrupt tail, bad kind)."""


def canonical_json(obj: Any) -> str:
    """The one serialisation that is hashed: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_tag(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_hash(entry: dict) -> str:
    return sha256_tag(canonical_json({k: v for k, v in entry.items() if k != "entry_hash"}))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _head_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


class Ledger:
    """Append-only ledger file of one party. Appends are locked, flushed and fsync'ed."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # -- writing ---------------------------------------------------------------------------
    def append(self, kind: str, plan_hash: str | None, data: dict | None = None) -> dict:
        if kind not in KINDS:
            raise LedgerError(f"unknown ledger entry kind {kind!r}; expected one of {sorted(KINDS)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        with open(self.path, "a+b") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                last = self._last_entry(f)
                entry = {
                    "seq": 0 if last is None else last["seq"] + 1,
                    "time": _now(),
                    "prev": GENESIS if last is None else last["entry_hash"],
                    "kind": kind,
                    "plan_hash": plan_hash,
                    "data": data or {},
                }
                entry["entry_hash"] = entry_hash(entry)
                f.seek(0, os.SEEK_END)
                f.write((canonical_json(entry) + "\n").encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
                self._write_head(entry)
            finally:
                if fcntl is not None:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        if created:
            _fsync_dir(self.path.parent)
        return entry

    def _last_entry(self, f) -> dict | None:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return None
        chunk, pos = b"", size
        while pos > 0 and chunk.count(b"\n") < 2:
            step = min(4096, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step) + chunk
        if not chunk.endswith(b"\n"):
            raise LedgerError(f"{self.path}: last entry is incomplete (interrupted write?); "
                              "run `iq audit verify` and repair before appending")
        line = chunk[:-1].rsplit(b"\n", 1)[-1]
        try:
            last = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LedgerError(f"{self.path}: last entry is {json_words(exc)}") from None
        if not isinstance(last, dict) or last.get("entry_hash") != entry_hash(last):
            raise LedgerError(f"{self.path}: last entry does not match its entry_hash")
        return last

    def _write_head(self, entry: dict) -> None:
        head = _head_path(self.path)
        tmp = head.with_name(head.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as h:
            h.write(canonical_json({"seq": entry["seq"], "entry_hash": entry["entry_hash"]}) + "\n")
            h.flush()
            os.fsync(h.fileno())
        os.replace(tmp, head)

    # -- reading ---------------------------------------------------------------------------
    def entries(self) -> Iterator[dict]:
        """Parsed entries in file order (no verification; call verify() for that)."""
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    def readable_entries(self) -> list[dict]:
        """The entries that parse as JSON objects, skipping broken lines (verify() reports them):
        for cross-checks that must still say something about a damaged ledger."""
        out = []
        if self.path.exists():
            for line in self.path.read_bytes().splitlines():
                try:
                    e = json.loads(line.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    continue
                if isinstance(e, dict) and isinstance(e.get("seq"), int):
                    out.append(e)
        return out

    def head(self) -> dict | None:
        """{"seq", "entry_hash"} of the last entry: publish it to detect truncation/rewrites."""
        last = None
        for last in self.entries():
            pass
        return None if last is None else {"seq": last["seq"], "entry_hash": last["entry_hash"]}

    def runs_of(self, plan_hash: str) -> int:
        """How many times this party started the plan (started runs count, even failed ones)."""
        return sum(1 for e in self.entries() if e["kind"] == "run_started" and e["plan_hash"] == plan_hash)

    def releases(self) -> list[dict]:
        return releases(self.path)

    def verify(self, head: dict | str | None = None, use_sidecar: bool = True) -> list[str]:
        return verify(self.path, head=head, use_sidecar=use_sidecar)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def parse_head(head: dict | str) -> dict:
    """A head is {"seq", "entry_hash"}, its canonical JSON, or "<seq>:sha256:<hex>"."""
    if isinstance(head, dict):
        return {"seq": int(head["seq"]), "entry_hash": str(head["entry_hash"])}
    text = head.strip()
    if text.startswith("{"):
        return parse_head(json.loads(text))
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or not digest.startswith("sha256:"):
        raise ValueError(f"not a ledger head: {head!r} (expected '<seq>:sha256:<hex>' or JSON)")
    return {"seq": int(seq), "entry_hash": digest}


def verify(path: str | os.PathLike, head: dict | str | None = None, use_sidecar: bool = True) -> list[str]:
    """Every problem found in the ledger at ``path``; an empty list means the chain is intact.

    ``head`` is a head recorded elsewhere; if omitted and ``use_sidecar`` is set, the
    ``<ledger>.head`` sidecar written by ``Ledger.append`` is used when present.
    """
    path = Path(path)
    if not path.exists():
        return [f"{path}: ledger file does not exist"]
    raw = path.read_bytes()
    problems: list[str] = []
    if raw and not raw.endswith(b"\n"):
        problems.append(f"{path}: file ends in the middle of an entry (truncated or partial write)")
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    prev, expected_seq, hashes = GENESIS, 0, {}
    for lineno, line in enumerate(lines, 1):
        where = f"{path}:{lineno}"
        try:
            entry = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problems.append(f"{where}: the entry is {json_words(exc)}; chain broken here")
            prev, expected_seq = None, None
            continue
        if not isinstance(entry, dict) or set(entry) != set(ENTRY_FIELDS):
            got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            problems.append(f"{where}: entry fields are {got}, expected {sorted(ENTRY_FIELDS)}")
            prev, expected_seq = None, None
            continue
        if line.decode("utf-8") != canonical_json(entry):
            problems.append(f"{where}: line is not in canonical form (bytes were edited)")
        if entry["entry_hash"] != entry_hash(entry):
            problems.append(f"{where}: entry_hash does not match the entry contents (entry was edited)")
        if expected_seq is not None and entry["seq"] != expected_seq:
            problems.append(f"{where}: seq is {entry['seq']}, expected {expected_seq} "
                            "(entries removed, inserted or reordered)")
        if prev is not None and entry["prev"] != prev:
            problems.append(f"{where}: prev does not match the previous entry's hash "
                            "(entries removed, inserted or reordered)")
        hashes[entry["seq"]] = entry["entry_hash"]
        prev = entry["entry_hash"]
        expected_seq = entry["seq"] + 1 if isinstance(entry["seq"], int) else None
    if head is None and use_sidecar and _head_path(path).exists():
        head = _head_path(path).read_text(encoding="utf-8")
    if head is not None:
        try:
            h = parse_head(head)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}: cannot read head: {json_words(exc)}")
        except (ValueError, KeyError) as exc:
            problems.append(f"{path}: cannot read head: " + (f"no field {exc}" if isinstance(exc, KeyError) else str(exc)))
        else:
            if h["seq"] not in hashes:
                problems.append(f"{path}: head entry seq {h['seq']} is missing "
                                f"(ledger has {len(hashes)} entries): entries were cut off the end")
            elif hashes[h["seq"]] != h["entry_hash"]:
                problems.append(f"{path}: entry seq {h['seq']} has hash {hashes[h['seq']]}, "
                                f"but the head records {h['entry_hash']}: ledger was rewritten")
    return problems


def releases(path: str | os.PathLike) -> list[dict]:
    """What was released and to whom: one dict per ``release`` entry, in order."""
    out = []
    for e in Ledger(path).entries():
        if e.get("kind") != "release":
            continue
        d = e.get("data") or {}
        out.append({
            "seq": e["seq"],
            "time": e["time"],
            "plan_hash": e["plan_hash"],
            "query": d.get("query"),
            "receivers": list(d.get("receivers", [])),
            "outputs": list(d.get("outputs", [])),
            "datasets": list(d.get("datasets", [])),
        })
    return out


def release_data(plan: dict, outputs: list[dict], receivers: list[str] | None = None) -> dict:
    """The ``data`` of a release entry for ``plan``.

    ``outputs`` lists what left MPC: [{"name", "columns": [...], "cells": int, ...}]. Extra keys
    (e.g. the differencing-guard fields of spec/governance.md) are kept as given.
    """
    query = plan.get("query", {})
    return {
        "query": query.get("name"),
        "source_sha256": query.get("source_sha256"),
        "datasets": sorted(plan.get("datasets", {})),
        "receivers": list(receivers if receivers is not None else plan.get("receivers", [])),
        "outputs": outputs,
    }
