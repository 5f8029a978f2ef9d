"""Readers: a data source -> its header and its rows in blocks of Arrow columns (`Stream`).

The file's extension picks the reader: `.parquet` (pyarrow, in record batches), `.xlsx` (openpyxl,
one sheet, one block), anything else CSV (pyarrow's reader, a block of about BLOCK bytes at a time,
each block's bytes checked by checks.ByteScan first), so that a party never holds a large file
whole: validate.py judges each block and keeps only what the plan and the messages need. A reader
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from insightql.runtime.data.checks import (FIELD_LIMIT, MAX_REPORTED, ByteScan, DataError, DataIssue, check_start,
                                           file_error, line_count, open_file)

PARQUET = (".parquet", ".pq")
XLSX = (".xlsx",)
LINE_BREAK = re.compile(rb"\r\n|\r|\n")
BLOCK = 1 << 24  # bytes of a CSV file read, checked and parsed at a time
PARQUET_ROWS = 1 << 18  # rows of a Parquet file read at a time


@dataclass
class Source:
    """A file as read: header names (stripped) and one column per header field, all `rows` long."""
    path: Path | str  # what the issues name: the file, or a database table or query (runtime/data/postgres.py)
    header: list[str]
    columns: list[pa.Array | pa.ChunkedArray]
    rows: int
    issues: list[DataIssue] = field(default_factory=list)  # rows the reader could not split


@dataclass
class Block:
    """Rows [start, start + rows) of a source, one Arrow column per header field."""
    start: int
    columns: list[pa.Array | pa.ChunkedArray]
    rows: int


@dataclass
class Stream:
    """A source read block by block, so that a large file is never whole in memory. `blocks` yields
    the rows in order; as it goes, `issues` gains the rows the reader could not split (in row order,
    at most MAX_REPORTED) and `rows` counts the rows read. What stops the reader (bad bytes, a field
    too long, a file the library cannot parse) is a DataError that `blocks` raises at its end, after
    every byte was checked: the same issue, whatever block it is in."""
    path: Path | str
    header: list[str]
    blocks: Iterator[Block]
    issues: list[DataIssue] = field(default_factory=list)
    rows: int = 0

    @staticmethod
    def whole(src: Source) -> "Stream":
        """A source read at once, as one block."""
        stream = Stream(src.path, src.header, iter(()), src.issues[:MAX_REPORTED], src.rows)
        stream.blocks = iter([Block(0, src.columns, src.rows)])
        return stream

    def read(self) -> Source:
        """Every block, as one Source (for `iq catalog infer`)."""
        blocks = list(self.blocks)
        columns = []
        for j in range(len(self.header)):
            parts = [b.columns[j] for b in blocks]
            chunks = [c for p in parts for c in (p.chunks if isinstance(p, pa.ChunkedArray) else [p])]
            columns.append(pa.chunked_array(chunks, parts[0].type if parts else pa.string()))
        return Source(self.path, self.header, columns, self.rows, self.issues)


def read_source(path: Path) -> Source:
    return open_source(path).read()


def open_source(path: Path) -> Stream:
    suffix = path.suffix.lower()
    if suffix in PARQUET:
        return read_parquet(path)
    if suffix in XLSX:
        return Stream.whole(read_xlsx(path))
    if suffix == ".xls":
        raise file_error(path, "an Excel 97-2003 .xls workbook is not read; save it as .xlsx or CSV")
    return read_csv(path)


# ------------------------------------------------------------------------------------------ CSV
def read_csv(path: Path) -> Stream:
    """The header now; the rows block by block, each block a whole number of lines of about BLOCK
    bytes, its bytes checked (checks.ByteScan) and parsed by pyarrow (in a thread, while the block
    before is validated)."""
    fh = open_file(path)
    try:
        buf, eof = _read(fh, path, 4), False  # (at least a byte-order mark)
        check_start(buf, path)  # empty, another encoding's byte-order mark
        start = len(codecs.BOM_UTF8) if buf.startswith(codecs.BOM_UTF8) else 0
        while True:  # the header line, whole (and the byte after it: \r\n is one line break)
            brk = LINE_BREAK.search(buf, start)
            if eof or (brk and brk.end() < len(buf)):
                break
            more = _read(fh, path, len(buf))
            buf, eof = buf + more, not more
        if start == len(buf):
            raise file_error(path, "the file is empty (no header line)")
    except BaseException:
        fh.close()
        raise
    head_end, body_start = (brk.start(), brk.end()) if brk else (len(buf), len(buf))
    try:  # (a header that is not UTF-8 is reported by the ByteScan, at the end of the blocks)
        header = [h.strip() for h in next(csv.reader([buf[start:head_end].decode("utf-8", "replace")]), [])]
    except csv.Error:
        header = []
    stream = Stream(path, header, iter(()))
    stream.blocks = _csv_blocks(stream, fh, buf, eof, body_start, long_header=head_end - start > FIELD_LIMIT)
    return stream


def _csv_blocks(stream: Stream, fh, buf: bytes, eof: bool, body_start: int, long_header: bool) -> Iterator[Block]:
    """The blocks of a CSV file; pyarrow parses each block in a thread while the one before is
    validated (one thread each: the two cores do both, at half the CPU of pyarrow's own threads)."""
    path, m = stream.path, len(stream.header)
    names = [f"f{j}" for j in range(m)]
    scan = ByteScan(path, buf)
    offset = line = 0  # where buf starts in the file: byte, line (the header is line 0)
    state = _State(long_header)
    pending = None  # the block being parsed
    try:
        with ThreadPoolExecutor(1) as pool:
            while True:
                cut = None if eof else _cut(buf, body_start, 0)
                while cut is None and not eof:
                    more = _read(fh, path, len(buf))  # (a long line: read as much again)
                    eof = not more
                    if more:
                        seen, buf = len(buf), buf + more
                        cut = _cut(buf, body_start, seen - 2)
                chunk = buf if cut is None else buf[:cut]
                scan.feed(chunk, offset, line)
                end = len(chunk)
                while cut is None and end > body_start and chunk[end - 1] in b"\r\n" and (m > 1 or end == len(chunk)):
                    end -= 2 if chunk[end - 2:end] == b"\r\n" else 1  # blank lines at the end are no rows (one
                job = None  # column: an empty line is a null value, only the last line break goes)
                if m and not state.broken(scan) and end > body_start:  # (once broken, only the bytes are read on)
                    first_row = line + (1 if body_start else 0)  # the body's first line, as a data row
                    job = (pool.submit(_parse_chunk, chunk, body_start, end, names), chunk, body_start, end,
                           first_row, offset, line)
                elif state.long_header or state.broken(scan):
                    scan.feed_fields(chunk, offset, line)
                if pending is not None and (block := _csv_block(stream, scan, state, *pending)) is not None:
                    yield block
                pending = job
                if cut is None:
                    break
                offset, line = offset + cut, line + line_count(chunk)
                more = _read(fh, path)
                buf, body_start, eof = buf[cut:] + more, 0, not more
            if pending is not None and (block := _csv_block(stream, scan, state, *pending)) is not None:
                yield block
    finally:
        fh.close()
    scan.raise_found()
    if state.problem:
        raise file_error(path, state.problem)


@dataclass
class _State:
    long_header: bool
    problem: str | None = None  # why pyarrow could not parse the first block it could not parse

    def broken(self, scan: ByteScan) -> bool:
        """Whether the file is already known to be refused (the blocks after are only scanned)."""
        return self.problem is not None or scan.found()


def _parse_chunk(chunk: bytes, lo: int, hi: int, names: list[str]) -> tuple[pa.Table, list] | str:
    body = pa.py_buffer(chunk).slice(lo, hi - lo)  # no copy
    bad: list = []
    try:
        return _parse(body, names, bad), bad
    except (pa.ArrowException, ValueError) as e:
        return f"cannot be read as CSV ({e})"


def _csv_block(stream: Stream, scan: ByteScan, state: _State, parsing, chunk: bytes, lo: int, hi: int,
               first_row: int, offset: int, line: int) -> Block | None:
    """The block of chunk[lo:hi] as parsed, unless the file is refused; the rows pyarrow cannot
    split join stream.issues; a chunk that may hold a field longer than FIELD_LIMIT is scanned."""
    parsed = parsing.result()
    if isinstance(parsed, str):
        state.problem = state.problem or parsed
        scan.feed_fields(chunk, offset, line)
        return None
    table, bad = parsed
    columns, m = table.columns, len(stream.header)
    long = bool(bad) or any((pc.max(pc.binary_length(c)).as_py() or 0) > FIELD_LIMIT for c in columns)
    if long or state.long_header or state.broken(scan):
        scan.feed_fields(chunk, offset, line)
    if state.broken(scan):
        return None
    issues = [_row_issue(row, m, stream.path, first_row - 1) for row in bad[:MAX_REPORTED]]
    if m > 1 and table.num_rows and _all_empty(columns).any():
        issues += _blank_lines(chunk[lo:hi], m, stream.path, first_row - 1)
    if issues:
        stream.issues = sorted(stream.issues + issues, key=lambda i: i.row)[:MAX_REPORTED]
    block = Block(stream.rows, columns, table.num_rows)
    stream.rows += table.num_rows
    return block


def _read(fh, path: Path, at_least: int = 0) -> bytes:
    try:
        return fh.read(max(BLOCK, at_least))
    except OSError as e:
        raise file_error(path, f"cannot be read ({e.strerror or e})") from None


def _cut(buf: bytes, lo: int, since: int) -> int | None:
    """The end of a block in buf[lo:]: just after the line break that ends the last line with a
    byte in it (blank lines are held back: at the end of the file they are no rows). None: no such
    line break yet (looked for from `since` on; never the last byte, which may be a \r of \r\n)."""
    n = len(buf)
    k = max(buf.rfind(b"\n", max(lo, since), n - 1), buf.rfind(b"\r", max(lo, since), n - 1))
    if k < lo:
        return None
    if k > lo and buf[k - 1] not in b"\r\n":
        last = k - 1
    else:
        last = lo + len(buf[lo:k].rstrip(b"\r\n")) - 1
        if last < lo:
            return None
    return last + (3 if buf[last + 1:last + 3] == b"\r\n" else 2)


def _parse(body: pa.Buffer, names: list[str], bad: list) -> pa.Table:
    """Every field as text; the rows with the wrong number of fields to `bad` (in one thread, so
    that pyarrow numbers them)."""
    def skip(row):
        bad.append(row)
        return "skip"
    return pcsv.read_csv(
        body, read_options=pcsv.ReadOptions(column_names=names, use_threads=False, block_size=1 << 22),
        parse_options=pcsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=skip),
        convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), check_utf8=False,
                                            strings_can_be_null=False, quoted_strings_can_be_null=False))


def _all_empty(columns) -> np.ndarray:
    return np.logical_and.reduce([np.asarray(pc.equal(pc.binary_length(c), 0)) for c in columns])


def _row_issue(row, m: int, path: Path, before: int) -> DataIssue:
    if (row.text or "").count('"') % 2:
        return DataIssue(str(path), before + row.number, None, 'cannot be read as CSV (a quote " that is not closed?)')
    return DataIssue(str(path), before + row.number, None, f"has {row.actual_columns} fields, the header has {m}")


def _blank_lines(body: bytes, m: int, path: Path, before: int) -> list[DataIssue]:
    """A blank line between rows: pyarrow reads it as a row of empty values; it is a row of 0 fields
    (read only when a row is all empty: `,,,` is a row of empty values)."""
    lines = LINE_BREAK.split(body)
    if body[-1:] in (b"\n", b"\r"):
        lines.pop()  # (the line break that ends a block)
    return [DataIssue(str(path), before + k, None, f"has 0 fields, the header has {m}")
            for k, line in enumerate(lines, start=1) if not line][:MAX_REPORTED]


# -------------------------------------------------------------------------------------- Parquet
def read_parquet(path: Path) -> Stream:
    """Record batches of about PARQUET_ROWS rows, every column as it is stored."""
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)  # (pq.read_table refuses a column named twice)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as e:
        raise file_error(path, f"cannot be read as Parquet ({e})") from None
    stream = Stream(path, [n.strip() for n in schema.names], iter(()))

    def blocks() -> Iterator[Block]:
        try:
            batches = pf.iter_batches(batch_size=PARQUET_ROWS, use_threads=True)
            empty = True
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                empty = False
                stream.rows += batch.num_rows
                yield Block(stream.rows - batch.num_rows, batch.columns, batch.num_rows)
            if empty:  # (the columns' types, for a file without rows)
                yield Block(0, [pa.array([], f.type) for f in schema], 0)
        except (pa.ArrowException, OSError, ValueError) as e:
            raise file_error(path, f"cannot be read as Parquet ({e})") from None
        finally:
            pf.close()
    stream.blocks = blocks()
    return stream


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
