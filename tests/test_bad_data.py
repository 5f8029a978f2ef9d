"""Bad data is rejected before anything is shared, with file, row, column and reason.

Unit tests call `load_dataset` directly (fast); the `mpc` tests break one party's CSV and run
real parties: the owner reports the problem and exits 3, the others stop at the handshake
naming that party and exit 4, nobody writes or prints a result; `iq run` exits non-zero.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.runtime.data.loader import MAX_REPORTED, DataError, load_dataset

from conftest import CATALOG, Parties, compile_plan, printed_lines
from randdata import random_rows, write_csv

CAT = load_catalog(CATALOG)
DS = CAT.datasets["police_victims"]
BAD_ROW = 3  # 1-based data row that each case breaks

# kind -> (column, bad text, words the reason must contain)
CASES = {
    "wrong_type": ("prs_Age", "twelve", "'twelve' is not an integer"),
    "decimal_not_a_number": ("debt_eur", "12,50", "is not a number"),
    "decimal_nan": ("debt_eur", "nan", "is not a number"),
    "integer_with_underscore": ("prs_Age", "1_0", "is not an integer"),
    "outside_bounds": ("prs_Age", "130", "130 is outside the declared range [0, 99]"),
    "below_bounds": ("hours_worked_week", "-1", "outside the declared range"),
    "key_outside_bits": ("person_id", str(2 ** 48), "outside the declared range"),
    "too_many_decimals": ("debt_eur", "10.505", "more than 2 decimal places"),
    "category_outside_domain": ("prs_Gender", "Alien", "'Alien' is not in the category's domain"),
    "category_wrong_case": ("exp_Region", "north", "is not in the category's domain"),
    "null_not_nullable": ("prs_Age", "", "empty value, but the column is not nullable"),
    "null_category": ("exp_Type", "", "not nullable"),
    "bad_date": ("identified_on", "2021-02-30", "'2021-02-30' is not a date (YYYY-MM-DD)"),
    "date_wrong_format": ("identified_on", "31/01/2021", "is not a date"),
    "date_compact_iso": ("identified_on", "20210131", "is not a date"),
    "date_outside_range": ("identified_on", "2019-12-31", "outside the declared range"),
    "bad_boolean": ("minor_at_recruitment", "maybe", "is not a boolean"),
}


def good_rows(n: int = 6) -> list[dict]:
    return random_rows(DS, n, np.random.default_rng(3), null_rate=0.0)


def broken_csv(folder: Path, kind: str) -> Path:
    rows = good_rows()
    path = folder / f"police-{kind}.csv"
    if kind == "missing_column":
        cols = [c for c in DS.columns if c != "exp_Region"]
        path.write_text("\n".join([",".join(cols)] + [",".join(r[c] for c in cols) for r in rows]) + "\n")
        return path
    col, text, _ = CASES[kind]
    rows[BAD_ROW - 1][col] = text
    return write_csv(path, DS, rows)


# -- unit tests of the loader ---------------------------------------------------------------------
def test_good_file_loads(tmp_path):
    table, n = load_dataset(write_csv(tmp_path / "ok.csv", DS, good_rows()), "police_victims", DS)
    assert n == 6 and set(table) == set(DS.columns)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_bad_value_names_file_row_column_reason(tmp_path, kind):
    col, _, reason = CASES[kind]
    path = broken_csv(tmp_path, kind)
    with pytest.raises(DataError) as e:
        load_dataset(path, "police_victims", DS)
    assert [(i.row, i.column) for i in e.value.issues] == [(BAD_ROW, col)]
    assert reason in e.value.issues[0].reason
    msg = str(e.value)
    assert msg.startswith("IQ501 invalid data, nothing was shared")
    assert f"{path}: row {BAD_ROW}, column {col}: " in msg


def test_missing_column(tmp_path):
    path = broken_csv(tmp_path, "missing_column")
    with pytest.raises(DataError) as e:
        load_dataset(path, "police_victims", DS)
    assert [(i.row, i.column) for i in e.value.issues] == [(None, "exp_Region")]
    assert f"{path}, column exp_Region: missing column" in str(e.value)


def test_wrong_number_of_fields_and_empty_file(tmp_path):
    path = write_csv(tmp_path / "p.csv", DS, good_rows())
    lines = path.read_text().splitlines()
    lines[2] += ",extra"
    path.write_text("\n".join(lines) + "\n")
    n = len(DS.columns)
    with pytest.raises(DataError, match=rf"row 2: has {n + 1} fields, the header has {n}"):
        load_dataset(path, "police_victims", DS)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        load_dataset(empty, "police_victims", DS)
    with pytest.raises(DataError, match="file not found"):
        load_dataset(tmp_path / "nope.csv", "police_victims", DS)


def test_every_problem_listed_up_to_the_limit(tmp_path):
    rows = good_rows(40)
    for r in rows[:3]:
        r["prs_Age"] = "200"
    rows[5]["prs_Gender"] = "X"
    path = write_csv(tmp_path / "p.csv", DS, rows)
    with pytest.raises(DataError) as e:
        load_dataset(path, "police_victims", DS)
    assert {(i.row, i.column) for i in e.value.issues} == {(1, "prs_Age"), (2, "prs_Age"), (3, "prs_Age"),
                                                           (6, "prs_Gender")}
    bad = ["prs_Age", "prs_Gender", "exp_Type", "exp_Region", "identified_on", "minor_at_recruitment",
           "hours_worked_week", "debt_eur", "interview_notes_len"]
    for r in rows[:3]:  # 3 bad values of a column are listed row by row (more are summarised: below)
        r.update({c: "x" for c in bad})
    path = write_csv(tmp_path / "many.csv", DS, rows)
    with pytest.raises(DataError) as e:
        load_dataset(path, "police_victims", DS)
    assert len(e.value.issues) == MAX_REPORTED and "stopped after" in str(e.value)


def test_many_bad_values_of_a_column_are_one_summarised_issue(tmp_path):
    rows = good_rows(40)
    for k, r in enumerate(rows):
        r["prs_Age"] = "x"
        if k % 3 == 0:
            r["exp_Region"] = "north" if k % 2 else "Nord"
    rows[5]["prs_Gender"] = "X"
    rows[7]["exp_Region"] = "Nowhere"
    with pytest.raises(DataError) as e:
        load_dataset(write_csv(tmp_path / "p.csv", DS, rows), "police_victims", DS)
    got = {i.column: i for i in e.value.issues}
    assert len(e.value.issues) == 3 and (got["prs_Gender"].row, got["prs_Age"].row, got["exp_Region"].row) == (6, None, None)
    assert got["prs_Age"].reason == ("40 values are not an integer; rows 1, 2, 3, 4, 5, ...; values 'x' (40 rows); "
                                     "hint: correct them in the file")
    region = got["exp_Region"].reason
    assert region.startswith("15 values are not in the category's domain (North, East, South, West); "
                             "rows 1, 4, 7, 8, 10, ...; values 'Nord' (7 rows), 'north' (7 rows), 'Nowhere' (1 row); hint:")
    assert "--" not in str(e.value) and str(e.value).count("exp_Region") == 1


def test_nulls_only_where_nullable(tmp_path):
    rows = good_rows()
    rows[0]["hours_worked_week"] = rows[1]["debt_eur"] = ""
    table, _ = load_dataset(write_csv(tmp_path / "p.csv", DS, rows), "police_victims", DS)
    assert table["hours_worked_week"].null[0] and table["debt_eur"].null[1]


def _variants(text: str, rows: list[dict]) -> dict[str, str]:
    lines = text.splitlines()
    reordered = list(DS.columns)[::-1]
    return {
        "no_final_newline": text.rstrip("\n"),
        "crlf": text.replace("\n", "\r\n"),
        "bom": "\ufeff" + text,
        "quoted": "\n".join(",".join(f'"{f}"' for f in line.split(",")) for line in lines) + "\n",
        "spaces_after_commas": "\n".join(", ".join(line.split(",")) for line in lines) + "\n",
        "columns_reordered": "\n".join([",".join(reordered)] + [",".join(r[c] for c in reordered) for r in rows]) + "\n",
    }


def test_format_variants_load_the_same_values(tmp_path):
    """The fast path and the csv-module path agree: same values from every accepted spelling."""
    rows = random_rows(DS, 30, np.random.default_rng(5), null_rate=0.2)
    base = write_csv(tmp_path / "base.csv", DS, rows)
    ref, n = load_dataset(base, "police_victims", DS)
    for kind, text in _variants(base.read_text(), rows).items():
        path = tmp_path / f"{kind}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            fh.write(text)
        table, m = load_dataset(path, "police_victims", DS)
        assert m == n, kind
        for c in ref:
            assert np.array_equal(table[c].null, ref[c].null), (kind, c)
            assert np.array_equal(table[c].values[~ref[c].null], ref[c].values[~ref[c].null]), (kind, c)


def test_header_only_file_has_zero_rows(tmp_path):
    for text in (",".join(DS.columns) + "\n", ",".join(DS.columns)):
        path = tmp_path / "empty.csv"
        path.write_text(text)
        table, n = load_dataset(path, "police_victims", DS)
        assert n == 0 and all(len(v.values) == 0 for v in table.values())


# -- through real parties ------------------------------------------------------------------------
QUERY = """@purpose research
SELECT exp_Type, COUNT(*) AS n
FROM police_victims UNION ALL ngo_clients
GROUP BY exp_Type;"""

RUN_KINDS = ["wrong_type", "outside_bounds", "category_outside_domain", "missing_column",
             "null_not_nullable", "bad_date"]


def police_stops_everyone(tmp_path: Path, corpus_data: dict, bad: Path) -> str:
    """Run real parties with `bad` as police's file: police exits 3, the others 4 naming police,
    nobody shares, prints a result or a Python traceback. Returns police's standard error."""
    plan = compile_plan(QUERY, CAT)
    parties = Parties(plan, {**corpus_data, "police_victims": str(bad)}, tmp_path).start()
    try:
        codes = parties.wait(timeout=90)
    finally:
        parties.stop_all()
    police = parties.stderr("police")
    assert codes["police"] == 3, police
    for name in ("ngo", "helpline", "helper"):
        err = parties.stderr(name)
        assert codes[name] == 4, err
        assert "party police cannot take part: invalid data" in err, err
        assert "no data was shared" in err
    for name in plan["parties"]:
        assert "secure steps" not in parties.stderr(name)  # stopped at the handshake
        assert "Traceback" not in parties.stderr(name) + parties.out[name]
        assert printed_lines(parties.out[name]) == [] and not parties.result_path(name).exists()
    return police


@pytest.mark.mpc
@pytest.mark.parametrize("kind", RUN_KINDS)
def test_real_parties_stop_before_sharing(tmp_path, corpus_data, kind):
    bad = broken_csv(tmp_path, kind)
    col = "exp_Region" if kind == "missing_column" else CASES[kind][0]
    police = police_stops_everyone(tmp_path, corpus_data, bad)
    assert str(bad) in police and f"column {col}" in police
    if kind != "missing_column":
        assert f"row {BAD_ROW}" in police and CASES[kind][2] in police


@pytest.mark.mpc
def test_iq_run_exits_non_zero_and_prints_no_result(tmp_path, corpus_data):
    query = tmp_path / "q.iq"
    query.write_text(QUERY)
    bad = broken_csv(tmp_path, "outside_bounds")
    out = tmp_path / "result.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "insightql.runtime.cli", "run", str(query), "--catalog", str(CATALOG),
         "--data", f"police={bad}", "--data", f"ngo={corpus_data['ngo_clients']}", "--quiet",
         "--timeout", "60", "--out", str(out)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert printed_lines(proc.stdout) == [] and not out.exists()
    assert f"row {BAD_ROW}, column prs_Age: 130 is outside the declared range" in proc.stderr
    assert "parties ngo, helper and helpline stopped at the handshake because of police" in proc.stderr, proc.stderr
