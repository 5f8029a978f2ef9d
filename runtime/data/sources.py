"""Readers: a data file -> its header and one Arrow column per header field (`Source`).

The file's extension picks the reader: `.parquet` (pyarrow), `.xlsx` (openpyxl, one sheet), anything
else CSV (pyarrow's reader; the file's bytes are checked first by checks.check_bytes). A reader
only reads: every value, whatever the source, is judged by runtime/data/validate.py. What stops a
reader (a row with the wrong number of fields, a file the library cannot parse) is a DataIssue.

CSV dialect: UTF-8 with an optional byte-order mark, comma separated, fields optionally quoted, line
endings \\n, \\r\\n or \\r; blank lines at the end are no rows (but with one column, where an empty
line is a null value); a blank line between rows is a row of 0 fields.
"""
from __future__ import annotations

import codecs
import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from insightql.runtime.data.checks import (FIELD_LIMIT, MAX_REPORTED, DataError, DataIssue, check_bytes, file_error,
                                           long_field_issue, read_bytes)

PARQUET = (".parquet", ".pq")
XLSX = (".xlsx",)
LINE_BREAK = re.compile(rb"\r\n|\r|\n")


@dataclass
class Source:
    """A file as read: header names (stripped) and one column per header field, all `rows` long."""
    path: Path | str  # what the issues name: the file, or a database table or query (runtime/data/postgres.py)
    header: list[str]
    columns: list[pa.Array | pa.ChunkedArray]
    rows: int
    issues: list[DataIssue] = field(default_factory=list)  # rows the reader could not split


def read_source(path: Path) -> Source:
    suffix = path.suffix.lower()
    if suffix in PARQUET:
        return read_parquet(path)
    if suffix in XLSX:
        return read_xlsx(path)
    if suffix == ".xls":
        raise file_error(path, "an Excel 97-2003 .xls workbook is not read; save it as .xlsx or CSV")
    return read_csv(path)


# ------------------------------------------------------------------------------------------ CSV
def read_csv(path: Path) -> Source:
    data = read_bytes(path)
    check_bytes(data, path)  # empty, another encoding, NUL bytes, not UTF-8
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    if start == len(data):
        raise file_error(path, "the file is empty (no header line)")
    brk = LINE_BREAK.search(data, start)
    if (brk.start() if brk else len(data)) - start > FIELD_LIMIT:
        _long_fields(data, path)
    head_end, body_start = (brk.start(), brk.end()) if brk else (len(data), len(data))
    header = [h.strip() for h in next(csv.reader([data[start:head_end].decode("utf-8")]), [])]
    m = len(header)
    end = len(data)
    while end > body_start and data[end - 1] in b"\r\n" and (m > 1 or end == len(data)):
        end -= 2 if data[end - 2:end] == b"\r\n" else 1  # blank lines at the end are no rows (one
    if m == 0 or end == body_start:  # column: an empty line is a null value, only the last line break goes)
        return Source(path, header, [pa.array([], pa.string())] * m, 0)
    body = pa.py_buffer(data).slice(body_start, end - body_start)  # no copy
    names = [f"f{j}" for j in range(m)]
    bad: list = []
    try:
        table = _parse(body, names, bad, threads=True)
    except (pa.ArrowException, ValueError) as e:
        _long_fields(data, path)
        raise file_error(path, f"cannot be read as CSV ({e})") from None
    columns = table.columns
    if bad or any((pc.max(pc.binary_length(c)).as_py() or 0) > FIELD_LIMIT for c in columns):
        _long_fields(data, path)
    if bad and any(row.number is None for row in bad):
        bad = []  # parallel parsing does not number the rows it skips: read again to tell the owner which
        _parse(body, names, bad, threads=False)
    issues = [_row_issue(row, m, path) for row in bad[:MAX_REPORTED]]
    if m > 1 and table.num_rows and _all_empty(columns).any():
        issues += _blank_lines(body.to_pybytes(), m, path)
    issues.sort(key=lambda i: i.row)
    return Source(path, header, columns, table.num_rows, issues[:MAX_REPORTED])


def _parse(body: pa.Buffer, names: list[str], bad: list, threads: bool) -> pa.Table:
    def skip(row):
        bad.append(row)
        return "skip"
    return pcsv.read_csv(
        body, read_options=pcsv.ReadOptions(column_names=names, use_threads=threads, block_size=1 << 22),
        parse_options=pcsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=skip),
        convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), check_utf8=False,
                                            strings_can_be_null=False, quoted_strings_can_be_null=False))


def _long_fields(data: bytes, path: Path) -> None:
    """Raise DataError for a field longer than FIELD_LIMIT (with its row, column and byte offset)."""
    issue = long_field_issue(data, path)
    if issue is not None:
        raise DataError([issue])


def _all_empty(columns) -> np.ndarray:
    return np.logical_and.reduce([np.asarray(pc.equal(pc.binary_length(c), 0)) for c in columns])


def _row_issue(row, m: int, path: Path) -> DataIssue:
    if (row.text or "").count('"') % 2:
        return DataIssue(str(path), row.number, None, 'cannot be read as CSV (a quote " that is not closed?)')
    return DataIssue(str(path), row.number, None, f"has {row.actual_columns} fields, the header has {m}")


def _blank_lines(body: bytes, m: int, path: Path) -> list[DataIssue]:
    """A blank line between rows: pyarrow reads it as a row of empty values; it is a row of 0 fields
    (read only when a row is all empty: `,,,` is a row of empty values)."""
    lines = LINE_BREAK.split(body)
    return [DataIssue(str(path), k, None, f"has 0 fields, the header has {m}")
            for k, line in enumerate(lines, start=1) if not line][:MAX_REPORTED]


# -------------------------------------------------------------------------------------- Parquet
def read_parquet(path: Path) -> Source:
    import pyarrow.parquet as pq
    try:
        table = pq.ParquetFile(path).read()  # (pq.read_table refuses a column named twice)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise file_error(path, f"cannot be read as Parquet ({e})") from None
    return Source(path, [n.strip() for n in table.schema.names], table.columns, table.num_rows)


# ----------------------------------------------------------------------------------------- xlsx
def read_xlsx(path: Path) -> Source:
    """The workbook's only sheet (or the one named like the file's stem); every cell as text."""
    import openpyxl
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # a damaged or foreign file: zipfile, XML and openpyxl errors alike
        raise file_error(path, f"cannot be read as an Excel .xlsx workbook ({type(e).__name__}: {e})") from None
    try:
        sheet = _sheet(book, path)
        rows = [tuple(_cell_text(v) for v in r) for r in sheet.iter_rows(values_only=True)]
    except DataError:
        raise
    except Exception as e:
        raise file_error(path, f"cannot be read as an Excel .xlsx workbook ({type(e).__name__}: {e})") from None
    finally:
        book.close()
    while rows and not any(rows[-1]):
        rows.pop()  # empty rows at the end are no rows
    if not rows:
        raise file_error(path, "the sheet is empty (no header row)")
    header = [h.strip() for h in rows[0]]
    while header and not header[-1]:
        header.pop()
    m = len(header)
    issues = [DataIssue(str(path), k, None, f"has {max(j for j, v in enumerate(r) if v) + 1} fields, the header "
                                            f"has {m}") for k, r in enumerate(rows[1:], start=1) if any(r[m:])]
    body = [r[:m] + ("",) * (m - len(r)) for r in rows[1:]]
    columns = [pa.array([r[j] for r in body], pa.string()) for j in range(m)]
    return Source(path, header, columns, len(body), issues[:MAX_REPORTED])


def _sheet(book, path: Path):
    names = book.sheetnames
    if len(names) == 1:
        return book[names[0]]
    if path.stem in names:
        return book[path.stem]
    raise file_error(path, f"the workbook has {len(names)} sheets ({', '.join(names[:8])}); keep one sheet, or "
                           f"name the dataset's sheet like the file ({path.stem})")


def _cell_text(v) -> str:
    """A cell as the text a CSV file would hold: dates as YYYY-MM-DD, booleans true/false."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time() else v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53:
        return str(int(v))
    return str(v)
