"""What can be wrong with a data file before any value is looked at, said as IQ501 data issues.

A party's file may be missing, a directory, unreadable, empty, not UTF-8 (Latin-1, UTF-16,
binary), contain NUL bytes, be one line of many megabytes, have a field longer than FIELD_LIMIT,
or a header that lacks the catalog's columns or lists one twice. Each is reported here with file,
row (the line, the header being row 0) and column where they apply, the byte offset for bad bytes,
and the reason, before any value is judged or shared; no Python exception other than DataError
leaves the loader (tests/test_bad_input.py fuzzes it).
"""
from __future__ import annotations

import codecs
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_REPORTED = 25
FIELD_LIMIT = 131072  # bytes (csv.field_size_limit()'s default): no declared column has a longer value
SHOWN = 60  # characters of a bad value quoted in a message


@dataclass
class DataIssue:
    file: str
    row: int | None  # 1-based data row (the header is row 0); None for file-level problems
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file + (f": row {self.row}" if self.row is not None else "")
        where += f", column {self.column}" if self.column else ""
        return f"{where}: {self.reason}"


class DataError(Exception):
    """Bad data: raised before any share is sent, listing every problem found."""

    def __init__(self, issues: list[DataIssue]):
        self.issues = issues
        more = "" if len(issues) < MAX_REPORTED else f"\n(stopped after {MAX_REPORTED} problems)"
        super().__init__("IQ501 invalid data, nothing was shared:\n" + "\n".join(f"  {i}" for i in issues) + more)


def file_error(path, reason: str) -> DataError:
    return DataError([DataIssue(str(path), None, None, reason)])


def show(value: str) -> str:
    """A value as quoted in a message: control characters escaped, long values cut."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value[:SHOWN + 1])
    return text if len(value) <= SHOWN else f"{text[:SHOWN]}... ({len(value):,} characters)"


def check_path(path: Path) -> None:
    """Raise DataError unless `path` is a regular file (it may still be unreadable: see open_file)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise file_error(path, "file not found") from None
    except OSError as e:
        raise file_error(path, f"cannot be read ({e.strerror or e})") from None
    if stat.S_ISDIR(mode):
        raise file_error(path, "is a directory, not a data file")
    if not stat.S_ISREG(mode):
        raise file_error(path, "is not a regular file (a device, pipe or socket?)")


def open_file(path: Path):
    """The file opened for reading in binary, or DataError (missing, a directory, unreadable)."""
    check_path(path)
    try:
        return open(path, "rb")
    except OSError as e:
        raise file_error(path, f"cannot be read ({e.strerror or e})") from None


BOMS = [(codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")]
DELIMITERS = np.zeros(256, dtype=bool)
DELIMITERS[[10, 13, 44]] = True  # \n \r ,


def check_start(data: bytes, path: Path) -> None:
    """DataError for a file that is empty or starts with another encoding's byte-order mark."""
    if not data:
        raise file_error(path, "the file is empty (0 bytes; it needs a header line with the dataset's columns)")
    for bom, name in BOMS:
        if data.startswith(bom):
            raise file_error(path, f"the file is {name} (it starts with a {name} byte-order mark); "
                                   f"save it as UTF-8")


class ByteScan:
    """What no CSV file in UTF-8 contains, found chunk by chunk (each chunk ends at a line break, the
    first holds the header line): NUL bytes, invalid UTF-8, a field of more than FIELD_LIMIT bytes.
    Each issue names the row (line), the column where it can tell, and the byte offset in the file;
    the result is the same as over the whole file at once (the first NUL, the first invalid byte,
    the first of the longest fields)."""

    def __init__(self, path: Path, head: bytes):
        self.path, self.file = path, str(path)
        self.head = head[:4096]
        self.header = _first_line(head).split(",")
        self.nul: DataIssue | None = None
        self.bad_utf8: tuple[int, int, int, str | None] | None = None  # byte, offset, row, column
        self.long: DataIssue | None = None
        self.longest = FIELD_LIMIT

    def feed(self, chunk: bytes, offset: int, row: int) -> None:
        """Check `chunk`, which starts at byte `offset` of the file, on line `row`."""
        nul = chunk.find(b"\0") if self.nul is None else -1
        if nul >= 0:
            head = np.frombuffer(self.head, dtype=np.uint8)
            zeros = np.flatnonzero(head == 0)
            if zeros.size >= head.size // 4 and (np.all(zeros % 2 == 1) or np.all(zeros % 2 == 0)):
                raise file_error(self.path, "the file looks like UTF-16 without a byte-order mark (every other "
                                            "byte is NUL); save it as UTF-8")
            self.nul = self._issue(chunk, nul, offset, row, f"NUL byte (0x00) at byte offset {offset + nul}: a CSV "
                                   f"text file has none (a binary file, or saved in another format?)")
        if self.bad_utf8 is None and not chunk.isascii():
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError as e:
                self.bad_utf8 = (chunk[e.start], offset + e.start, *self._where(chunk, e.start, row))

    def feed_fields(self, chunk: bytes, offset: int, row: int) -> None:
        """Look for the longest field of `chunk` (a scan of every byte: run when a reader has seen a
        long field, or could not split the chunk)."""
        long = _longest_field(chunk)
        if long is not None and long[1] > self.longest:
            k, self.longest = long
            self.long = self._issue(chunk, k, offset, row, f"a field of {self.longest:,} bytes (from byte offset "
                                    f"{offset + k}) is longer than the limit of {FIELD_LIMIT:,} bytes; no declared "
                                    f"column has such values (a missing line break?)")

    def found(self) -> bool:
        return bool(self.nul or self.bad_utf8 or self.long)

    def raise_found(self) -> None:
        """DataError for the bytes found (first), else for the longest field."""
        issues = [self.nul] if self.nul else []
        if self.bad_utf8:
            bad, offset, row, column = self.bad_utf8
            hint = " (saved as Latin-1 or Windows-1252?)" if bad >= 0x80 and not issues else ""
            issues.append(self._issue_at(row, column, f"byte 0x{bad:02X} at byte offset {offset} is not UTF-8{hint}; "
                                                      f"save the file as UTF-8"))
        if issues:
            raise DataError(sorted(issues, key=lambda i: -1 if i.row is None else i.row)[:MAX_REPORTED])
        if self.long:
            raise DataError([self.long])

    def _issue(self, chunk: bytes, k: int, offset: int, row: int, reason: str) -> DataIssue:
        return self._issue_at(*self._where(chunk, k, row), reason)

    def _issue_at(self, row: int, column: str | None, reason: str) -> DataIssue:
        if row == 0:
            return DataIssue(self.file, None, None, "header line: " + reason)
        return DataIssue(self.file, row, column, reason)

    def _where(self, chunk: bytes, k: int, row: int) -> tuple[int, str | None]:
        """The line of byte `k` of a chunk that starts on line `row`, and the header's name of the
        field it is in (when no quote precedes it on its line)."""
        row += chunk.count(b"\n", 0, k) + chunk.count(b"\r", 0, k) - chunk.count(b"\r\n", 0, k)
        before = chunk[max(chunk.rfind(b"\n", 0, k), chunk.rfind(b"\r", 0, k)) + 1:k]
        column = None
        if b'"' not in before:
            j = before.count(b",")
            column = self.header[j].strip() if j < len(self.header) else None
        return row, column or None


def line_count(chunk: bytes) -> int:
    """Line breaks in `chunk` (\n, \r\n, a lone \r)."""
    if b"\r" not in chunk:
        return chunk.count(b"\n")
    return chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")


def _longest_field(data: bytes) -> tuple[int, int] | None:
    """(offset, length) of the longest run of bytes without a comma or line break, if it is longer
    than FIELD_LIMIT (such a run lies inside one field, whatever the quotes)."""
    if len(data) <= FIELD_LIMIT:
        return None
    arr = np.frombuffer(data, dtype=np.uint8)
    bounds = np.concatenate(([-1], np.flatnonzero(DELIMITERS[arr]), [arr.size]))
    gaps = np.diff(bounds) - 1
    k = int(np.argmax(gaps))
    return (int(bounds[k]) + 1, int(gaps[k])) if gaps[k] > FIELD_LIMIT else None


def _first_line(data: bytes) -> str:
    end = min((k for k in (data.find(b"\n"), data.find(b"\r")) if k >= 0), default=len(data))
    return data[:min(end, 1 << 16)].decode("utf-8", "replace").lstrip("\ufeff")


def check_header(header: list[str], path: Path, name: str, ds) -> list[DataIssue]:
    """Every declared column present, none twice; DataError at once when none is there at all
    (not a header line: the rows' field counts would say nothing)."""
    file = str(path)
    missing = [c for c in ds.columns if c not in header]
    if missing and len(missing) == len(ds.columns) and len(ds.columns) > 1:
        sep = next((f" (separated by {w}? the separator must be a comma)" for s, w in ((";", "semicolons"),
                    ("\t", "tabs"), ("|", "bars")) if len(header) == 1 and s in header[0]), "")
        if not any(header):
            raise file_error(path, f"the first line is empty; it must name the columns of dataset {name}")
        raise file_error(path, f"the header line ('{show(','.join(header))}') has none of the columns of dataset "
                               f"{name}{sep}; the first line must name the columns")
    issues = [DataIssue(file, None, col, f"missing column (dataset {name} declares it)") for col in missing]
    for col in ds.columns:
        where = [j + 1 for j, h in enumerate(header) if h == col]
        if len(where) > 1:
            issues.append(DataIssue(file, None, col, f"the header names this column {len(where)} times "
                                                     f"(fields {', '.join(map(str, where))})"))
    return issues
