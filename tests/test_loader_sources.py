"""Every source gives the same Table for the same data and the same issues for the same bad values:
CSV, Parquet (text columns and typed ones) and Excel .xlsx (text cells and typed ones) all go
through one columnar validation (runtime/data/sources.py, runtime/data/validate.py)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.runtime.data import loader as dl

ROOT = Path(__file__).resolve().parents[1]
CAT = load_catalog(ROOT / "examples" / "catalog.toml")
DATA = ROOT / "examples" / "data"
SOURCES = ["csv", "parquet", "parquet_typed", "xlsx", "xlsx_typed"]


def rows_of(path: Path) -> tuple[list[str], list[list[str]]]:
    header, *rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    return header, rows


def typed(ds, name: str, text: str):
    """The value a typed source would hold for `text`; the text itself when it is not of the type."""
    kind = ds.columns[name].type if name in ds.columns else "text"
    try:
        if text == "":
            return None
        if kind in ("integer", "key"):
            ok = text.lstrip("+-").isdigit() and abs(int(text)) < 2 ** 53  # what a spreadsheet holds exactly
            return int(text) if ok else text
        if kind == "decimal":
            return float(text) if math.isfinite(float(text)) else text
        if kind == "date":
            return dt.date.fromisoformat(text) if len(text) == 10 else text
        if kind == "boolean" and text.lower() in ("true", "false"):
            return text.lower() == "true"
    except ValueError:
        pass
    return text


def write_source(folder: Path, kind: str, ds, header: list[str], rows: list[list[str]]) -> Path:
    """The same rows as a file of `kind`."""
    if kind == "csv":
        path = folder / "data.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, lineterminator="\n").writerows([header, *rows])
        return path
    cols = [[r[j] for r in rows] for j in range(len(header))]
    if kind.startswith("parquet"):
        arrays = []
        for name, col in zip(header, cols):
            vals = [typed(ds, name, v) for v in col] if kind == "parquet_typed" else col
            if any(isinstance(v, str) for v in vals) and not all(isinstance(v, str) or v is None for v in vals):
                vals = col  # a typed column holds one type: a bad value keeps the column text
            arrays.append(pa.array(vals))
        path = folder / "data.parquet"
        pq.write_table(pa.Table.from_arrays(arrays, names=header), path)
        return path
    import openpyxl
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("data")
    sheet.append(header)
    for r in rows:  # a typed workbook mixes types in a column where a value is bad: a text cell
        sheet.append([typed(ds, n, v) if kind == "xlsx_typed" else (v or None) for n, v in zip(header, r)])
    path = folder / "data.xlsx"
    book.save(path)
    return path


def load_each(tmp_path: Path, name: str, header, rows, wanted=None) -> dict:
    """source kind -> (Table, n) or the DataError's issues, with the file name taken out."""
    ds = CAT.datasets[name]
    out = {}
    for kind in SOURCES:
        folder = tmp_path / kind
        folder.mkdir(exist_ok=True)
        path = write_source(folder, kind, ds, header, rows)
        try:
            out[kind] = dl.load_dataset(path, name, ds, wanted)
        except dl.DataError as e:
            out[kind] = [(i.row, i.column, i.reason) for i in e.issues]
    return out


def assert_same(a, b):
    (ta, na), (tb, nb) = a, b
    assert na == nb and list(ta) == list(tb)
    for k in ta:
        assert ta[k].values.dtype == tb[k].values.dtype, k
        assert np.array_equal(ta[k].null, tb[k].null), k
        assert np.array_equal(ta[k].values[~ta[k].null], tb[k].values[~tb[k].null]), k


def assert_all_same(results: dict):
    ref = results["csv"]
    for kind, got in results.items():
        if isinstance(ref, list) or isinstance(got, list):
            assert got == ref, kind
        else:
            assert_same(got, ref)


@pytest.mark.parametrize("name", ["police_victims", "ngo_clients", "helpline_reports", "bank_flags"])
def test_sample_data_same_from_every_source(tmp_path, name):
    header, rows = rows_of(DATA / f"{name}.csv")
    got = load_each(tmp_path, name, header, rows[:300])
    assert not isinstance(got["csv"], list), got["csv"]
    assert_all_same(got)


def test_union_domain_codes(tmp_path):
    domain = ["Zzz"] + list(CAT.datasets["police_victims"].columns["exp_Region"].domain)
    header, rows = rows_of(DATA / "police_victims.csv")
    got = load_each(tmp_path, "police_victims", header, rows[:100], {"exp_Region": {"domain": domain}})
    assert_all_same(got)
    assert got["csv"][0]["exp_Region"].values.min() >= 1


@pytest.mark.parametrize("col,bad", [("prs_Gender", "Alien"), ("prs_Age", "1_0"), ("identified_on", "2021-02-30"),
                                     ("identified_on", "2021-13-01"), ("debt_eur", "nan"), ("person_id", "9" * 20),
                                     ("minor_at_recruitment", "maybe"), ("exp_Region", ""), ("prs_Age", "-1"),
                                     ("prs_Age", "1.0"), ("prs_Age", "1" * 19), ("person_id", "-5"),
                                     ("hours_worked_week", "12a"), ("debt_eur", "1.2.3"), ("debt_eur", "."),
                                     ("debt_eur", "10.505"), ("identified_on", "0000-01-01")])
def test_bad_values_same_issues_from_every_source(tmp_path, col, bad):
    header, rows = rows_of(DATA / "police_victims.csv")
    rows = rows[:40]
    for k in (1, 6):
        rows[k][header.index(col)] = bad
    got = load_each(tmp_path, "police_victims", header, rows)
    assert_all_same(got)
    assert [(r, c) for r, c, _ in got["csv"]] == [(2, col), (7, col)]


@pytest.mark.parametrize("col,values", [
    ("prs_Age", ["0", "007", "99", "+5", "5"]),  # leading zeros, a sign
    ("hours_worked_week", ["", "120", "0", "", "1"]),  # nulls between integers
    ("person_id", ["281474976710655", "0", "000000000000000001", "12"]),  # 2**48 - 1, 18 digits
    ("debt_eur", ["0.5", ".25", "12.", "100000", "1e3", "00012.50", ""]),
])
def test_integer_and_decimal_spellings(tmp_path, col, values):
    header, rows = rows_of(DATA / "police_victims.csv")
    rows = rows[:len(values) + 3]
    for k, v in enumerate(values):
        rows[k][header.index(col)] = v
    got = load_each(tmp_path, "police_victims", header, rows)
    assert not isinstance(got["csv"], list), got["csv"]
    assert_all_same(got)


# -- CSV spellings of the same file ------------------------------------------------------------------
def lines_of(name: str) -> list[str]:
    return (DATA / f"{name}.csv").read_text(encoding="utf-8").splitlines()[:40]


def load_csv(path: Path, name: str = "police_victims"):
    return dl.load_dataset(path, name, CAT.datasets[name])


@pytest.mark.parametrize("edit", ["quoted", "padded", "crlf", "cr", "no_final_newline", "bom"])
def test_other_spellings_of_the_same_csv_file(tmp_path, edit):
    lines = lines_of("police_victims")
    path = tmp_path / "p.csv"
    if edit == "quoted":
        lines[3] = ",".join(f'"{v}"' for v in lines[3].split(","))
    elif edit == "padded":
        lines[3] = ",".join(f" {v} " if v else v for v in lines[3].split(","))
    sep = {"crlf": "\r\n", "cr": "\r"}.get(edit, "\n")
    text = sep.join(lines) + ("" if edit == "no_final_newline" else sep)
    path.write_bytes((("\ufeff" if edit == "bom" else "") + text).encode("utf-8"))
    ref = tmp_path / "ref.csv"
    ref.write_text("\n".join(lines_of("police_victims")) + "\n", encoding="utf-8")
    assert_same(load_csv(path), load_csv(ref))


@pytest.mark.parametrize("tail", ["\n", "\n\n\n", "\r\n", "\r\n\r\n"])
def test_blank_lines_at_the_end_are_no_rows(tmp_path, tail):
    text = (DATA / "ngo_clients.csv").read_text(encoding="utf-8")
    path = tmp_path / "ngo_clients.csv"
    path.write_text(text + tail, encoding="utf-8", newline="")
    assert_same(load_csv(path, "ngo_clients"), load_csv(DATA / "ngo_clients.csv", "ngo_clients"))


def test_a_blank_line_between_rows_is_still_an_error(tmp_path):
    lines = (DATA / "ngo_clients.csv").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "ngo_clients.csv"
    path.write_text("\n".join(lines[:3] + [""] + lines[3:]) + "\n", encoding="utf-8")
    with pytest.raises(dl.DataError, match="row 3: has 0 fields"):
        load_csv(path, "ngo_clients")
