"""The loader's numpy fast path gives exactly what the csv-module path gives: same values for good
files, same issues for bad ones (runtime/data_loader.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.catalog import load_catalog
from insightql.runtime import data_loader as dl

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
    with pytest.raises(dl.DataError) as fast:
        dl.load_dataset(path, "police_victims", CAT.datasets["police_victims"])
    monkeypatch.setattr(dl, "_split_plain", lambda p: None)
    with pytest.raises(dl.DataError) as slow:
        dl.load_dataset(path, "police_victims", CAT.datasets["police_victims"])
    assert str(fast.value) == str(slow.value)
    assert [i.row for i in fast.value.issues] == [2, 7]
