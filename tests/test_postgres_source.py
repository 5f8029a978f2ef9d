"""PostgreSQL as a data source (runtime/data/postgres.py), against a real server (tests/pg_server.py):
the same rows give the same Table as the CSV file, the same bad values the same issues; NULLs;
a text column where the catalog declares an integer; a query file and its row order; the read-only
transaction; and the password of the connection string in no output, an end-to-end run included."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import CATALOG, compile_plan, oracle_result, run_mpc
from pg_server import READER_PASSWORD, pg_server  # noqa: F401 (the fixture)
from test_loader_sources import CAT, DATA, assert_same, rows_of, write_source

from insightql.compiler.check.catalog import load_catalog
from insightql.runtime.data import loader as dl

PG_TYPES = {"key": "bigint", "integer": "integer", "decimal": "numeric", "date": "date", "boolean": "boolean",
            "category": "text"}


def make_table(server, table: str, header: list[str], rows: list[list[str]], ds=None, schema="public"):
    """`rows` as table schema.table (every column text, or with `ds` the declared ones typed), and
    the rows in the table's physical order: a row that fits the free space of an earlier page is
    stored there, so it is not always the order of insertion. (An extra column _line, which no
    catalog declares, tells the order.)"""
    types = [PG_TYPES[ds.columns[h].type] if ds and h in ds.columns else "text" for h in header]
    cols = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(h), sql.SQL(t))
                              for h, t in zip([*header, "_line"], [*types, "integer"]))
    name = sql.Identifier(schema, table)
    with psycopg.connect(server.socket_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(name, cols))
        with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(name)) as cp:
            for k, r in enumerate(rows):
                cp.write_row([*(v if v != "" else None for v in r), k])
        order = [k for (k,) in conn.execute(sql.SQL("SELECT _line FROM {}").format(name))]
    return f"postgresql:{schema}.{table}", [rows[k] for k in order]


@pytest.fixture
def pg(pg_server, monkeypatch):  # noqa: F811
    """The server, with this process's connection string set to its read-only role (with a password)."""
    monkeypatch.setenv("IQ_PG_DSN", pg_server.reader_dsn)
    monkeypatch.delenv("IQ_PG_DSN_FILE", raising=False)
    return pg_server


def load(spec, name="police_victims", wanted=None):
    try:
        return dl.load_dataset(spec, name, CAT.datasets[name], wanted)
    except dl.DataError as e:
        return [(i.row, i.column, i.reason) for i in e.issues]


def from_csv(tmp_path, name, header, rows, wanted=None):
    return load(write_source(tmp_path, "csv", CAT.datasets[name], header, rows), name, wanted)


@pytest.mark.parametrize("typed", [False, True], ids=["text_columns", "typed_columns"])
@pytest.mark.parametrize("name", ["police_victims", "ngo_clients", "helpline_reports", "bank_flags"])
def test_same_table_as_csv(pg, tmp_path, name, typed):
    header, rows = rows_of(DATA / f"{name}.csv")
    spec, rows = make_table(pg, name, header, rows, CAT.datasets[name] if typed else None)
    got, want = load(spec, name), from_csv(tmp_path, name, header, rows)
    assert not isinstance(got, list), got
    assert_same(got, want)


@pytest.mark.parametrize("col,bad", [("prs_Gender", "Alien"), ("prs_Age", "1_0"), ("identified_on", "2021-02-30"),
                                     ("debt_eur", "nan"), ("person_id", "9" * 20), ("minor_at_recruitment", "maybe"),
                                     ("exp_Region", ""), ("prs_Age", "-1"), ("prs_Age", "1.0"), ("person_id", "-5"),
                                     ("debt_eur", "10.505"), ("identified_on", "0000-01-01"), ("prs_Age", " 7 ")])
def test_same_issues_as_csv(pg, tmp_path, col, bad):
    header, rows = rows_of(DATA / "police_victims.csv")
    rows = rows[:40]
    for k in (1, 6):
        rows[k][header.index(col)] = bad
    spec, rows = make_table(pg, "bad", header, rows)
    got, want = load(spec), from_csv(tmp_path, "police_victims", header, rows)
    if bad == " 7 ":  # surrounding whitespace is stripped, from any source
        assert_same(got, want)
    else:
        assert got == want and [(r, c) for r, c, _ in got] == [(2, col), (7, col)]


def test_text_column_where_integer_declared(pg):
    header, rows = rows_of(DATA / "police_victims.csv")
    rows = rows[:10]
    rows[4][header.index("prs_Age")] = "forty"
    spec, _ = make_table(pg, "ages_as_text", header, rows)
    with pytest.raises(dl.DataError) as err:
        dl.load_dataset(spec, "police_victims", CAT.datasets["police_victims"])
    text = str(err.value)
    assert "PostgreSQL table public.ages_as_text (database iqtest on 127.0.0.1:" in text
    assert "rows in the table's physical order): row 5, column prs_Age: 'forty' is not an integer" in text
    assert "nothing was shared" in text and READER_PASSWORD not in text


def test_nulls_typed_and_text(pg, tmp_path):
    header, rows = rows_of(DATA / "police_victims.csv")
    rows = rows[:12]
    for k in (2, 3):
        rows[k][header.index("hours_worked_week")] = ""  # nullable: NULL in the database
        rows[k][header.index("debt_eur")] = ""
    ds = CAT.datasets["police_victims"]
    spec, rows = make_table(pg, "nulls", header, rows, ds)
    table, n = load(spec)
    assert n == 12 and table["hours_worked_week"].null[[2, 3]].all() and table["debt_eur"].null.sum() >= 2
    assert_same((table, n), from_csv(tmp_path, "police_victims", header, rows))
    rows[5][header.index("prs_Age")] = ""  # not nullable
    spec, rows = make_table(pg, "nulls", header, rows, ds)
    got = load(spec)
    assert got == [(6, "prs_Age", "empty value, but the column is not nullable")]
    assert got == from_csv(tmp_path, "police_victims", header, rows)


def test_query_file_renames_filters_and_orders(pg, tmp_path):
    header, rows = rows_of(DATA / "police_victims.csv")
    rows = rows[:50]
    other = ["id" if h == "person_id" else h for h in header] + ["notes"]
    make_table(pg, "victims_raw", other, [r + ["not declared; ignored"] for r in rows], CAT.datasets["police_victims"])
    query = tmp_path / "victims.sql"
    query.write_text('-- the police export\nSELECT id AS person_id, v.* FROM public.victims_raw v\n'
                     "WHERE \"exp_Region\" <> 'North' ORDER BY id::bigint DESC, \"identified_on\";\n", encoding="utf-8")
    got = load(f"postgresql:{query}")
    reg = header.index("exp_Region")
    kept = sorted([r for r in rows if r[reg] != "North"], key=lambda r: (-int(r[0]), r[header.index("identified_on")]))
    assert_same(got, from_csv(tmp_path, "police_victims", header, kept))
    kept[2][header.index("prs_Gender")] = "Alien"
    make_table(pg, "victims_raw", other, [r + [""] for r in kept])
    issues = load(f"postgresql:{query}")
    assert issues == [(3, "prs_Gender", issues[0][2])] and "'Alien' is not in the category's domain" in issues[0][2]
    with pytest.raises(dl.DataError, match=r"PostgreSQL query .*victims\.sql .*rows in the query's result order\): "
                                           r"row 3, column prs_Gender"):
        dl.load_dataset(f"postgresql:{query}", "police_victims", CAT.datasets["police_victims"])


def test_values_with_commas_quotes_and_line_breaks(pg, tmp_path):
    header, rows = rows_of(DATA / "police_victims.csv")
    rows = rows[:6]
    rows[1][header.index("prs_Gender")] = 'Fem,"inine"\nx'
    rows[2][header.index("exp_Type")] = 'a\\b "(c)",\\"'
    rows[3][header.index("exp_Region")] = " East\r\n"  # stripped: a valid value
    rows[4][header.index("vic_RelationshipToTrafficker")] = ""  # NULL, nullable
    got = load(make_table(pg, "odd_text", header, rows)[0])
    assert [(r, c) for r, c, _ in got] == [(2, "prs_Gender"), (3, "exp_Type")]
    assert got[0][2].startswith("'Fem,\"inine\"\\nx' is not in the category's domain (Feminine, Masculine, ")
    assert got[1][2].startswith("'a\\b \"(c)\",\\\"' is not in the category's domain")


def test_missing_column_and_empty_table(pg):
    header, rows = rows_of(DATA / "police_victims.csv")
    keep = [j for j, h in enumerate(header) if h != "prs_Age"]
    got = load(make_table(pg, "no_age", [header[j] for j in keep], [[r[j] for j in keep] for r in rows[:5]])[0])
    assert got == [(None, "prs_Age", "missing column (dataset police_victims declares it)")]
    table, n = load(make_table(pg, "empty", header, [])[0])
    assert n == 0 and all(len(v.values) == 0 for v in table.values())


def test_read_only_transaction(pg, tmp_path):
    header, rows = rows_of(DATA / "police_victims.csv")
    make_table(pg, "keep", header, rows[:5])
    with psycopg.connect(pg.socket_dsn, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE IF NOT EXISTS public.keep_seq; GRANT ALL ON public.keep_seq TO reader; "
                     "GRANT ALL ON public.keep TO reader")
    writes = {"delete.sql": ("WITH gone AS (DELETE FROM public.keep RETURNING *) SELECT * FROM gone",
                             "data-modifying statement"),
              "nextval.sql": ("SELECT k.*, nextval('public.keep_seq') FROM public.keep k",
                              r"cannot execute nextval\(\) in a read-only transaction")}
    for file, (text, refusal) in writes.items():
        (tmp_path / file).write_text(text, encoding="utf-8")
        with pytest.raises(dl.DataError, match="the server refused: .*" + refusal):
            dl.load_dataset(f"postgresql:{tmp_path / file}", "police_victims", CAT.datasets["police_victims"])
    with psycopg.connect(pg.socket_dsn) as conn:
        assert conn.execute("SELECT count(*), max(last_value) FROM public.keep, public.keep_seq").fetchone() == (5, 1)


@pytest.mark.parametrize("case", ["wrong_password", "no_table", "no_privilege", "bad_dsn", "dsn_file_bad_values"])
def test_password_in_no_message(pg, tmp_path, monkeypatch, case):
    header, rows = rows_of(DATA / "police_victims.csv")
    spec, _ = make_table(pg, "fine", header, rows[:5])
    if case == "wrong_password":
        monkeypatch.setenv("IQ_PG_DSN", pg.reader_dsn.replace(READER_PASSWORD, READER_PASSWORD + "-wrong"))
        want = "cannot connect: .*password authentication failed"
    elif case == "no_table":
        spec, want = "postgresql:public.nowhere", "the server refused: relation \"public.nowhere\" does not exist"
    elif case == "no_privilege":
        spec, _ = make_table(pg, "hidden", header, rows[:5], schema="private")
        want = "the server refused: permission denied"
    elif case == "bad_dsn":  # libpq's own message would quote the string
        monkeypatch.setenv("IQ_PG_DSN", pg.reader_dsn + " oops")
        want = "not a libpq connection string or URI; it is not shown"
    else:
        monkeypatch.delenv("IQ_PG_DSN")
        (tmp_path / "dsn").write_text(pg.reader_dsn + "\n", encoding="utf-8")
        monkeypatch.setenv("IQ_PG_DSN_FILE", str(tmp_path / "dsn"))
        rows[2][header.index("prs_Age")] = "old"
        spec, _ = make_table(pg, "fine", header, rows[:5])
        want = r"row 3, column prs_Age: 'old' is not an integer"
    with pytest.raises(dl.DataError, match=want) as err:
        dl.load_dataset(spec, "police_victims", CAT.datasets["police_victims"])
    assert READER_PASSWORD not in str(err.value) and "password=" not in str(err.value)


@pytest.mark.mpc
def test_end_to_end_one_party_reads_postgresql(pg, corpus_data, corpus_catalog):
    """police reads its rows from PostgreSQL (a table and a query), the others from CSV: the same
    result as everyone from CSV; the password appears in no party's output."""
    plan = compile_plan((CATALOG.parent / "valid" / "07_date_range.iq").read_text(encoding="utf-8"), corpus_catalog)
    header, rows = rows_of(Path(corpus_data["police_victims"]))
    spec, _ = make_table(pg, "corpus_police", header, rows, corpus_catalog.datasets["police_victims"])
    want = oracle_result(plan, corpus_catalog, corpus_data)
    got = run_mpc(plan, {**corpus_data, "police_victims": spec})
    assert got.rows == want.rows and got.columns == want.columns
    proc = subprocess.run([sys.executable, "-m", "insightql.runtime.cli", "run", str(CATALOG.parent / "valid" /
                           "07_date_range.iq"), "--catalog", str(CATALOG), "--data", f"police_victims={spec}x",
                           *[f"--data={d}={p}" for d, p in corpus_data.items() if d in plan["datasets"]
                             and d != "police_victims"],
                           "--timeout", "120"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr  # bad data: the table is missing
    assert f"{spec}x" in proc.stderr or "does not exist" in proc.stderr
    assert READER_PASSWORD not in proc.stdout + proc.stderr


def test_corpus_catalog_loads_like_csv(pg, corpus_data, tmp_path):
    cat = load_catalog(CATALOG)
    header, rows = rows_of(Path(corpus_data["ngo_clients"]))
    spec, rows = make_table(pg, "corpus_ngo", header, rows, cat.datasets["ngo_clients"])
    csv_file = write_source(tmp_path, "csv", cat.datasets["ngo_clients"], header, rows)
    assert_same(dl.load_dataset(spec, "ngo_clients", cat.datasets["ngo_clients"]),
                dl.load_dataset(csv_file, "ngo_clients", cat.datasets["ngo_clients"]))
