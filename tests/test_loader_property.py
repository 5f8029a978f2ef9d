"""The loader against a row-by-row restatement of the catalog's rules, on random valid and invalid
columns (hypothesis), from CSV and Parquet alike; and pathological Parquet and .xlsx files, which
give a DataError, never another exception (runtime/data/sources.py, runtime/data/validate.py)."""
from __future__ import annotations

import csv
import datetime as dt
import math
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insightql.compiler.check.catalog import load_catalog
from insightql.runtime.data import loader as dl, validate

ROOT = Path(__file__).resolve().parents[1]
CAT = load_catalog(ROOT / "examples" / "catalog.toml")
DS = CAT.datasets["police_victims"]
HEADER, *GOOD = list(csv.reader((ROOT / "examples" / "data" / "police_victims.csv").open(encoding="utf-8")))


# -- the rules, restated one value at a time ----------------------------------------------------------
def valid(col, text: str) -> bool:
    """Is `text` (as written in a file) a valid value of `col`? Independent of the loader's code."""
    s = text.strip(" \t")
    if s == "":
        return col.nullable
    t = col.type
    if t == "category":
        return s in col.domain
    if t == "boolean":
        return s.lower() in ("true", "false", "1", "0", "yes", "no", "t", "f", "y", "n")
    if t == "date":
        try:
            d = dt.date.fromisoformat(s) if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", s) else None
        except ValueError:
            return False
        return d is not None and col.min <= d <= col.max
    if t in ("integer", "key"):
        if not re.fullmatch(r"[+-]?[0-9]+", s):
            return False
        lo, hi = (0, 2 ** col.bits - 1) if t == "key" else (col.min, col.max)
        return lo <= int(s) <= hi
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,4})?", s):
        return False
    v = float(s)
    return math.isfinite(v) and col.min <= v <= col.max and abs(v * 10 ** col.scale - round(v * 10 ** col.scale)) <= 1e-6


def good_text(col, draw) -> str:
    t = col.type
    if t == "category":
        return draw(st.sampled_from(col.domain))
    if t == "boolean":
        return draw(st.sampled_from(["true", "false", "TRUE", "0", "1", "yes", "n"]))
    if t == "date":
        return (col.min + dt.timedelta(days=draw(st.integers(0, (col.max - col.min).days)))).isoformat()
    if t in ("integer", "key"):
        lo, hi = (0, 2 ** col.bits - 1) if t == "key" else (col.min, col.max)
        return str(draw(st.integers(lo, hi)))
    return f"{draw(st.integers(col.min * 100, col.max * 100)) / 100:.2f}"


BAD = ["", " ", "x", "nan", "inf", "-1", "1e400", "1.2.3", ".", "+", "-", "1_0", "١٢", "2021-02-30", "2019-12-31",
       "20210131", "maybe", "north", "99999999999999999999", "1.005", "0x10", "１", "Feminine ", " 12", "+5", "007"]


@st.composite
def column_case(draw):
    """police rows with one column's values replaced by random valid and invalid texts."""
    name = draw(st.sampled_from(list(DS.columns)))
    col = DS.columns[name]
    n = draw(st.integers(1, 30))
    texts = [draw(st.one_of(st.builds(lambda: None).map(lambda _: good_text(col, draw)), st.sampled_from(BAD),
                            st.text(alphabet="0123456789+-.eE :abcT", max_size=8))) for _ in range(n)]
    return name, texts


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows([HEADER, *rows])
    return path


def write_parquet(path: Path, rows: list[list[str]]) -> Path:
    cols = [pa.array([r[j] for r in rows], pa.string()) for j in range(len(HEADER))]
    pq.write_table(pa.Table.from_arrays(cols, names=HEADER), path)
    return path


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(column_case())
def test_random_columns_judged_as_the_rules_say(tmp_path, case):
    name, texts = case
    j = HEADER.index(name)
    rows = [list(GOOD[k % len(GOOD)]) for k in range(len(texts))]
    for r, t in zip(rows, texts):
        r[j] = t
    expected = [(k, name) for k, t in enumerate(texts, start=1) if not valid(DS.columns[name], t)]
    got = {}
    for kind, write in (("csv", write_csv), ("parquet", write_parquet)):
        path = write(tmp_path / f"d.{kind}", rows)
        try:
            table, n = dl.load_dataset(path, "police_victims", DS)
            got[kind] = table
            assert n == len(texts) and not expected, expected
        except dl.DataError as e:
            got[kind] = [(i.row, i.column, i.reason) for i in e.issues]
            named, total = named_rows(got[kind])  # one column's issues stay under the limit
            assert set(named) <= set(expected) and total == len(expected), (named, total, expected)
    if isinstance(got["csv"], list):
        assert got["csv"] == got["parquet"]
    else:
        for c in got["csv"]:
            a, b = got["csv"][c], got["parquet"][c]
            assert np.array_equal(a.null, b.null) and np.array_equal(a.values, b.values), c


def named_rows(issues: list[tuple]) -> tuple[list[tuple[int, str]], int]:
    """(the (row, column) every issue names, how many rows they flag): an issue per row, or a
    summary of more than SUMMARY_AFTER rows of one check ("N values ...; rows a, b, ...; ..."),
    which names its first FIRST_ROWS rows and counts all of them."""
    named, total = [], 0
    for row, col, reason in issues:
        if row is not None:
            named.append((row, col))
            total += 1
            continue
        m = re.match(r"(\d+) values .*?; rows ([0-9, ]+?)(, \.\.\.)?;", reason)
        assert m and int(m[1]) > validate.SUMMARY_AFTER, reason
        rows = [int(x) for x in m[2].split(", ")]
        assert len(rows) == min(int(m[1]), validate.FIRST_ROWS) and rows == sorted(rows), reason
        named += [(r, col) for r in rows]
        total += int(m[1])
    return named, total


# -- pathological Parquet and .xlsx files ------------------------------------------------------------
def issues(path: Path) -> list:
    with pytest.raises(dl.DataError) as e:
        dl.load_dataset(path, "police_victims", DS)
    assert str(e.value).startswith("IQ501 invalid data, nothing was shared:") and str(path) in str(e.value)
    return e.value.issues


def typed_parquet(tmp_path: Path, **replace) -> Path:
    """The sample as a Parquet file of text columns, with some columns replaced by Arrow arrays."""
    rows = GOOD[:5]
    arrays = [replace.get(h, pa.array([r[j] for r in rows])) for j, h in enumerate(HEADER)]
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_arrays(arrays, names=HEADER), path)
    return path


def test_parquet_that_is_not_parquet(tmp_path):
    path = tmp_path / "p.parquet"
    path.write_bytes(b"person_id,prs_Gender\n1,Feminine\n")
    [issue] = issues(path)
    assert issue.row is None and issue.reason.startswith("cannot be read as Parquet")


def test_parquet_columns_of_other_types(tmp_path):
    path = typed_parquet(tmp_path, prs_Age=pa.array([[1], [2], [3], [4], [5]]),
                         prs_Gender=pa.array([b"Feminine", b"\xff", b"Masculine", b"Feminine", b"Feminine"]),
                         debt_eur=pa.array([1.0, float("nan"), None, 2.5, 3.0]),
                         identified_on=pa.array([dt.date(2021, 1, 1)] * 4 + [dt.date(2019, 1, 1)]),
                         hours_worked_week=pa.array([1.0, 2.5, None, 4.0, 5.0]))
    got = {(i.row, i.column): i.reason for i in issues(path)}
    assert got[(None, "prs_Gender")].startswith("cannot be read as category")
    assert got[(None, "prs_Age")].startswith("cannot be read as integer")
    assert got[(2, "debt_eur")] == "'nan' is not a number"
    assert got[(5, "identified_on")] == "2019-01-01 is outside the declared range [2020-01-01, 2025-12-31]"
    assert got[(2, "hours_worked_week")] == "'2.5' is not an integer"


def test_parquet_header_problems(tmp_path):
    rows = GOOD[:3]
    names = [h if h != "exp_Region" else "prs_Age" for h in HEADER]
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([r[j] for r in rows]) for j in range(len(HEADER))], names=names),
                   path)
    got = {(i.column, i.reason.split(" (")[0]) for i in issues(path)}
    assert got == {("exp_Region", "missing column"), ("prs_Age", "the header names this column 2 times")}


def workbook(tmp_path: Path, rows: list[list], sheets: int = 1, name: str = "p.xlsx") -> Path:
    import openpyxl
    book = openpyxl.Workbook(write_only=True)
    for k in range(sheets):
        sheet = book.create_sheet(f"s{k}")
        for r in rows:
            sheet.append(r)
    path = tmp_path / name
    book.save(path)
    return path


def test_xlsx_with_mixed_types_in_a_column(tmp_path):
    rows = [list(r) for r in GOOD[:6]]
    j = HEADER.index("prs_Age")
    rows[0][j], rows[1][j], rows[2][j], rows[3][j] = 41, True, dt.datetime(2021, 5, 1), "twelve"
    k = HEADER.index("identified_on")
    rows[4][k], rows[5][k] = dt.datetime(2021, 5, 1, 13, 30), 44197
    got = [(i.row, i.column, i.reason) for i in issues(workbook(tmp_path, [HEADER, *rows]))]
    assert got == [(2, "prs_Age", "'true' is not an integer"), (3, "prs_Age", "'2021-05-01' is not an integer"),
                   (4, "prs_Age", "'twelve' is not an integer"),
                   (5, "identified_on", "'2021-05-01 13:30:00' is not a date (YYYY-MM-DD)"),
                   (6, "identified_on", "'44197' is not a date (YYYY-MM-DD)")]


def test_xlsx_structure_problems(tmp_path):
    rows = [HEADER, *GOOD[:3]]
    assert "the workbook has 2 sheets" in issues(workbook(tmp_path, rows, sheets=2))[0].reason
    assert "the sheet is empty" in issues(workbook(tmp_path, []))[0].reason
    extra = [HEADER] + [list(GOOD[0]), list(GOOD[1]) + [None, "stray"]]
    [issue] = issues(workbook(tmp_path, extra))
    assert (issue.row, issue.reason) == (2, f"has {len(HEADER) + 2} fields, the header has {len(HEADER)}")
    not_a_book = tmp_path / "q.xlsx"
    not_a_book.write_bytes(b"\x00" * 100)
    assert issues(not_a_book)[0].reason.startswith("cannot be read as an Excel .xlsx workbook")
    old = tmp_path / "q.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0")
    assert ".xls workbook is not read" in issues(old)[0].reason


def test_xlsx_sheet_named_like_the_file_and_trailing_empty_rows(tmp_path):
    import openpyxl
    book = openpyxl.Workbook(write_only=True)
    book.create_sheet("notes").append(["anything"])
    sheet = book.create_sheet("police")
    for r in [HEADER, *GOOD[:4], [None] * 3, []]:
        sheet.append(r)
    path = tmp_path / "police.xlsx"
    book.save(path)
    table, n = dl.load_dataset(path, "police_victims", DS)
    assert n == 4


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["p.parquet", "p.xlsx"]), st.one_of(st.binary(max_size=300), st.integers(0, 4000)))
def test_damaged_parquet_and_xlsx_files_give_data_errors(tmp_path, name, damage):
    """Random bytes, or a valid file cut short: a DataError, never another exception."""
    path = tmp_path / name
    if isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        rows = [HEADER, *GOOD[:20]]
        full = workbook(tmp_path, rows, name="full.xlsx") if name.endswith("xlsx") else typed_parquet(tmp_path)
        data = full.read_bytes()
        path.write_bytes(data[:damage % len(data)])
    try:
        dl.load_dataset(path, "police_victims", DS)
    except dl.DataError as e:
        assert e.issues and str(e).startswith("IQ501")
