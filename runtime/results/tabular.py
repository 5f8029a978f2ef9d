"""CSV and Parquet results, and reading them back (spec/results.md).

Both have the same columns: the query's columns in order, each measure m followed by
`m_suppressed` (true/false), and a last column `suppressed_by` (the rule ids behind the row's
suppressed values, `ResultTable.to_csv`). A suppressed value is empty (CSV) or null (Parquet),
never a text in a numeric column. Parquet types: integers int64, decimals float64, dates date32,
categories and text strings, booleans bool; the flags are non-null booleans. The file's key-value
metadata holds the plan hash, the receivers, the rules applied and the whole result document
without its rows (runtime/results/document.py).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json

from insightql.compiler.plaintext.results import (ResultTable, Rounded, Suppressed, parse_suppressed_by,
                                                  suppressed_by)

READ_BACK = "suppressed (reason in the notes)"  # a suppressed cell read from CSV or Parquet: rules, no text


def _layout(table: ResultTable) -> tuple[list[int], list[str]]:
    measures = table.measures()
    header = []
    for i, c in enumerate(table.columns):
        header += [c, f"{c}_suppressed"] if i in measures else [c]
    header += ["suppressed_by"] if measures else []
    if len(set(header)) != len(header):
        raise ValueError(f"the result's columns {table.columns} clash with its suppression columns "
                         "(a column named like <measure>_suppressed or suppressed_by): rename it with AS")
    return measures, header


def write_csv(table: ResultTable) -> str:
    _layout(table)
    return table.to_csv()


def _typed(text: str, col: dict | None):
    """A CSV field as the value the table holds, by the schema's type."""
    kind = (col or {}).get("type", {}).get("kind")
    if text == "":
        return None
    if kind == "bool" or (kind is None and text in ("true", "false")):
        return text == "true"
    if kind in ("category", "date", "key", "text"):
        return text
    if kind == "int":
        return int(text)
    try:
        value = int(text) if kind is None and text.lstrip("-").isdigit() else float(text)
    except ValueError:
        return text
    if col and col.get("digits"):
        return Rounded(value, col["digits"])
    return value


def _split(names: list[str]) -> tuple[list[str], set[str]]:
    """(the query's columns, the measures with a flag column) of a CSV or Parquet header."""
    flagged = {n[:-11] for n in names if n.endswith("_suppressed") and n[:-11] in names}
    return [n for n in names if n != "suppressed_by" and not (n.endswith("_suppressed") and n[:-11] in flagged)], flagged


def _rows(records, columns: list[str], flagged: set[str], value) -> list[list]:
    """Table rows from records {header field: value}: a flagged value is Suppressed with the scope
    and rules that suppressed_by names; `value(column, raw)` types the others."""
    rows = []
    for rec in records:
        why = parse_suppressed_by(rec.get("suppressed_by") or "")
        row = []
        for c in columns:
            if c in flagged and rec[f"{c}_suppressed"] in (True, "true"):
                scope, rules = why.get("cell") or why.get(c) or ("value", ())
                row.append(Suppressed(READ_BACK, scope, rules))
            else:
                row.append(value(c, rec[c]))
        rows.append(row)
    return rows


def read_csv(text: str, schema: list[dict] | None = None) -> ResultTable:
    """A CSV result back as a table. `schema` (from the JSON or Parquet of the same result) types
    the values; without it numbers are read as int or float and everything else as text."""
    lines = list(csv.reader(io.StringIO(text)))
    columns, flagged = _split(lines[0])
    by_name = {s["name"]: s for s in schema or []}
    records = (dict(zip(lines[0], line)) for line in lines[1:])
    rows = _rows(records, columns, flagged, lambda c, raw: _typed(raw, by_name.get(c)))
    return ResultTable(columns, rows, [], list(schema or []))


# -- Parquet ------------------------------------------------------------------------------------
def _arrow_type(pa, col: dict, values: list):
    """The column's Arrow type by the plan's type; a table built without a plan: by its values."""
    kind = col.get("type", {}).get("kind")
    if kind is None:
        present = [v for v in values if v is not None]
        kind = ("bool" if present and all(isinstance(v, bool) for v in present) else
                "int" if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present) else
                "decimal" if present and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                             for v in present) else "text")
    return {"int": pa.int64(), "decimal": pa.float64(), "bool": pa.bool_(), "date": pa.date32()}.get(kind, pa.string())


def parquet_bytes(table: ResultTable, doc_meta: dict) -> bytes:
    """The result as one Parquet file (pyarrow). `doc_meta`: the result document without rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    measures, _ = _layout(table)
    schema = table.schema or [{"name": c, "kind": "value" if i in measures else "key", "type": {}}
                              for i, c in enumerate(table.columns)]
    arrays, fields = [], []
    for i, (c, col) in enumerate(zip(table.columns, schema)):
        values = [None if isinstance(r[i], Suppressed) else r[i] for r in table.rows]
        atype = _arrow_type(pa, col, values)
        if atype == pa.date32():
            values = [dt.date.fromisoformat(v) if isinstance(v, str) else v for v in values]
        elif atype == pa.string():
            values = [None if v is None else str(v) for v in values]
        elif atype == pa.float64():
            values = [None if v is None else float(v) for v in values]
        fmeta = {"insightql.kind": col.get("kind", "key"), "insightql.type": json.dumps(col.get("type", {}))}
        if col.get("digits"):
            fmeta["insightql.digits"] = str(col["digits"])
        fields.append(pa.field(c, atype, nullable=True, metadata=fmeta))
        arrays.append(pa.array(values, type=atype))
        if i in measures:
            fields.append(pa.field(f"{c}_suppressed", pa.bool_(), nullable=False))
            arrays.append(pa.array([isinstance(r[i], Suppressed) for r in table.rows], type=pa.bool_()))
    if measures:
        fields.append(pa.field("suppressed_by", pa.string(), nullable=True))
        arrays.append(pa.array([suppressed_by(table.columns, r) or None for r in table.rows], type=pa.string()))
    meta = doc_meta.get("meta", {})
    kv = {"insightql.format": doc_meta.get("format", ""),
          "insightql.plan_hash": meta.get("plan_hash", ""),
          "insightql.receivers": json.dumps(meta.get("receivers", [])),
          "insightql.rules": json.dumps([r["id"] for r in meta.get("rules", [])]),
          "insightql.document": json.dumps(doc_meta, ensure_ascii=False)}
    out = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=kv))
    buf = pa.BufferOutputStream()
    pq.write_table(out, buf)
    return buf.getvalue().to_pybytes()


def read_parquet(data: bytes) -> tuple[ResultTable, dict]:
    """(the table, the result document without rows) of a Parquet result."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(pa.BufferReader(data))
    doc = json.loads((t.schema.metadata or {}).get(b"insightql.document", b"{}"))
    schema = doc.get("schema") or []
    digits = {s["name"]: s["digits"] for s in schema if s.get("digits")}
    columns, flagged = _split(t.column_names)

    def value(c, v):
        if isinstance(v, dt.date):
            return v.isoformat()
        return Rounded(v, digits[c]) if c in digits and isinstance(v, float) else v
    rows = _rows(t.to_pylist(), columns, flagged, value)
    return ResultTable(columns, rows, list(doc.get("notes", [])), list(schema)), doc
