"""The loader's numpy fast path gives exactly what the csv-module path gives: same values for good
files, same issues for bad ones (runtime/data/loader.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.runtime.data import loader as dl

ROOT = Path(__file__).resolve().parents[1]
CAT = load_catalog(ROOT / "examples" / "catalog.toml")
DATA = ROOT / "examples" / "data"


def both_paths(path: Path, name: str, wanted=None, monkeypatch=None):
    fast = dl.load_dataset(path, name, CAT.datasets[name], wanted)
    monkeypatch.setattr(dl, "_split_plain", lambda p: None)
    slow = dl.load_dataset(path, name, CAT.datasets[name], wanted)
    monkeypatch.undo()
    return fast, slow


def assert_same(a, b):
    (ta, na), (tb, nb) = a, b
    assert na == nb and list(ta) == list(tb)
    for k in ta:
        assert ta[k].values.dtype == tb[k].values.dtype, k
        assert np.array_equal(ta[k].values, tb[k].values) and np.array_equal(ta[k].null, tb[k].null), k


@pytest.mark.parametrize("name", ["police_victims", "ngo_clients", "helpline_reports", "bank_flags"])
def test_sample_data_same_on_both_paths(name, monkeypatch):
    path = DATA / f"{name}.csv"
    assert dl._split_plain(path) is not None  # the shipped files take the fast path
    assert_same(*both_paths(path, name, monkeypatch=monkeypatch))


def test_union_domain_codes(monkeypatch):
    domain = ["Zzz"] + list(CAT.datasets["police_victims"].columns["exp_Region"].domain)
    wanted = {"exp_Region": {"domain": domain}}
    fast, slow = both_paths(DATA / "police_victims.csv", "police_victims", wanted, monkeypatch)
    assert_same(fast, slow)
    assert fast[0]["exp_Region"].values.min() >= 1


def lines_of(name: str) -> list[str]:
    return (DATA / f"{name}.csv").read_text(encoding="utf-8").splitlines()[:40]


@pytest.mark.parametrize("edit", ["quoted", "padded", "crlf", "no_final_newline", "bom"])
def test_other_spellings_of_the_same_file(tmp_path, edit, monkeypatch):
    lines = lines_of("police_victims")
    path = tmp_path / "p.csv"
    if edit == "quoted":
        lines[3] = ",".join(f'"{v}"' for v in lines[3].split(","))
    elif edit == "padded":
        lines[3] = ",".join(f" {v} " if v else v for v in lines[3].split(","))
    text = ("\r\n" if edit == "crlf" else "\n").join(lines) + ("" if edit == "no_final_newline" else "\n")
    path.write_text(("\ufeff" if edit == "bom" else "") + text, encoding="utf-8")
    ref = tmp_path / "ref.csv"
    ref.write_text("\n".join(lines_of("police_victims")) + "\n", encoding="utf-8")
    got = dl.load_dataset(path, "police_victims", CAT.datasets["police_victims"])
    assert_same(got, dl.load_dataset(ref, "police_victims", CAT.datasets["police_victims"]))


@pytest.mark.parametrize("col,bad", [("prs_Gender", "Alien"), ("prs_Age", "1_0"), ("identified_on", "2021-02-30"),
                                     ("identified_on", "2021-13-01"), ("debt_eur", "nan"), ("person_id", "9" * 20),
                                     ("minor_at_recruitment", "maybe"), ("exp_Region", "")])
def test_bad_values_same_issues_on_both_paths(tmp_path, col, bad, monkeypatch):
    lines = lines_of("police_victims")
    header = lines[0].split(",")
    for k in (2, 7):
        vals = lines[k].split(",")
        vals[header.index(col)] = bad
        lines[k] = ",".join(vals)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert [i.row for i in same_issues(path, monkeypatch)] == [2, 7]


def same_issues(path: Path, monkeypatch) -> list:
    """The issues of a bad file, checked to be the same on the fast and the csv-module path."""
    with pytest.raises(dl.DataError) as fast:
        dl.load_dataset(path, "police_victims", CAT.datasets["police_victims"])
    monkeypatch.setattr(dl, "_split_plain", lambda p: None)
    with pytest.raises(dl.DataError) as slow:
        dl.load_dataset(path, "police_victims", CAT.datasets["police_victims"])
    monkeypatch.undo()
    assert str(fast.value) == str(slow.value)
    return fast.value.issues


def with_values(tmp_path, col: str, values: list[str]) -> Path:
    """The first rows of the police sample with `values` in column `col` (one per row)."""
    lines = lines_of("police_victims")
    header = lines[0].split(",")
    for k, v in enumerate(values, start=1):
        vals = lines[k].split(",")
        vals[header.index(col)] = v
        lines[k] = ",".join(vals)
    path = tmp_path / "edited.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("col,values", [
    ("prs_Age", ["0", "007", "99", "+5", "5"]),  # leading zeros; a sign takes numpy's parser
    ("hours_worked_week", ["", "120", "0", "", "1"]),  # nulls between integers
    ("person_id", ["281474976710655", "0", "000000000000000001", "12"]),  # 2**48 - 1, 18 digits
    ("debt_eur", ["0.5", ".25", "12.", "100000", "1e3", "00012.50", ""]),
])
def test_integer_and_decimal_spellings_same_on_both_paths(tmp_path, col, values, monkeypatch):
    path = with_values(tmp_path, col, values)
    fast, slow = both_paths(path, "police_victims", monkeypatch=monkeypatch)
    assert_same(fast, slow)


@pytest.mark.parametrize("col,bad", [("prs_Age", "-1"), ("prs_Age", "1.0"), ("prs_Age", "1" * 19),
                                     ("person_id", "-5"), ("hours_worked_week", "12a"), ("debt_eur", "1.2.3"),
                                     ("debt_eur", ".")])
def test_bad_numbers_same_issues_on_both_paths(tmp_path, col, bad, monkeypatch):
    path = with_values(tmp_path, col, ["5", bad, "7"] if col != "debt_eur" else ["5.0", bad, "7"])
    assert [(i.row, i.column) for i in same_issues(path, monkeypatch)] == [(2, col)]


def test_field_longer_than_the_read_padding(tmp_path, monkeypatch):
    """A field longer than the zero padding read after the file: the body is copied with more."""
    path = with_values(tmp_path, "prs_Gender", ["Feminine", "x" * (dl.PAD + 100)])
    assert dl._split_plain(path) is not None
    assert [(i.row, i.column) for i in same_issues(path, monkeypatch)] == [(2, "prs_Gender")]
    text = with_values(tmp_path, "debt_eur", []).read_text(encoding="utf-8").rstrip("\n")
    path.write_text(text + "0" * (dl.PAD + 5), encoding="utf-8")  # the last field, no final newline
    assert dl._split_plain(path) is not None
    assert_same(*both_paths(path, "police_victims", monkeypatch=monkeypatch))


@pytest.mark.parametrize("tail", ["\n", "\n\n\n", "\r\n"])
def test_blank_lines_at_the_end_are_no_rows(tmp_path, tail, monkeypatch):
    text = (DATA / "ngo_clients.csv").read_text(encoding="utf-8")
    path = tmp_path / "ngo_clients.csv"
    path.write_text(text + tail, encoding="utf-8", newline="")
    if "\r" not in tail:
        assert dl._split_plain(path) is not None  # stays on the fast path
    got = both_paths(path, "ngo_clients", monkeypatch=monkeypatch)
    assert_same(*got)
    assert_same(got[0], dl.load_dataset(DATA / "ngo_clients.csv", "ngo_clients", CAT.datasets["ngo_clients"]))


def test_a_blank_line_between_rows_is_still_an_error(tmp_path):
    lines = (DATA / "ngo_clients.csv").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "ngo_clients.csv"
    path.write_text("\n".join(lines[:3] + [""] + lines[3:]) + "\n", encoding="utf-8")
    with pytest.raises(dl.DataError, match="row 3: has 0 fields"):
        dl.load_dataset(path, "ngo_clients", CAT.datasets["ngo_clients"])
