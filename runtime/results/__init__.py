"""Result files: CSV, JSON, Parquet and HTML, all written from one result document
(document.py: the released table plus what the plan says about it). spec/results.md.

`write_result(table, plan, out, fmt)` is what `iq run --out` and `iq party --out` call, so every
receiver of a run writes the same content; `read_result(path)` reads any of the data formats back.
"""
from __future__ import annotations

from pathlib import Path

from insightql.compiler.plaintext.results import ResultTable

FORMATS = ("csv", "json", "parquet", "html")
EXTENSIONS = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet", ".html": "html",
              ".htm": "html"}


def format_of(out: str | None, fmt: str | None) -> str:
    """The format asked for: --format, else the extension of --out (CSV when it has none we know)."""
    if fmt:
        if fmt not in FORMATS:
            raise ValueError(f"unknown result format {fmt!r}: one of {', '.join(FORMATS)}")
        return fmt
    return EXTENSIONS.get(Path(out).suffix.lower(), "csv") if out else "csv"


def render_result(table: ResultTable, meta: dict | None, fmt: str) -> str | bytes:
    """The file's content: text for csv, json and html, bytes for parquet."""
    from insightql.runtime.results.document import document_json, to_document
    if fmt == "csv":
        from insightql.runtime.results.tabular import write_csv
        return write_csv(table)
    if fmt == "json":
        return document_json(table, meta)
    if fmt == "parquet":
        from insightql.runtime.results.tabular import parquet_bytes
        doc = to_document(table, meta)
        doc.pop("rows")
        return parquet_bytes(table, doc)
    if fmt == "html":
        from insightql.runtime.results.html import result_html
        return result_html(table, meta or {})
    raise ValueError(f"unknown result format {fmt!r}: one of {', '.join(FORMATS)}")


def write_result(table: ResultTable, plan: dict | None, out: str, fmt: str | None = None,
                 meta: dict | None = None) -> str:
    """Write the result to `out` in `fmt` (or by its extension); returns the format written."""
    from insightql.runtime.results.document import result_meta
    fmt = format_of(out, fmt)
    content = render_result(table, meta if meta is not None else result_meta(plan) if plan else {}, fmt)
    if isinstance(content, bytes):
        Path(out).write_bytes(content)
    else:
        with open(out, "w", encoding="utf-8", newline="") as fh:
            fh.write(content)
    return fmt


def read_result(path: str | Path, schema: list[dict] | None = None) -> tuple[ResultTable, dict]:
    """(table, meta) of a JSON, Parquet or CSV result (CSV has no meta: {}; `schema` types it)."""
    p = Path(path)
    fmt = EXTENSIONS.get(p.suffix.lower())
    if fmt == "json":
        from insightql.runtime.results.document import from_document
        return from_document(p.read_text(encoding="utf-8"))
    if fmt == "parquet":
        from insightql.runtime.results.tabular import read_parquet
        table, doc = read_parquet(p.read_bytes())
        return table, doc.get("meta", {})
    if fmt == "csv":
        from insightql.runtime.results.tabular import read_csv
        with open(p, encoding="utf-8", newline="") as fh:  # a quoted field may hold a carriage return
            return read_csv(fh.read(), schema), {}
    raise ValueError(f"{p}: a result is read from .json, .parquet or .csv")
