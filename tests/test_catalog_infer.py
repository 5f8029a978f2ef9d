"""`iq catalog infer` (runtime/data/infer.py): drafts the loader accepts, that validate against their own
file, and that hold no value of the data beyond category domains of frequent values."""
from __future__ import annotations

import csv
import datetime as dt
import random
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from insightql.compiler.check.catalog import load_catalog
from insightql.runtime.cli import main
from insightql.runtime.data.checks import DataError
from insightql.runtime.data.infer import InferOptions, infer_dataset
from insightql.runtime.data.loader import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(["" if v is None else v for v in r] for r in rows)
    return path


def draft(tmp_path: Path, data: Path, **kw) -> tuple[str, object]:
    text = infer_dataset(data, InferOptions(**kw))
    out = tmp_path / "draft.toml"
    out.write_text(text, encoding="utf-8")
    cat = load_catalog(out)
    return text, cat


# ------------------------------------------------------------------ round trip
COLUMN_KINDS = st.sampled_from(["int", "dec", "date", "bool", "cat", "id"])


@st.composite
def tables(draw):
    n = draw(st.integers(1, 60))
    kinds = draw(st.lists(COLUMN_KINDS, min_size=1, max_size=6))
    rng = random.Random(draw(st.integers(0, 2 ** 32)))
    header, cols = [], []
    for j, kind in enumerate(kinds):
        nulls = draw(st.booleans()) and kind != "id"
        header.append(f"c{j}_{kind}" if kind != "id" else f"c{j}_id")
        lo = draw(st.integers(-1000, 1000))
        col = {"int": lambda: rng.randint(lo, lo + 500), "dec": lambda: f"{rng.uniform(-50, 5000):.2f}",
               "date": lambda: (dt.date(2001, 1, 1) + dt.timedelta(rng.randint(0, 9000))).isoformat(),
               "bool": lambda: rng.choice(["true", "false", "yes", "no"]),
               "cat": lambda: rng.choice(["North", "South", "East", "West", "Zone 5"]),
               "id": None}[kind]
        values = list(range(10 ** 6, 10 ** 6 + n)) if kind == "id" else [col() for _ in range(n)]
        if nulls:
            values = [None if rng.random() < 0.2 else v for v in values]
        cols.append(values)
    return header, [list(r) for r in zip(*cols)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables())
def test_every_declared_column_validates_against_its_own_file(tmp_path, table):
    header, rows = table
    data = write_csv(tmp_path / "data.csv", header, rows)
    _, cat = draft(tmp_path, data, min_count=1)  # every value may enter a domain: no row is left out
    (name, ds), = cat.datasets.items()
    assert name == "data"
    if not ds.columns:
        return
    load_dataset(data, name, ds)  # raises DataError on any issue


def test_parquet_and_xlsx_round_trip(tmp_path):
    import openpyxl

    rows = [[i, f"{i * 1.5:.1f}", ["North", "South"][i % 2], dt.date(2020, 1, 1) + dt.timedelta(i)] for i in range(40)]
    table = pa.table({"n": [r[0] for r in rows], "x": [float(r[1]) for r in rows], "region": [r[2] for r in rows],
                      "day": [r[3] for r in rows]})
    pq.write_table(table, tmp_path / "d.parquet")
    book = openpyxl.Workbook()
    book.active.append(["n", "x", "region", "day"])
    for r in rows:
        book.active.append(r)
    book.save(tmp_path / "d.xlsx")
    for f in ("d.parquet", "d.xlsx"):
        _, cat = draft(tmp_path, tmp_path / f, min_count=5)
        ds = cat.datasets["d"]
        assert {c: ds.columns[c].type for c in ds.columns} == {"n": "integer", "x": "decimal", "region": "category",
                                                               "day": "date"}, f
        load_dataset(tmp_path / f, "d", ds)


# ------------------------------------------------------------------ what the draft discloses
def test_rare_values_are_left_out_counted_and_never_shown(tmp_path):
    rows = [[["Familial", "Acquainted"][i % 2], "NG" if i < 30 else "RO"] for i in range(60)]
    rows[7] = ["Zebulon Quartermain", "NG"]   # one row: a name typed into a picklist field
    rows[8] = ["Familial", "XK"]
    rows[9] = ["Familial", "XK"]
    data = write_csv(tmp_path / "ngo.csv", ["relation", "country"], rows)
    text, cat = draft(tmp_path, data, min_count=3)
    assert "Zebulon" not in text and "XK" not in text
    ds = cat.datasets["ngo"]
    assert ds.columns["relation"].domain == ["Acquainted", "Familial"]
    assert ds.columns["country"].domain == ["NG", "RO"]
    joined = text.replace("\n#   ", " ")  # comment lines wrapped
    assert re.search(r"relation: .*LEFT OUT of the domain: 1 rarer value", joined)
    assert re.search(r"country: .*LEFT OUT of the domain: 1 rarer value", joined)
    with pytest.raises(DataError) as e:  # the rows with left-out values, and only those, fail validation
        load_dataset(data, "ngo", ds)
    assert sorted((i.row, i.column) for i in e.value.issues) == [(8, "relation"), (9, "country"), (10, "country")]
    _, cat2 = draft(tmp_path, data, min_count=1)
    assert "Zebulon Quartermain" in cat2.datasets["ngo"].columns["relation"].domain  # the owner's choice


def test_bounds_are_rounded_outward_and_flagged(tmp_path):
    rows = [[17 + (i * 7) % 67, f"{3.25 + i:.2f}", (dt.date(2021, 3, 17) + dt.timedelta(days=3 * i)).isoformat()]
            for i in range(50)]
    data = write_csv(tmp_path / "d.csv", ["age", "amount", "seen_on"], rows)
    text, cat = draft(tmp_path, data)
    cols = cat.datasets["d"].columns
    assert (cols["age"].min, cols["age"].max) == (10, 90)  # data 17..83
    assert (cols["amount"].min, cols["amount"].max, cols["amount"].scale) == (0, 60, 2)  # data 3.25..52.25
    assert (cols["seen_on"].min, cols["seen_on"].max) == (dt.date(2021, 1, 1), dt.date(2021, 12, 31))
    for v in ("17", "83", "3.25", "52.25", "2021-03-17"):
        assert not re.search(rf"(?<![\d.-]){re.escape(v)}(?![\d.])", text), v
    assert text.count("BOUNDS FROM THE DATA") == 3 and cols["age"].clamp == (10, 90)


def test_identifiers_are_keys_or_not_declared(tmp_path):
    rows = [[i * 37 + 5, f"C-{i:05d}", f"Person {i % 3}", 1000 + i, ["a", "b"][i % 2]] for i in range(60)]
    data = write_csv(tmp_path / "cases.csv", ["person_id", "client_ref", "full_name", "row", "kind"], rows)
    text, cat = draft(tmp_path, data)
    ds = cat.datasets["cases"]
    assert set(ds.columns) == {"person_id", "row", "kind"}
    for c in ("person_id", "row"):  # by its name; by a distinct whole number per row
        assert ds.columns[c].type == "key" and ds.columns[c].role == "key" and not ds.columns[c].where
    assert ds.columns["person_id"].unique and ds.person_key == "person_id"
    assert "C-0" not in text and "Person" not in text.split("[datasets")[1].replace("person", "")
    assert "# client_ref is not declared" in text and "# full_name is not declared" in text


def test_draft_is_marked_and_starts_strict(tmp_path):
    data = write_csv(tmp_path / "h.csv", ["channel"], [["Phone"]] * 12)
    text, cat = draft(tmp_path, data, owner="helpline", name="helpline_reports")
    assert text.startswith("# DRAFT of dataset helpline_reports") and "REVIEW" in text.splitlines()[0]
    assert all(line.startswith("#") or "inferred:" in line or line.startswith(("[", "channel =", "description =", "owner ="))
               for line in text.splitlines() if line.strip()), "every inferred field says how it was inferred"
    ds = cat.datasets["helpline_reports"]
    assert ds.owner == "helpline" and ds.policy.receivers == ["helpline"] and ds.policy.require_approval
    assert (ds.policy.min_group_size, ds.policy.round_counts_to) == (20, 10)


def test_shipped_data_drafts_validate_apart_from_left_out_values(tmp_path):
    data = ROOT / "examples" / "data" / "helpline_reports.csv"
    text, cat = draft(tmp_path, data, min_count=1)
    load_dataset(data, "helpline_reports", cat.datasets["helpline_reports"])
    real = load_catalog(ROOT / "examples" / "catalog.toml").datasets["helpline_reports"]
    inferred = cat.datasets["helpline_reports"]
    assert {c: inferred.columns[c].type for c in real.columns} == {c: col.type for c, col in real.columns.items()}


# ------------------------------------------------------------------ CLI
def test_cli_infer_writes_a_draft_and_reports_bad_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "p.csv", ["region", "age"], [["North", 30 + i % 9] for i in range(20)])
    assert main(["catalog", "infer", "p.csv", "--owner", "police", "--name", "police_victims", "-o", "d.toml"]) == 0
    assert "DRAFT" in capsys.readouterr().err
    assert load_catalog(tmp_path / "d.toml").datasets["police_victims"].owner == "police"
    assert main(["catalog", "infer", "p.csv", "--min-count", "50"]) == 0
    assert "region is not declared" in capsys.readouterr().out
    assert main(["catalog", "infer", "missing.csv"]) == 1
    assert "missing.csv: file not found" in capsys.readouterr().err
    assert main(["catalog", "infer"]) == 2
    assert "needs the data file" in capsys.readouterr().err


def test_cli_explain_and_diff_of_catalogs_show_effective_policies(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = (ROOT / "tests" / "catalog_layouts" / "valid" / "like_dataset.toml").read_text(encoding="utf-8")
    (tmp_path / "a.toml").write_text(base, encoding="utf-8")
    (tmp_path / "b.toml").write_text(base.replace("min_group_size = 5", "min_group_size = 3"), encoding="utf-8")
    assert main(["explain", "a.toml"]) == 0
    out = capsys.readouterr().out
    assert "ngo_clients  owner ngo, k=5  like police_victims" in out
    assert re.search(r"min_group_size +5 +own +looser than police_victims \(10\)", out)
    assert re.search(r"receivers +police, ngo +police_victims", out)
    assert main(["catalog", "a.toml"]) == 0 and capsys.readouterr().out == out
    assert main(["diff", "a.toml", "b.toml"]) == 3
    assert "dataset ngo_clients: policy min_group_size = 3, looser than before (5)" in capsys.readouterr().out
    assert main(["diff", "b.toml", "a.toml"]) == 1 and "stricter than before (3)" in capsys.readouterr().out
    assert main(["diff", "a.toml", "a.toml"]) == 0
    capsys.readouterr()
    (tmp_path / "c.toml").write_text(base.replace('receivers = ["police", "ngo"]', 'receivers = ["police", "ngo", '
                                                  '"helper"]'), encoding="utf-8")
    assert main(["diff", "a.toml", "c.toml"]) == 3  # a change to a layout reaches every dataset like it
    out = capsys.readouterr().out
    for name in ("police_victims", "ngo_clients"):
        assert f"dataset {name}: policy receivers = police, ngo, helper, looser than before (police, ngo)" in out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1, max_size=12)
                .map(str.strip).filter(bool), min_size=1, max_size=5, unique=True))
def test_any_text_survives_the_toml_as_written(tmp_path, values):
    """Quotes, backslashes, control characters, DEL and characters beyond the BMP: the domain read back
    is the values themselves, and the column's own name may be any of them too."""
    values = [v for v in values if "\n" not in v and "\r" not in v] or ["x"]  # line breaks in fields: the readers' tests
    rows = [[v] for v in values for _ in range(2)]
    data = write_csv(tmp_path / "t.csv", [values[0]], rows)
    _, cat = draft(tmp_path, data, min_count=2)
    col = cat.datasets["t"].columns.get(values[0])
    if col is not None:  # a name like identifying text is not declared
        assert col.type != "category" or sorted(col.domain) == sorted(values)


def test_distinct_text_per_row_is_never_a_domain_even_with_min_count_1(tmp_path):
    rows = [[f"Reference {i * 7919 % 1000:03d}", ["a", "b"][i % 2]] for i in range(12)]
    data = write_csv(tmp_path / "r.csv", ["reference", "kind"], rows)
    text, cat = draft(tmp_path, data, min_count=1)
    assert "Reference" not in text and set(cat.datasets["r"].columns) == {"kind"}
    assert "reference: inferred: NOT DECLARED: a distinct text per row" in text
