"""Result files (issue 17 item 7, spec/results.md): CSV puts suppression in its own columns and
leaves suppressed values empty; JSON, CSV and Parquet carry the same cells, flags and reasons
(hypothesis: random result tables written and read back in every format); Parquet has proper
types and the plan's hash, receivers and rules in its key-value metadata; a typed CSV reader
(pyarrow's, like pandas, readr and DuckDB) gets boolean flags and nulls where a value is suppressed."""
from __future__ import annotations

import io
import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insightql.compiler.plaintext.results import ResultTable, Rounded, Suppressed, rounded
from insightql.runtime.results import format_of, read_result, render_result, write_result
from insightql.runtime.results.tabular import read_csv, read_parquet

CELL = ("cell.rows", "observer.rows")
KEY_TYPES = {"category": {"kind": "category", "nullable": True}, "int": {"kind": "int", "nullable": True},
             "date": {"kind": "date", "nullable": False}, "bool": {"kind": "bool", "nullable": False}}
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=12)


def key_values(kind: str):
    return {"category": st.one_of(TEXT, st.none()), "int": st.one_of(st.integers(-10 ** 12, 10 ** 12), st.none()),
            "date": st.dates().map(lambda d: d.isoformat()), "bool": st.booleans()}[kind]


def measure_values(kind: str, digits: int):
    if kind == "int":
        return st.integers(-(2 ** 62), 2 ** 62)
    floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
    return floats.map(lambda v: rounded(v, digits) if digits else v).filter(math.isfinite) if digits else floats


@st.composite
def result_tables(draw) -> ResultTable:
    keys = draw(st.lists(st.sampled_from(sorted(KEY_TYPES)), max_size=2))
    measures = draw(st.lists(st.tuples(st.sampled_from(["int", "decimal"]), st.integers(0, 3)), min_size=1, max_size=3))
    schema = [{"name": f"k{i}_{k}", "kind": "key", "type": KEY_TYPES[k]} for i, k in enumerate(keys)]
    own = draw(st.sampled_from([(), ("values.rows",), ("percentile.rank", "values.rows"), ("sum.dominance",)]))
    for j, (kind, digits) in enumerate(measures):
        schema.append({"name": f"m{j}", "kind": "value", "type": {"kind": kind, "nullable": True}, "rules": list(own),
                       **({"digits": digits} if digits and kind == "decimal" else {})})
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        row = [draw(key_values(k)) for k in keys]
        state = draw(st.sampled_from(["released", "cell", "mixed"]))
        for kind, digits in measures:
            if state == "cell":
                row.append(Suppressed("fewer than k=10 rows", "cell", CELL))
            elif state == "mixed" and draw(st.booleans()):
                row.append(draw(st.one_of(st.none(), st.just(Suppressed("value withheld", "value", own)))))
            else:
                row.append(draw(measure_values(kind, digits if kind == "decimal" else 0)))
        rows.append(row)
    return ResultTable([s["name"] for s in schema], rows, ["a note"], schema)


def cells(table: ResultTable) -> list[list]:
    """Every cell as something == compares exactly: a value with its type (and digits), or the
    suppression's scope and rules."""
    def one(v):
        if isinstance(v, Suppressed):
            return ("suppressed", v.scope, tuple(v.rules))
        if isinstance(v, Rounded):
            return ("rounded", float(v), v.digits)
        return (type(v).__name__, v)
    return [[one(v) for v in r] for r in table.rows]


def meta() -> dict:
    return {"plan_hash": "sha256:" + "ab" * 32, "receivers": ["police", "ngo"],
            "rules": [{"id": "cell.rows", "title": "cell rule: rows", "section": "2.1", "scope": "cell",
                       "tests": ["the cell has >= 10 rows"]}], "released_on": "2026-12-07"}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=result_tables())
def test_csv_json_and_parquet_give_back_the_same_cells_and_flags(table, tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    want = cells(table)
    got = {}
    for fmt in ("json", "csv", "parquet"):
        path = folder / f"r.{fmt}"
        write_result(table, None, str(path), meta=meta())
        back, m = read_result(path, schema=table.schema if fmt == "csv" else None)
        assert back.columns == table.columns, fmt
        got[fmt] = cells(back)
        if fmt != "csv":
            assert m["plan_hash"] == meta()["plan_hash"] and back.schema == table.schema, fmt
    assert got["json"] == want
    assert got["csv"] == want
    assert got["parquet"] == want


def _sample() -> ResultTable:
    schema = [{"name": "region", "kind": "key", "type": {"kind": "category"}},
              {"name": "since", "kind": "key", "type": {"kind": "date"}},
              {"name": "victims", "kind": "value", "type": {"kind": "int"}, "rules": []},
              {"name": "mean_age", "kind": "value", "type": {"kind": "decimal"}, "rules": ["values.rows"],
               "digits": 1}]
    rows = [["North", "2022-01-01", 31, rounded(24.0, 1)],
            ["East", "2022-01-01", Suppressed("fewer than k=10", "cell", CELL), Suppressed("fewer", "cell", CELL)],
            ["South", "2023-06-30", 12, Suppressed("value withheld", "value", ("values.rows",))]]
    return ResultTable([s["name"] for s in schema], rows, ["1 row(s) suppressed"], schema)


def test_csv_has_flag_columns_and_empty_suppressed_values():
    text = _sample().to_csv()
    lines = text.splitlines()
    assert lines[0] == "region,since,victims,victims_suppressed,mean_age,mean_age_suppressed,suppressed_by"
    assert lines[1] == "North,2022-01-01,31,false,24.0,false,"  # round(x, 1) keeps its digit
    assert lines[2] == "East,2022-01-01,,true,,true,cell: cell.rows observer.rows"
    assert lines[3] == "South,2023-06-30,12,false,,true,mean_age: values.rows"
    assert "[suppressed]" not in text and "suppressed]" not in text


def test_a_typed_csv_reader_gets_boolean_flags_and_nulls_for_suppressed_values():
    """pyarrow's CSV reader infers types the way pandas, R's readr and DuckDB do: the flags are
    booleans and the measures numbers with nulls, not text."""
    from pyarrow import csv as pacsv
    t = pacsv.read_csv(pa.BufferReader(_sample().to_csv().encode()))
    assert t.schema.field("victims_suppressed").type == pa.bool_()
    assert t.schema.field("victims").type == pa.int64() and t.column("victims").to_pylist() == [31, None, 12]
    assert t.schema.field("mean_age").type == pa.float64()
    assert t.column("mean_age_suppressed").to_pylist() == [False, True, True]


def test_parquet_types_and_metadata():
    data = render_result(_sample(), meta(), "parquet")
    t = pq.read_table(pa.BufferReader(data))
    s = t.schema
    assert s.field("region").type == pa.string() and s.field("since").type == pa.date32()
    assert s.field("victims").type == pa.int64() and s.field("mean_age").type == pa.float64()
    assert s.field("victims_suppressed").type == pa.bool_() and not s.field("victims_suppressed").nullable
    assert t.column("victims").to_pylist() == [31, None, 12]
    assert t.column("mean_age_suppressed").to_pylist() == [False, True, True]
    assert t.column("suppressed_by").to_pylist() == [None, "cell: cell.rows observer.rows", "mean_age: values.rows"]
    kv = s.metadata
    assert kv[b"insightql.plan_hash"] == meta()["plan_hash"].encode()
    assert json.loads(kv[b"insightql.receivers"]) == ["police", "ngo"]
    assert json.loads(kv[b"insightql.rules"]) == ["cell.rows"]
    table, doc = read_parquet(data)
    assert doc["notes"] == ["1 row(s) suppressed"] and "rows" not in doc
    assert cells(table) == cells(_sample())


def test_json_cells_name_scope_and_rules():
    doc = json.loads(render_result(_sample(), meta(), "json"))
    assert doc["format"] == "insightql-result/1" and doc["meta"]["receivers"] == ["police", "ngo"]
    east, south = doc["rows"][1], doc["rows"][2]
    assert east["victims"] == {"suppressed": True, "reason": "fewer than k=10", "scope": "cell",
                               "rules": ["cell.rows", "observer.rows"]}
    assert south["mean_age"]["scope"] == "value" and south["mean_age"]["rules"] == ["values.rows"]
    assert south["victims"] == 12


def test_a_column_named_like_a_flag_is_refused_not_overwritten():
    t = ResultTable(["n", "n_suppressed"], [[Suppressed("x", "cell", CELL), 1]],
                    schema=[{"name": "n", "kind": "value", "type": {"kind": "int"}},
                            {"name": "n_suppressed", "kind": "value", "type": {"kind": "int"}}])
    with pytest.raises(ValueError, match="clash"):
        render_result(t, {}, "csv")


def test_format_of():
    assert format_of("r.PARQUET", None) == "parquet" and format_of("r.json", "html") == "html"
    assert format_of("r.txt", None) == "csv" and format_of(None, None) == "csv"
    with pytest.raises(ValueError):
        format_of("r.csv", "xlsx")


def test_csv_read_without_schema_infers_numbers():
    back = read_csv(_sample().to_csv())
    assert back.rows[0][:3] == ["North", "2022-01-01", 31] and back.rows[2][3].scope == "value"


def test_the_json_file_is_what_a_receivers_ledger_commits_to():
    """`iq audit prove` recomputes the commitment from the file: it must match the table's."""
    from insightql.runtime.governance.disclosure import commitment_value
    salt = bytes(range(32))
    doc = json.loads(render_result(_sample(), meta(), "json"))
    assert commitment_value(doc, salt) == commitment_value(json.loads(_sample().to_json()), salt)


def test_csv_quotes_carriage_returns_commas_and_quotes_in_categories(tmp_path):
    odd = ["\r", "a,b", 'say "hi"', "two\nlines", "tab\there"]
    schema = [{"name": "k", "kind": "key", "type": {"kind": "category"}},
              {"name": "n", "kind": "value", "type": {"kind": "int"}, "rules": []}]
    table = ResultTable(["k", "n"], [[v, i] for i, v in enumerate(odd)], [], schema)
    path = tmp_path / "odd.csv"
    write_result(table, None, str(path), meta={})
    back, _ = read_result(path, schema=schema)
    assert [r[0] for r in back.rows] == odd


def test_parquet_of_a_table_without_a_plan_types_columns_by_their_values():
    table = ResultTable(["region", "n", "share"], [["North", 3, 0.5], ["East", Suppressed("x", "cell", CELL), None]])
    t = pq.read_table(pa.BufferReader(render_result(table, {}, "parquet")))
    assert [t.schema.field(c).type for c in ("region", "n", "share")] == [pa.string(), pa.int64(), pa.float64()]
    assert t.column("n_suppressed").to_pylist() == [False, True] and "share_suppressed" not in t.column_names


def test_a_rounded_value_keeps_its_digits_through_the_json_a_party_writes():
    """`iq run` prints the table it read back from the first receiver's JSON: round(x, 1) of 24
    must still show 24.0 there (the schema carries the digits)."""
    from insightql.compiler.plaintext.results import table_from_json
    back = table_from_json(_sample().to_json())
    assert back.render().splitlines()[2].split()[-1] == "24.0"
    assert isinstance(back.rows[0][3], Rounded) and back.to_csv() == _sample().to_csv()
