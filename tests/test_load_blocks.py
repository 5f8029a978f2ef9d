"""Reading in blocks changes nothing a party or its owner sees (runtime/data/sources.py, validate.py).

A CSV file is read, checked and parsed in blocks of about sources.BLOCK bytes (a Parquet file in
record batches of PARQUET_ROWS rows), and validate keeps of each block only the plan's values and
what the messages read. Each file below, good or bad, is loaded with one block and with blocks of
1, 2, 7, 61 and 997 bytes (and Parquet batches of 1 and 3 rows): the same Table, or the same
issues (rows, columns, reasons, summaries, limits).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.runtime.data import loader as dl, sources

from conftest import CATALOG
from randdata import random_rows, write_csv

CAT = load_catalog(CATALOG)
DS = CAT.datasets["police_victims"]
SIZES = [1, 2, 7, 61, 997]


def good(tmp_path: Path, n: int = 60, seed: int = 5) -> bytes:
    path = write_csv(tmp_path / "g.csv", DS, random_rows(DS, n, np.random.default_rng(seed), null_rate=0.1))
    return path.read_bytes().replace(b"\r\n", b"\n")


def lines(data: bytes) -> list[bytes]:
    return data.rstrip(b"\n").split(b"\n")


def edit(data: bytes, row: int, column: str, value: bytes) -> bytes:
    """Row `row` (1-based) with `column`'s field set to `value` (the fields have no quotes)."""
    out = lines(data)
    j = list(DS.columns).index(column)
    fields = out[row].split(b",")
    fields[j] = value
    out[row] = b",".join(fields)
    return b"\n".join(out) + b"\n"


def cases(tmp_path: Path) -> dict[str, bytes]:
    g = good(tmp_path)
    rows = lines(g)
    ages = g
    for k in range(3, 58, 4):  # a summary across blocks
        ages = edit(ages, k, "prs_Age", b"abc" if k % 3 else b"130")
    many = g
    for j, column in enumerate(DS.columns):  # more issues than reported, one a row
        for k in (j + 2, j + 20, j + 41):
            many = edit(many, k, column, b"@%d" % k)
    return {
        "good": g,
        "crlf": g.replace(b"\n", b"\r\n"),
        "cr": g.replace(b"\n", b"\r"),
        "bom, trailing blank lines": b"\xef\xbb\xbf" + g + b"\n\r\n\n",
        "blank lines between rows": b"\n".join(rows[:10] + [b"", b""] + rows[10:30] + [b""] + rows[30:]) + b"\n",
        "few bad values": edit(edit(g, 4, "prs_Age", b"-1"), 50, "debt_eur", b"1.234"),
        "a summary": ages,
        "too many issues": many,
        "wrong field counts": b"\n".join(rows[:20] + [b"1,2"] + rows[20:45] + [rows[45] + b",x"] + rows[46:]),
        "unclosed quote": b"\n".join(rows[:33] + [b'"' + rows[33]] + rows[34:]),
        "not utf-8 late": edit(g, 55, "prs_Nationality", b"D\xe9"),
        "nul and latin-1": edit(edit(g, 12, "exp_Region", b"N\x00"), 40, "exp_Region", b"S\xf6d"),
        "long fields": edit(edit(g, 8, "exp_Region", b"x" * 140_000), 48, "exp_Region", b"y" * 150_000),
        "long header": rows[0] + b"," + b"h" * 140_000 + b"\n" + b"\n".join(rows[1:]),
        "missing column": b"\n".join(re.sub(rb"(^|,)prs_Age(,|$)", rb"\1age\2", r) if i == 0 else r
                                     for i, r in enumerate(rows)),
        "header only": rows[0] + b"\n\n",
    }


def outcome(path: Path, wanted=None):
    try:
        table, n = dl.load_dataset(path, "police_victims", DS, wanted)
    except dl.DataError as e:
        return [str(i) for i in e.issues]
    return n, {c: (v.values.dtype.str, v.values.tolist(), v.null.tolist()) for c, v in table.items()}


@pytest.mark.parametrize("size", SIZES)
def test_csv_blocks_give_the_same_table_and_issues(tmp_path, monkeypatch, size):
    files = {}
    for k, (name, data) in enumerate(cases(tmp_path).items()):
        files[name] = tmp_path / f"c{k}.csv"
        files[name].write_bytes(data)
    whole = {name: outcome(p) for name, p in files.items()}
    assert isinstance(whole["good"], tuple) and whole["good"][0] == 60
    assert isinstance(whole["a summary"], list) and "9 values" in " ".join(whole["a summary"])
    assert len(whole["too many issues"]) == dl.MAX_REPORTED
    monkeypatch.setattr(sources, "BLOCK", size)
    for name, p in files.items():
        assert outcome(p) == whole[name], name


def test_a_summary_reads_its_values_across_blocks(tmp_path, monkeypatch):
    """More flagged rows than VALUES_READ, spread over many blocks: the same counts and values."""
    g = good(tmp_path, n=1500)
    out = lines(g)
    j = list(DS.columns).index("prs_Nationality")
    for k in range(1, 1501):
        f = out[k].split(b",")
        f[j] = b"Q%d" % (k % 3 if k < 1200 else 9)
        out[k] = b",".join(f)
    path = tmp_path / "v.csv"
    path.write_bytes(b"\n".join(out) + b"\n")
    whole = outcome(path)
    assert "1500 values" in whole[0] and "'Q9'" not in whole[0]  # Q9 only after the first 1000 rows
    monkeypatch.setattr(sources, "BLOCK", 4096)
    assert outcome(path) == whole


def test_max_rows_across_blocks(tmp_path, monkeypatch):
    path = tmp_path / "m.csv"
    path.write_bytes(good(tmp_path, n=30))
    small = DS.model_copy(update={"max_rows": 20})
    monkeypatch.setattr(sources, "BLOCK", 200)
    with pytest.raises(dl.DataError) as e:
        dl.load_dataset(path, "police_victims", small)
    assert [i.reason for i in e.value.issues] == ["30 rows, more than the declared max_rows 20"]


def test_wanted_columns_only(tmp_path, monkeypatch):
    path = tmp_path / "w.csv"
    path.write_bytes(good(tmp_path))
    wanted = {"prs_Age": {}, "prs_Gender": {"domain": list(DS.columns["prs_Gender"].domain)}}
    whole = outcome(path, wanted)
    assert set(whole[1]) == set(wanted)
    monkeypatch.setattr(sources, "BLOCK", 61)
    assert outcome(path, wanted) == whole


@pytest.mark.parametrize("batch", [1, 3])
def test_parquet_batches(tmp_path, monkeypatch, batch):
    csv_path = tmp_path / "p.csv"
    csv_path.write_bytes(edit(edit(good(tmp_path, n=20), 3, "prs_Age", b"130"), 17, "prs_Age", b"-4"))
    text = pa.csv.read_csv(csv_path, convert_options=pa.csv.ConvertOptions(
        column_types={c: pa.string() for c in DS.columns}, strings_can_be_null=False))
    typed = text.set_column(list(DS.columns).index("prs_Age"), "prs_Age",
                            pa.array([int(v) if v else None for v in text["prs_Age"].to_pylist()], pa.int64()))
    for name, table in (("text", text), ("typed", typed), ("empty", typed.slice(0, 0))):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(table, path)
        whole = outcome(path)
        monkeypatch.setattr(sources, "PARQUET_ROWS", batch)
        assert outcome(path) == whole, name
        monkeypatch.undo()
        assert (whole[0] == 0) if name == "empty" else ("130 is outside" in " ".join(whole)), name
