"""Load one party's own dataset and validate it against the catalog before anything is shared.

Fast path: a plain CSV file (no quotes, carriage returns or NUL bytes, every row complete) is
read into a zero-padded buffer, split with numpy on its raw bytes, and each column is converted
vectorised: categories by looking up a hash of each value among the domain's (checked exactly),
dates and unsigned integers from their digits, other numbers by numpy's parser after a
character check. A file that cannot be split so is read with
the csv module; a column that is not clean (a value outside its domain or range, padding, ...)
goes through the row-by-row path, which finds every bad value, so the owner gets file, row,
column and reason for each (up to a limit). Both paths give the same values for valid data.
"""
from __future__ import annotations

import codecs
import datetime as dt
import math
import re
from pathlib import Path

import numpy as np

from insightql.compiler.check.catalog import Dataset
from insightql.compiler.plaintext.local_eval import Table
from insightql.stdlib.functions import Vec
from insightql.stdlib.types import date_to_days

from insightql.runtime.data.checks import (FIELD_LIMIT, MAX_REPORTED, DataError, DataIssue, check_bytes, check_header, check_path,
                          file_error, parse_csv, read_bytes, show)

__all__ = ["DataError", "DataIssue", "MAX_REPORTED", "load_dataset", "read_csv"]

TRUE = {"true", "1", "yes", "t", "y"}
FALSE = {"false", "0", "no", "f", "n"}
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # Python 3.11 also parses 20240131, 2024-W05-3
INT_TEXT = re.compile(r"[+-]?[0-9]+")  # Python's int() also takes 1_000 and non-ASCII digits
NUM_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")  # and float() takes nan, inf


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows; DataError for a file that is not a readable UTF-8 CSV (runtime/data/checks.py)."""
    header, rows = parse_csv(check_bytes(read_bytes(path), path), path)
    if header is None:
        raise file_error(path, "the file is empty (no header line)")
    if len(header) > 1:  # blank lines at the end are no rows (with one column, one is a null value)
        while rows and not rows[-1]:
            rows.pop()
    return [h.strip() for h in header], rows


def load_dataset(path: str | Path, name: str, ds: Dataset, wanted: dict[str, dict] | None = None) -> tuple[Table, int]:
    """Read `path`, check every declared column, return the columns the plan reads.

    `wanted` maps column name -> the plan's view of its type (category codes are taken
    against that domain, which for a UNION ALL may list more values than this dataset's).
    """
    path = Path(path)
    check_path(path)
    try:
        return _load(path, name, ds, wanted)
    except MemoryError:
        raise file_error(path, "does not fit in memory: too large, or a field far too long") from None
    except OSError as e:
        raise file_error(path, f"cannot be read ({e.strerror or e})") from None


def _load(path: Path, name: str, ds: Dataset, wanted: dict[str, dict] | None) -> tuple[Table, int]:
    split = _split_plain(path)
    if split is not None:
        table = _load_split(split, path, name, ds, wanted)
        if table is not None:
            return table, split[2].shape[0]
    header, rows = read_csv(path)
    issues = check_header(header, path, name, ds)
    for k, r in enumerate(rows, start=1):
        if len(r) != len(header) and len(issues) < MAX_REPORTED:
            issues.append(DataIssue(str(path), k, None, f"has {len(r)} fields, the header has {len(header)}"))
    if issues:
        raise DataError(issues)
    n = len(rows)
    if n > ds.max_rows:
        raise DataError([DataIssue(str(path), None, None, f"{n} rows, more than the declared max_rows {ds.max_rows}")])
    raw_cols = list(zip(*rows)) if rows else [()] * len(header)
    table: Table = {}
    for col_name, col in ds.columns.items():
        raw = [s.strip() for s in raw_cols[header.index(col_name)]]
        vec = _convert(col, raw, (wanted or {}).get(col_name), str(path), col_name, issues)
        if wanted is None or col_name in wanted:
            table[col_name] = vec
        if len(issues) >= MAX_REPORTED:
            break
    if issues:
        raise DataError(issues[:MAX_REPORTED])
    return table, n


def _convert(col, raw: list[str], want: dict | None, file: str, name: str, issues: list[DataIssue]) -> Vec:
    null = np.array([s == "" for s in raw], dtype=bool)
    n = len(raw)

    def bad(k: int, reason: str):
        if len(issues) < MAX_REPORTED:
            issues.append(DataIssue(file, k + 1, name, reason))

    if not col.nullable:
        for k in np.flatnonzero(null)[:MAX_REPORTED]:
            bad(int(k), "empty value, but the column is not nullable")
    t = col.type
    if t == "category":
        domain = list(want["domain"]) if want else list(col.domain)
        index = {v: i for i, v in enumerate(domain)}
        own = set(col.domain)
        codes = np.zeros(n, dtype=np.int64)
        for k, s in enumerate(raw):
            if s == "":
                continue
            if s not in own:
                bad(k, f"'{show(s)}' is not in the category's domain ({', '.join(col.domain[:8])}"
                       f"{', ...' if len(col.domain) > 8 else ''})")
            else:
                codes[k] = index[s]
        return Vec(codes, null)
    if t == "boolean":
        vals = np.zeros(n, dtype=bool)
        for k, s in enumerate(raw):
            low = s.lower()
            if low in TRUE:
                vals[k] = True
            elif low not in FALSE and s != "":
                bad(k, f"'{show(s)}' is not a boolean (true/false)")
        return Vec(vals, null)
    if t == "date":
        vals = np.zeros(n, dtype=np.int64)
        lo, hi = date_to_days(col.min), date_to_days(col.max)
        for k, s in enumerate(raw):
            if s == "":
                continue
            try:
                if not ISO_DATE.fullmatch(s):
                    raise ValueError(s)
                d = date_to_days(dt.date.fromisoformat(s))
            except ValueError:
                bad(k, f"'{show(s)}' is not a date (YYYY-MM-DD)")
                continue
            if not lo <= d <= hi:
                bad(k, f"{s} is outside the declared range [{col.min}, {col.max}]")
            vals[k] = d
        return Vec(vals, null)
    # numbers and keys: vectorised fast path, row-by-row only to explain a failure
    filled = np.where(null, "0", np.array(raw, dtype=object)) if n else np.array([], dtype=object)
    is_int = t in ("integer", "key")
    syntax = INT_TEXT if is_int else NUM_TEXT
    try:
        if not set("".join(filled)) <= set("0123456789+-" if is_int else "0123456789+-.eE"):
            raise ValueError
        vals = np.array(filled, dtype=np.int64 if is_int else float) if n else np.zeros(0)
        if not is_int and not np.all(np.isfinite(vals)):
            raise ValueError
    except (ValueError, OverflowError):
        vals = np.zeros(n, dtype=np.int64 if is_int else float)
        for k, s in enumerate(filled):
            try:
                if not syntax.fullmatch(s):
                    raise ValueError(s)
                v = int(s) if is_int else float(s)
                if not math.isfinite(v):
                    raise ValueError(s)
                vals[k] = v
            except (ValueError, OverflowError):
                bad(k, f"'{show(s)}' is not {'an integer' if is_int else 'a number'}")
    if t == "key":
        lo, hi = 0, 2 ** col.bits - 1
    else:
        lo, hi = col.min, col.max
    out = np.flatnonzero(((vals < lo) | (vals > hi)) & ~null)
    for k in out[:MAX_REPORTED]:
        bad(int(k), f"{show(raw[k])} is outside the declared range [{lo}, {hi}]")
    if t == "decimal":
        scaled = vals * 10 ** col.scale
        off = np.flatnonzero((np.abs(scaled - np.rint(scaled)) > 1e-6) & ~null)
        for k in off[:MAX_REPORTED]:
            bad(int(k), f"{show(raw[k])} has more than {col.scale} decimal places")
    return Vec(vals, null)


# ------------------------------------------------------------------ fast path (numpy on raw bytes)
ASCII_SPACE = np.zeros(256, dtype=bool)
ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
ASCII_SPACE[128:] = True  # a non-ASCII first or last byte may be Unicode whitespace: let str.strip decide
DIGITS = np.zeros(256, dtype=bool)
DIGITS[48:58] = True
INT_BYTES = DIGITS.copy()
INT_BYTES[[0, 43, 45]] = True  # 0 pads short fields; + -
NUM_BYTES = INT_BYTES.copy()
NUM_BYTES[[46, 69, 101]] = True  # . E e
PAD = 4096  # zero bytes read after a file: a field up to PAD - 16 bytes needs no copy of the file
POW10 = 10 ** np.arange(19, dtype=np.int64)
BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype="<u8")  # keep the first k bytes


def _split_plain(path: Path):
    """(header, body, field ends) of a plain CSV file, or None when the file needs the csv module
    (quotes, carriage returns, NUL bytes, ragged or empty rows, bad UTF-8). `body` is the bytes
    after the header line followed by zero bytes (room for _byte_matrix's windows); `ends` is an
    (rows, columns) matrix of each field's end offset in `body` (its comma or newline)."""
    size = path.stat().st_size
    buf = bytearray(size + PAD)  # read straight into a zero-padded buffer: no copy of the file
    with open(path, "rb") as fh:
        if fh.readinto(memoryview(buf)[:size]) != size or fh.read(1):
            return None  # the file changed while being read: let the csv path read it whole
    start = len(codecs.BOM_UTF8) if buf.startswith(codecs.BOM_UTF8) else 0
    if any(buf.find(c, start, size) >= 0 for c in (b'"', b"\r", b"\0")):
        return None
    if not buf.isascii():
        try:
            buf[start:size].decode("utf-8")
        except UnicodeDecodeError:
            return None
    nl = buf.find(b"\n", start, size)
    if nl <= start:
        return None
    header = [h.strip() for h in buf[start:nl].decode("utf-8").split(",")]
    m = len(header)
    if m < 2:
        return None  # one column: an empty line would be a null value here, a short row to csv
    blank_end = size
    while blank_end > nl + 1 and buf[blank_end - 1] == 10 and buf[blank_end - 2] == 10:
        blank_end -= 1  # blank lines at the end are no rows (as read_csv drops them)
    buf[blank_end:size] = bytes(size - blank_end)  # the zero padding starts after the last row
    size = end = blank_end
    if size > nl + 1 and buf[size - 1] != 10:
        buf[size], end = 10, size + 1  # a missing final newline
    body = np.frombuffer(buf, dtype=np.uint8)[nl + 1:]
    text = body[:end - nl - 1]
    delim = np.flatnonzero((text == 44) | (text == 10))
    if delim.size % m:
        return None
    ends = delim.reshape(-1, m)
    is_nl = (text[delim] == 10).reshape(ends.shape)
    if not (is_nl[:, -1].all() and not is_nl[:, :-1].any()):
        return None
    longest = max(int(delim[0]), int(np.diff(delim).max()) - 1 if delim.size > 1 else 0) if delim.size else 0
    if longest > FIELD_LIMIT or (longest + 8) * ends.shape[0] > 4 * size + (1 << 26):
        return None  # reported by the csv path; or a (rows, longest field) byte matrix would be too large
    if longest + 16 > body.size - text.size:
        body = np.concatenate([text, np.zeros(longest + 16, dtype=np.uint8)])
    return header, body, ends


def _field_starts(ends: np.ndarray, j: int) -> np.ndarray:
    """Start offsets of column j's fields: one past the previous field's end."""
    if j:
        return ends[:, j - 1] + 1
    starts = np.zeros(ends.shape[0], dtype=ends.dtype)
    starts[1:] = ends[:-1, -1] + 1
    return starts


def _load_split(split, path: Path, name: str, ds: Dataset, wanted: dict | None) -> Table | None:
    """Convert every declared column of a split file. A column the fast path does not accept goes
    through the row-by-row `_convert` (same messages, same order as for a file read by csv)."""
    header, body, ends = split
    n = ends.shape[0]
    if any(header.count(col) != 1 for col in ds.columns) or n > ds.max_rows:
        return None  # reported by the csv path
    table: Table = {}
    issues: list[DataIssue] = []
    for col_name, col in ds.columns.items():
        j = header.index(col_name)
        mat, lengths = _byte_matrix(body, _field_starts(ends, j), ends[:, j])
        want = (wanted or {}).get(col_name)
        vec = _convert_fast(col, mat, lengths, want)
        if vec is None:
            raw = [b.decode("utf-8").strip() for b in mat.view(f"S{mat.shape[1]}").ravel().tolist()]
            vec = _convert(col, raw, want, str(path), col_name, issues)
        if wanted is None or col_name in wanted:
            table[col_name] = vec
        if len(issues) >= MAX_REPORTED:
            break
    if issues:
        raise DataError(issues[:MAX_REPORTED])
    return table


def _byte_matrix(body: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each field's bytes, left-aligned and zero-padded: an (n, width) uint8 matrix, width a
    multiple of 8. Fields are copied from a view of the (padded) file as overlapping width-byte
    strings, one memcpy per row; then the bytes past each field's end are masked off, 8 at a time."""
    lengths = e - s
    width = -(-max(int(lengths.max()) if lengths.size else 0, 1) // 8) * 8
    windows = np.ndarray((body.size - width + 1,), dtype=f"S{width}", buffer=body, strides=(1,))
    words = windows[s].view("<u8").reshape(lengths.size, width // 8)
    for k in range(width // 8):
        words[:, k] &= BYTE_MASKS[np.clip(lengths - 8 * k, 0, 8)]
    return words.view(np.uint8).reshape(lengths.size, width), lengths


def _row_hash(words: np.ndarray) -> np.ndarray:
    h = words[:, 0].copy()
    with np.errstate(over="ignore"):
        for k in range(1, words.shape[1]):
            h = h * np.uint64(0x100000001B3) + words[:, k]
    return h


def _unique_rows(mat: np.ndarray, text: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    """Distinct values and each row's index into them. A 64-bit hash of each row is sorted
    instead of the strings; a collision (checked exactly) falls back to sorting the strings."""
    words = mat.view(np.uint64)
    _, first, inverse = np.unique(_row_hash(words), return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    if words.shape[1] > 1 and not (words == words[first[inverse]]).all():
        uniq, inverse = np.unique(text, return_inverse=True)
        return list(uniq), inverse.ravel()
    return [bytes(text[i]) for i in first], inverse


def _category_codes(mat: np.ndarray, col, want: dict | None) -> np.ndarray | None:
    """Codes of a category column by looking each row's hash up among the domain's hashes
    (exactly checked); None when a value is outside the domain (or on a hash collision)."""
    domain = list(want["domain"]) if want else list(col.domain)
    index = {v: i for i, v in enumerate(domain)}
    width = mat.shape[1]
    values = [v for v in col.domain if len(v.encode("utf-8")) <= width]
    known = np.zeros((len(values) + 1, width), dtype=np.uint8)  # row 0: the empty value (null)
    for i, v in enumerate(values, start=1):
        b = v.encode("utf-8")
        known[i, :len(b)] = np.frombuffer(b, dtype=np.uint8)
    known_words = known.view(np.uint64)
    known_h = _row_hash(known_words)
    order = np.argsort(known_h)
    if np.unique(known_h).size < known_h.size:
        return None
    words = mat.view(np.uint64)
    pos = np.minimum(np.searchsorted(known_h[order], _row_hash(words)), known_h.size - 1)
    which = order[pos]
    if not (words == known_words[which]).all():
        return None
    lut = np.array([0] + [index[v] for v in values], dtype=np.int64)
    return lut[which]


def _convert_fast(col, mat: np.ndarray, lengths: np.ndarray, want: dict | None) -> Vec | None:
    """Vectorised conversion of one clean column; None when any value needs a closer look."""
    n = lengths.size
    null = lengths == 0
    if not col.nullable and null.any():
        return None
    if n and (ASCII_SPACE[mat[:, 0]] | ASCII_SPACE[mat[np.arange(n), np.maximum(lengths - 1, 0)]]).any():
        return None  # padded values: stripped by the row-by-row path
    text = mat.view(f"S{mat.shape[1]}").ravel()
    t = col.type
    if t == "category":
        codes = _category_codes(mat, col, want)
        return None if codes is None else Vec(codes, null)
    if t == "boolean":
        uniq, inverse = _unique_rows(mat, text)
        words = [u.decode("utf-8") for u in uniq]
        if any(w != "" and w.lower() not in TRUE | FALSE for w in words):
            return None
        return Vec(np.array([w.lower() in TRUE for w in words], dtype=bool)[inverse], null)
    if t == "date":
        return _dates_fast(col, mat, lengths, null)
    is_int = t in ("integer", "key")
    vals = _plain_integers(mat, lengths) if is_int else None
    if vals is None:  # decimals, signs, long values: numpy's parser
        if not (INT_BYTES if is_int else NUM_BYTES)[mat].all():
            return None
        try:
            vals = np.where(null, b"0", text).astype(np.int64 if is_int else float)
        except (ValueError, OverflowError):
            return None
    if not is_int and not np.all(np.isfinite(vals)):
        return None
    lo, hi = (0, 2 ** col.bits - 1) if t == "key" else (col.min, col.max)
    if (((vals < lo) | (vals > hi)) & ~null).any():
        return None
    if t == "decimal":
        scaled = vals * 10 ** col.scale
        if ((np.abs(scaled - np.rint(scaled)) > 1e-6) & ~null).any():
            return None
    return Vec(vals, null)


def _plain_integers(mat: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
    """Values of a column whose fields are only digits (at most 18), from the digits (faster
    than numpy's parser on the text); None for anything else (signs, long values); 0 where empty."""
    n, width = lengths.size, int(lengths.max()) if lengths.size else 0
    if width > 18:
        return None
    digit = mat[:, :width] - np.uint8(48)  # wraps around below '0': the zero padding becomes 208
    other = digit >= 10
    if (other & (mat[:, :width] != 0)).any():
        return None
    digit[other] = 0
    acc = np.zeros(n, dtype=np.int64)  # the digits followed by the padding's zeros
    for k in range(width):
        acc *= 10
        acc += digit[:, k]
    return acc // POW10[width - lengths]


def _dates_fast(col, mat: np.ndarray, lengths: np.ndarray, null: np.ndarray) -> Vec | None:
    """YYYY-MM-DD from its digits: days since 1970-01-01, checked against the calendar and range."""
    vals = np.zeros(lengths.size, dtype=np.int64)
    if null.all():
        return Vec(vals, null)
    if ((lengths != 10) & ~null).any():
        return None
    d = mat[:, :10] if not null.any() else mat[~null, :10]
    if not (((d[:, [0, 1, 2, 3, 5, 6, 8, 9]] - np.uint8(48)) < 10).all() and (d[:, [4, 7]] == 45).all()):
        return None
    digit = lambda k: d[:, k].astype(np.int64) - 48  # noqa: E731
    y = digit(0) * 1000 + digit(1) * 100 + digit(2) * 10 + digit(3)
    mon = digit(5) * 10 + digit(6)
    day = digit(8) * 10 + digit(9)
    if not ((y >= 1) & (mon >= 1) & (mon <= 12) & (day >= 1)).all():
        return None
    months = (y - 1970) * 12 + mon - 1
    first = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    nxt = (months + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    days = first + day - 1
    if (days >= nxt).any():
        return None
    if ((days < date_to_days(col.min)) | (days > date_to_days(col.max))).any():
        return None
    vals[~null] = days
    return Vec(vals, null)
