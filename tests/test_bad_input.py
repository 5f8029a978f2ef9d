"""Pathological data files give an IQ501 data diagnostic (DataError with file, row, column, reason),
never another exception (runtime/data/loader.py, sources.py, validate.py, checks.py).

A hypothesis test feeds random bytes and random edits of a valid CSV to the loader. The `mpc` test gives one real party a pathological file under `iq run`.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from insightql.compiler.check.catalog import load_catalog
from insightql.runtime.data import checks as data_checks, loader as dl

from conftest import CATALOG, printed_lines
from randdata import random_rows, write_csv
from tiers import examples

CAT = load_catalog(CATALOG)
DS = CAT.datasets["police_victims"]
COLS = list(DS.columns)
MB20 = 20_000_000


def good_text(n: int = 8, seed: int = 3) -> bytes:
    """A valid police_victims file with \\n line endings."""
    with tempfile.TemporaryDirectory() as d:
        path = write_csv(Path(d) / "p.csv", DS, random_rows(DS, n, np.random.default_rng(seed), null_rate=0.1))
        return path.read_bytes().replace(b"\r\n", b"\n")


GOOD = good_text()


@pytest.fixture
def loader_path():
    """There is one loader path (the columnar one): kept so the tests read as before."""
    return "columnar"


def load(path: Path):
    return dl.load_dataset(path, "police_victims", DS)


def issues_of(path: Path) -> list:
    with pytest.raises(dl.DataError) as e:
        load(path)
    msg = str(e.value)
    assert msg.startswith("IQ501 invalid data, nothing was shared:\n") and str(path) in msg
    assert e.value.issues and all(i.file == str(path) and i.reason for i in e.value.issues)
    return e.value.issues


def write(tmp_path: Path, data: bytes, name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def with_field(row: int, col: str, value: bytes) -> bytes:
    """GOOD with data row `row` (1-based), column `col` replaced by `value`."""
    lines = GOOD.split(b"\n")
    fields = lines[row].split(b",")
    fields[COLS.index(col)] = value
    lines[row] = b",".join(fields)
    return b"\n".join(lines)


# -- 1. one huge line, a field longer than csv.field_size_limit -------------------------------------
def test_one_line_of_20_mb_without_newline(tmp_path, loader_path):
    [issue] = issues_of(write(tmp_path, b"a" * MB20))
    assert (issue.row, issue.column) == (None, None)
    assert "header line" in issue.reason and "20,000,000 bytes" in issue.reason and "limit of 131,072" in issue.reason


def test_header_then_one_data_line_of_20_mb(tmp_path, loader_path):
    header = GOOD.split(b"\n")[0]
    [issue] = issues_of(write(tmp_path, header + b"\n" + b"7" * MB20 + b"\n"))
    assert (issue.row, issue.column) == (1, COLS[0])
    assert "a field of 20,000,000 bytes" in issue.reason and f"byte offset {len(header) + 1}" in issue.reason


def test_field_longer_than_the_csv_field_limit(tmp_path, loader_path):
    long = b"x" * (data_checks.FIELD_LIMIT + 1)
    [issue] = issues_of(write(tmp_path, with_field(3, "prs_Gender", long)))
    assert (issue.row, issue.column) == (3, "prs_Gender")
    assert f"a field of {data_checks.FIELD_LIMIT + 1:,} bytes" in issue.reason


def test_quote_never_closed_swallows_the_rest_of_a_long_file(tmp_path, loader_path):
    """Runs between commas stay short, but the quoted field grows past csv's limit: csv.Error."""
    rows = GOOD.split(b"\n")
    body = b"\n".join(rows[1:]) * (2 * data_checks.FIELD_LIMIT // len(GOOD) + 1)
    unclosed = with_field(3, "prs_Gender", b'"Feminine').split(b"\n")[:4]
    [issue] = issues_of(write(tmp_path, b"\n".join(unclosed) + b"\n" + body))
    assert issue.row == 3 and "cannot be read as CSV" in issue.reason and "not closed" in issue.reason


# -- 2. not UTF-8 ------------------------------------------------------------------------------------
def test_latin1_byte_names_row_column_and_offset(tmp_path, loader_path):
    data = with_field(4, "exp_Region", "Nörth".encode("latin-1"))
    [issue] = issues_of(write(tmp_path, data))
    assert (issue.row, issue.column) == (4, "exp_Region")
    assert f"byte 0xF6 at byte offset {data.index(0xF6)} is not UTF-8" in issue.reason
    assert "Latin-1" in issue.reason and "save the file as UTF-8" in issue.reason


def test_random_binary(tmp_path, loader_path):
    data = np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    issues = issues_of(write(tmp_path, data))
    assert any("is not UTF-8" in i.reason for i in issues)


@pytest.mark.parametrize("encoding,name", [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf16_or_utf32_with_bom(tmp_path, loader_path, encoding, name):
    [issue] = issues_of(write(tmp_path, GOOD.decode().encode(encoding)))
    assert issue.row is None and f"the file is {name}" in issue.reason and "save it as UTF-8" in issue.reason


def test_utf16_without_bom(tmp_path, loader_path):
    [issue] = issues_of(write(tmp_path, GOOD.decode().encode("utf-16-le")))
    assert "looks like UTF-16 without a byte-order mark" in issue.reason


# -- 3. NUL bytes, what is not a readable file, header problems, line endings ---------------------
def test_nul_byte_names_row_column_and_offset(tmp_path, loader_path):
    data = with_field(2, "exp_Type", b"Forced\0Labour")
    [issue] = issues_of(write(tmp_path, data))
    assert (issue.row, issue.column) == (2, "exp_Type")
    assert f"NUL byte (0x00) at byte offset {data.index(0)}" in issue.reason


def test_directory_missing_and_empty_files(tmp_path, loader_path):
    assert "is a directory" in issues_of(tmp_path)[0].reason
    assert issues_of(tmp_path / "nope.csv")[0].reason == "file not found"
    assert "the file is empty (0 bytes" in issues_of(write(tmp_path, b""))[0].reason
    assert "the file is empty" in issues_of(write(tmp_path, b"\xef\xbb\xbf"))[0].reason  # a BOM only
    assert "first line is empty" in issues_of(write(tmp_path, b"\n\n"))[0].reason


def test_unreadable_file(tmp_path, loader_path, monkeypatch):
    path = write(tmp_path, GOOD)
    if os.geteuid() != 0:  # root reads a file whatever its mode
        path.chmod(0)
        assert "cannot be read (Permission denied)" in issues_of(path)[0].reason
        path.chmod(0o600)

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(data_checks, "open", refuse, raising=False)
    monkeypatch.setattr(dl, "open", refuse, raising=False)
    assert issues_of(path)[0].reason == "cannot be read (Permission denied)"


def test_header_only_is_a_file_of_zero_rows(tmp_path, loader_path):
    table, n = load(write(tmp_path, GOOD.split(b"\n")[0] + b"\n"))
    assert n == 0 and set(table) == set(COLS)


def test_header_missing_a_column_or_naming_one_twice(tmp_path, loader_path):
    lines = GOOD.rstrip(b"\n").split(b"\n")
    [issue] = issues_of(write(tmp_path, b"\n".join(l.rsplit(b",", 1)[0] for l in lines) + b"\n"))
    assert (issue.row, issue.column) == (None, COLS[-1]) and "missing column" in issue.reason
    twice = [lines[0] + b",prs_Age"] + [l + b",5" for l in lines[1:]]
    [issue] = issues_of(write(tmp_path, b"\n".join(twice) + b"\n"))
    assert issue.column == "prs_Age" and f"2 times (fields 3, {len(COLS) + 1})" in issue.reason


def test_header_of_another_separator(tmp_path, loader_path):
    [issue] = issues_of(write(tmp_path, GOOD.replace(b",", b";")))
    assert issue.row is None and "none of the columns" in issue.reason and "separated by semicolons" in issue.reason


@pytest.mark.parametrize("endings", ["mixed", "cr"])
def test_mixed_and_old_mac_line_endings_are_read(tmp_path, loader_path, endings):
    lines = GOOD.rstrip(b"\n").split(b"\n")
    seps = [b"\r\n" if k % 2 else b"\n" for k in range(len(lines))] if endings == "mixed" else [b"\r"] * len(lines)
    data = b"".join(l + s for l, s in zip(lines, seps))
    ref, n = load(write(tmp_path, GOOD, "ref.csv"))
    got, m = load(write(tmp_path, data))
    assert m == n == len(lines) - 1
    for c in COLS:
        assert np.array_equal(got[c].null, ref[c].null) and np.array_equal(got[c].values, ref[c].values), c


def test_bad_values_are_quoted_short_and_escaped(tmp_path, loader_path):
    [issue] = issues_of(write(tmp_path, with_field(1, "prs_Gender", b"\x1b[31m" + b"F" * 5000)))
    assert "\x1b" not in issue.reason and "\\x1b[31m" in issue.reason
    assert "(5,005 characters)" in issue.reason and len(issue.reason) < 300


def test_a_long_field_in_a_long_file(tmp_path, loader_path):
    """One 100 kB field among 1000 rows is reported as the value it is."""
    lines = with_field(1, "exp_Type", b"y" * 100_000).split(b"\n")
    path = write(tmp_path, b"\n".join(lines[:2] + [lines[2]] * 999) + b"\n")
    [issue] = issues_of(path)
    assert (issue.row, issue.column) == (1, "exp_Type") and "not in the category's domain" in issue.reason


# -- 4. fuzzing: load, or DataError; never another exception --------------------------------------
SPECIAL = [b'"', b"\r", b"\n", b"\r\n", b",", b"\0", b"\xe9", b"\xff\xfe", b"\xef\xbb\xbf", b" ", b"\t", b";",
           b"-", b"+", b".", b"e", b"1e400", b"nan", b"inf", b"99999999999999999999", b"2021-02-30", b"\xc3",
           b"\xf0\x9f\x98\x80", "\u00a0".encode(), b"\x85", b"\x0b", b'""']
FUZZ = settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def edit(data: bytes, edits) -> bytes:
    for pos, op, chunk in edits:
        pos = pos % (len(data) + 1)
        if op == "insert":
            data = data[:pos] + chunk + data[pos:]
        elif op == "replace":
            data = data[:pos] + chunk + data[pos + len(chunk):]
        elif op == "delete":
            data = data[:pos] + data[pos + len(chunk) + 1:]
        else:  # truncate
            data = data[:pos]
    return data


def must_load_or_data_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.csv"
        path.write_bytes(data)
        try:
            table, n = load(path)
            assert set(table) == set(COLS) and all(len(v.values) == n for v in table.values())
        except dl.DataError as e:
            assert e.issues and str(e).startswith("IQ501")


chunks = st.one_of(st.sampled_from(SPECIAL), st.binary(min_size=1, max_size=6))
edits = st.lists(st.tuples(st.integers(0, 10 ** 6), st.sampled_from(["insert", "replace", "delete", "truncate"]),
                           chunks), min_size=1, max_size=6)


@FUZZ
@given(edits)
@example([(0, "insert", b"\xff\xfe")])
@example([(len(GOOD) - 1, "insert", b"\r")])
def test_fuzz_edits_of_a_valid_file(e):
    must_load_or_data_error(edit(GOOD, e))


@FUZZ
@given(st.binary(max_size=400))
@example(b"")
@example(b"\n")
@example(b",")
@example(b'"')
@example(b"\xef\xbb\xbf\n")
def test_fuzz_random_bytes(data):
    must_load_or_data_error(data)


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_after_the_header(data):
    must_load_or_data_error(GOOD.split(b"\n")[0] + b"\n" + data)


# -- 5. messages across parties: every party names the one that failed ----------------------------
def test_lost_peer_message_names_the_party_that_left_first():
    from insightql.runtime.launch.party import lost_peer_message
    names = ["police", "ngo", "helpline", "helper"]
    # helpline loses ngo, which said before it stopped that it had lost helper
    msg = lost_peer_message(names, peer=1, phase="handshake", cause="lost:3")
    assert msg.startswith("error: party helper left before the status check")
    assert "(party ngo stopped because party helper left)" in msg and "no data was shared" in msg
    msg = lost_peer_message(names, peer=2, phase="run", cause="lost:0")
    assert msg.startswith("error: lost the connection to party police during the run (party helpline stopped")
    # ngo said it gave up waiting for police to connect
    msg = lost_peer_message(names, peer=1, phase="connecting", cause="wait:0", missing=["police"])
    assert "not connected to police (is it running?) -- a party gave up waiting for it" in msg
    # helper left early, told nothing: it is blamed, not police (which is only not connected yet)
    msg = lost_peer_message(names, peer=3, phase="connecting", missing=["police"], gave_up=False)
    assert "party helper left while the parties were connecting, before the connect timeout" in msg
    assert "police" not in msg
    msg = lost_peer_message(names, peer=1, phase="connecting", missing=["police"])
    assert "not connected to police (is it running?)" in msg  # ngo left after the timeout: it gave up


def test_headline_names_the_party_with_bad_data_not_the_first_to_stop():
    from insightql.runtime.launch.launcher import _headline
    codes = {"ngo": 4, "police": 3, "helper": 4, "helpline": 4}  # the order they stopped in
    assert _headline(codes, list(codes)).startswith("the run stopped because of party police (invalid data); "
                                                    "every party stopped at the handshake, no data was shared")
    codes = {"helper": -9, "ngo": 5, "police": 5, "helpline": 5}
    assert _headline(codes, list(codes)) == "the run stopped because of party helper (killed by signal 9)"
    codes = {"police": 4, "ngo": 7, "helper": 4, "helpline": 4}
    assert _headline(codes, list(codes)).startswith("the run stopped because of party ngo (refused the plan); ")


# -- 6. waiting messages state the time actually waited -------------------------------------------
def _proc(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _waited(text: str) -> float:
    return float(re.search(r"still computing at stage '[^']*' after ([0-9.]+) s", text).group(1))


def test_launcher_says_how_long_it_waited_not_the_configured_timeout(monkeypatch):
    from insightql.runtime.launch import launcher
    monkeypatch.setattr(launcher, "GRACE", 0.5)
    t0 = time.monotonic()
    out = launcher._wait_all({"bad": _proc("import sys; sys.exit(3)"), "slow": _proc("import time; time.sleep(60)")},
                             timeout=1000, quiet=True)
    elapsed = time.monotonic() - t0
    assert list(out) == ["bad", "slow"] and out["bad"][0] == 3 and out["slow"][0] < 0  # killed
    log = out["slow"][1]
    assert "1000" not in log and "s after party bad stopped); stopped" in log, log
    assert 0.5 <= _waited(log) <= elapsed + 0.05, (log, elapsed)
    t0 = time.monotonic()
    out = launcher._wait_all({"slow": _proc("import time; time.sleep(60)")}, timeout=0.7, quiet=True)
    log = out["slow"][1]
    assert "(the limit is 0.7 s); stopped" in log and 0.7 <= _waited(log) <= time.monotonic() - t0 + 0.05, log


def test_watchdog_says_how_long_it_waited():
    code = ("import time; from insightql.runtime.launch.party import _watchdog; _watchdog(0.4, 'ngo'); time.sleep(30)")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 6, proc.stderr
    m = re.search(r"did not finish within 0.4 s \(stopped after ([0-9.]+) s;", proc.stderr)
    assert m and 0.4 <= float(m.group(1)) <= elapsed, proc.stderr


# -- through real parties ---------------------------------------------------------------------------
QUERY = """@purpose research
SELECT exp_Type, COUNT(*) AS n
FROM police_victims UNION ALL ngo_clients
GROUP BY exp_Type;"""
OTHERS = ["ngo", "helpline", "helper"]
# kind -> (file content, or None for a directory; words of police's diagnostic)
PATHOLOGICAL = {
    "one_huge_line": (lambda: GOOD.split(b"\n")[0] + b"\n" + b"7" * MB20, "row 1, column person_id: a field of "
                      "20,000,000 bytes"),
    "latin1": (lambda: with_field(2, "exp_Region", "Nörth".encode("latin-1")), "row 2, column exp_Region: byte 0xF6"),
    "directory": (None, "is a directory, not a data file"),
}


def pathological(tmp_path: Path, kind: str) -> Path:
    make, _ = PATHOLOGICAL[kind]
    if make is None:
        (tmp_path / "police-dir").mkdir()
        return tmp_path / "police-dir"
    return write(tmp_path, make(), f"police-{kind}.csv")


@pytest.mark.mpc
@pytest.mark.parametrize("kind", sorted(PATHOLOGICAL))
def test_iq_run_with_a_pathological_file_names_police_everywhere(tmp_path, corpus_data, kind):
    query = tmp_path / "q.iq"
    query.write_text(QUERY)
    bad = pathological(tmp_path, kind)
    proc = subprocess.run(
        [sys.executable, "-m", "insightql.runtime.cli", "run", str(query), "--catalog", str(CATALOG),
         "--data", f"police={bad}", "--data", f"ngo={corpus_data['ngo_clients']}", "--timeout", "60"],
        capture_output=True, text=True, timeout=180)
    err = proc.stderr
    assert proc.returncode == 3, err  # the data exit code (spec/runtime.md)
    assert "Traceback" not in err + proc.stdout and printed_lines(proc.stdout) == []
    assert "iq: the run stopped because of party police (invalid data); every party stopped at the " \
           "handshake, no data was shared" in err
    blocks = dict(re.findall(r"^party (\w+) failed:\n((?:  .*\n?)*)", err, re.M))
    assert set(blocks) == {"police"}, err  # police's reasons once: the others only stopped because of it
    assert f"{bad}: {PATHOLOGICAL[kind][1]}" in blocks["police"]
    # named in one line only when each said it stopped because party police cannot take part, and no other
    followers = re.search(r"^parties ([\w, ]+) stopped at the handshake because of police$", err, re.M)
    assert followers and set(re.split(r", | and ", followers[1])) == set(OTHERS), err
    assert "secure steps" not in err


@pytest.mark.mpc
@pytest.mark.parametrize("kind", ["one_huge_line", "latin1"])
def test_each_party_log_names_police_and_has_no_traceback(tmp_path, corpus_data, kind):
    """The full standard error of every party (iq run shows only their error lines)."""
    from test_bad_data import police_stops_everyone
    bad = pathological(tmp_path, kind)
    assert f"{bad}: {PATHOLOGICAL[kind][1]}" in police_stops_everyone(tmp_path, corpus_data, bad)


@pytest.mark.mpc
def test_party_that_dies_before_connecting_is_named_by_the_others(tmp_path, corpus_data):
    """police dies while loading its data: the others give up after the connect timeout naming it,
    say how long they waited, and that no data was shared."""
    import signal
    from conftest import Parties, compile_plan
    plan = compile_plan(QUERY, CAT)
    parties = Parties(plan, corpus_data, tmp_path, extra=["--connect-timeout", "3"]).start()
    try:
        assert parties.wait_for_line("police", "loading and validating data", timeout=60)
        parties.kill("police", signal.SIGKILL)
        codes = parties.wait(timeout=60)
    finally:
        parties.stop_all()
    for name in OTHERS:
        err = parties.stderr(name)
        assert codes[name] not in (0, None), err
        assert "Traceback" not in err and "no data was shared" in err, err
        # police is the one not connected, or the one that left; no other party is said to be missing
        assert re.search(r"not connected within 3 s to police|not connected to police \(is it running\?\)"
                         r"|party police left", err), err
        assert set(re.findall(r"(?:not connected within 3 s to|not connected to) (\w+)", err)) <= {"police"}, err
        m = re.search(r"gave up after ([0-9.]+) s, no data was shared", err)
        assert m is None or float(m.group(1)) >= 3, err
        assert not parties.result_path(name).exists()


def test_connect_timeout_names_only_the_peer_it_could_not_dial():
    from insightql.runtime.launch.mpyc_setup import missing_peers
    from insightql.runtime.launch.parties import free_loopback_config
    config = free_loopback_config(["police", "ngo", "helpline", "helper"])
    blamed, text = missing_peers(config, 0, [2, 3])  # police is stuck dialling helpline: helper was not tried
    assert blamed == [2] and text.startswith("helpline at 127.0.0.1:") and text.endswith("not dialled yet: helper")
    blamed, text = missing_peers(config, 3, [0, 1])  # helper cannot tell which of its dialers is down
    assert blamed == [0, 1] and "police (it dials us on port" in text and "ngo (it dials us" in text


def test_a_party_stopped_at_the_time_limit_is_named_with_its_stage():
    """`iq run` says where a party still was ("still computing at stage 'secure steps'"), not that a peer died."""
    from insightql.runtime.launch.launcher import _stage
    lines = ["[police] loading and validating data ... (at 0.0 s)\n", "[police] secure steps ... (at 2.5 s)\n",
             "[ngo] reveal ... (at 3.0 s)\n"]
    assert _stage("police", lines) == "secure steps" and _stage("helper", lines) == "starting"
