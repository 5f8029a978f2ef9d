"""Pathological data files give an IQ501 data diagnostic (DataError with file, row, column, reason),
never another exception, on both loader paths (runtime/data_loader.py, runtime/data_checks.py).

Every unit test runs once with the numpy fast path allowed and once with the csv-module path
forced (`loader_path`). A hypothesis test feeds random bytes and random edits of a valid CSV to
both paths. The `mpc` test gives one real party a pathological file under `iq run`.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from insightql.compiler.catalog import load_catalog
from insightql.runtime import data_checks, data_loader as dl

from conftest import CATALOG, printed_lines
from randdata import random_rows, write_csv

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


@pytest.fixture(params=["fast", "csv"])
def loader_path(request, monkeypatch):
    if request.param == "csv":
        monkeypatch.setattr(dl, "_split_plain", lambda p: None)
    return request.param


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


def test_fast_path_declines_a_long_field_in_a_long_file(tmp_path, loader_path):
    """One 100 kB field among 1000 rows: the fast path would build a 1000 x 100 kB byte matrix per
    column; it leaves the file to the csv path, which reports the value."""
    lines = with_field(1, "exp_Type", b"y" * 100_000).split(b"\n")
    path = write(tmp_path, b"\n".join(lines[:2] + [lines[2]] * 999) + b"\n")
    assert dl._split_plain(path) is None
    [issue] = issues_of(path)
    assert (issue.row, issue.column) == (1, "exp_Type") and "not in the category's domain" in issue.reason


# -- 4. fuzzing: load, or DataError; never another exception --------------------------------------
SPECIAL = [b'"', b"\r", b"\n", b"\r\n", b",", b"\0", b"\xe9", b"\xff\xfe", b"\xef\xbb\xbf", b" ", b"\t", b";",
           b"-", b"+", b".", b"e", b"1e400", b"nan", b"inf", b"99999999999999999999", b"2021-02-30", b"\xc3",
           b"\xf0\x9f\x98\x80", "\u00a0".encode(), b"\x85", b"\x0b", b'""']
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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
    for forced in (False, True):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "f.csv"
            path.write_bytes(data)
            saved = dl._split_plain
            if forced:
                dl._split_plain = lambda p: None
            try:
                table, n = load(path)
                assert set(table) == set(COLS) and all(len(v.values) == n for v in table.values())
            except dl.DataError as e:
                assert e.issues and str(e).startswith("IQ501")
            finally:
                dl._split_plain = saved


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
