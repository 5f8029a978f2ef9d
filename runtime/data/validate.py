"""The one validation of a party's data: every source's columns, judged column by column, vectorised.

Each declared column is first made typed: text (CSV, xlsx, a Parquet string column, any other
Parquet type once cast to text) is stripped of surrounding whitespace, empty text is null, and the
rest is parsed by one definition per type (below, as Arrow compute kernels); a Parquet column that
already has the declared kind (integers for an integer or key, numbers for a decimal, dates,
booleans) is taken as it is. Then the same checks run on every column, as boolean masks: null in a
column that is not nullable, not of the type (or not in the category's domain), outside the
declared range (a key: its bit width), more decimal places than the scale. Only the rows those
masks flag are visited one by one, to word their issue: the messages cannot disagree with the check.
"""
from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from insightql.compiler.check.catalog import Dataset
from insightql.compiler.plaintext.local_eval import Table
from insightql.stdlib.functions import Vec
from insightql.stdlib.types import date_to_days

from insightql.runtime.data.checks import MAX_REPORTED, DataError, DataIssue, check_header, show
from insightql.runtime.data.sources import Stream

TRUE = ["true", "1", "yes", "t", "y"]
FALSE = ["false", "0", "no", "f", "n"]
NUM_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,4})?$"  # no nan, inf
DATE_TEXT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"  # no 20240131, 2024-W05-3
THREADS = min(4, os.cpu_count() or 1)
INT_DIGITS = 18  # significant digits an int64 always holds
FIRST_DAY = date_to_days(dt.date(1, 1, 1))  # strptime takes year 0000
NOT_A = {"integer": "an integer", "key": "an integer", "decimal": "a number", "date": "a date (YYYY-MM-DD)",
         "boolean": "a boolean (true/false)"}


@dataclass
class Parsed:
    """One column made typed: values (0 where null or unparsable), the null mask, the rows whose
    text is not of the type, and each row's value as text (for messages only)."""
    values: np.ndarray
    null: np.ndarray
    not_type: np.ndarray
    text: Callable[[int], str]


def validate(src: Stream, name: str, ds: Dataset, wanted: dict[str, dict] | None) -> tuple[Table, int]:
    """The declared columns of `src` as a Table, or DataError listing every problem (up to the limit).

    Block by block: each block's declared columns are parsed and checked, and dropped; what stays is
    the values of the columns the plan reads and, for the messages, the rows each check flags
    (`Flags`). The issues are those of the whole source at once, in the same order of precedence:
    what stops the reader, the header, rows the reader cannot split, max_rows, then the values."""
    try:
        issues, refused = check_header(src.header, src.path, name, ds), None
    except DataError as e:
        issues, refused = [], e
    judged = {c: Judged(ds.columns[c], wanted is None or c in wanted) for c in ds.columns}
    with ThreadPoolExecutor(THREADS) as pool:  # Arrow's kernels let go of the GIL: columns in parallel
        for block in src.blocks:  # raises DataError, at its end, for what stops the reader
            if refused or issues or src.issues or src.rows > ds.max_rows:
                judged = {}  # nothing more to judge: the reader's issues come first; read on for them
                continue
            def parse(col_name: str) -> Parsed | str:
                col = ds.columns[col_name]
                try:
                    return parse_column(col, block.columns[src.header.index(col_name)], (wanted or {}).get(col_name))
                except (pa.ArrowException, ValueError) as e:
                    return f"cannot be read as {col.type} ({e})"
            for col_name, parsed in zip(judged, pool.map(parse, judged)):
                judged[col_name].add(parsed, block.start)
    if refused:
        raise refused
    issues += src.issues
    if issues:
        raise DataError(issues[:MAX_REPORTED])
    if src.rows > ds.max_rows:
        raise DataError([DataIssue(str(src.path), None, None,
                                   f"{src.rows} rows, more than the declared max_rows {ds.max_rows}")])
    table: Table = {}
    for col_name, judge in judged.items():
        if judge.failed:
            issues.append(DataIssue(str(src.path), None, col_name, judge.failed))
            continue
        issues += judge.describe(str(src.path), col_name, MAX_REPORTED - len(issues))
        if judge.keep:
            table[col_name] = judge.column((wanted or {}).get(col_name))
    if issues:
        raise DataError(issues[:MAX_REPORTED])
    return table, src.rows


class Judged:
    """One declared column as judged so far: its values and nulls (if the plan reads it), and for
    the messages only what they read (`Flags`), per check."""

    def __init__(self, col, keep: bool):
        self.col, self.keep = col, keep
        self.values: list[np.ndarray] = []
        self.null: list[np.ndarray] = []
        self.flags: list[Flags] = []
        self.failed: str | None = None  # why the column cannot be read

    def add(self, parsed: Parsed | str, start: int) -> None:
        if self.failed:
            return
        if isinstance(parsed, str):
            self.failed, self.values, self.null = parsed, [], []
            return
        checks = check_column(self.col, parsed)
        if not self.flags:
            self.flags = [Flags(why, many, hint) for _, why, many, hint in checks]
        first_check = np.full(len(parsed.null), -1)
        for j in reversed(range(len(checks))):
            first_check[checks[j][0]] = j
        for j, flags in enumerate(self.flags):
            flags.add(np.flatnonzero(first_check == j), parsed, start)
        if self.keep:
            self.values.append(parsed.values)
            self.null.append(parsed.null)

    def describe(self, file: str, column: str, limit: int) -> list[DataIssue]:
        return describe(self.flags, file, column, limit)

    def column(self, want: dict | None) -> Vec:
        if not self.values:  # no rows: the column's types, from an empty one
            empty = parse_column(self.col, pa.array([], pa.string()), want)
            return Vec(empty.values, empty.null)
        values, null = np.concatenate(self.values), np.concatenate(self.null)
        self.values = self.null = []
        return Vec(values, null)


@dataclass
class Flags:
    """The rows one check flags in one column as far as its messages read them: how many, the
    first VALUES_READ of them (0-based rows of the source) and their text."""
    why: Callable[[str], str]
    many: str
    hint: str
    count: int = 0
    rows: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def add(self, flagged: np.ndarray, p: Parsed, start: int) -> None:
        self.count += len(flagged)
        for k in flagged[:VALUES_READ - len(self.rows)].tolist():
            self.rows.append(start + k)
            self.texts.append(p.text(k))


def check_column(col, p: Parsed) -> list[tuple[np.ndarray, Callable[[str], str], str, str]]:
    """(mask, reason for one row, the reason for many rows, a hint) for each check, in order: a
    row's issue is the first check it fails."""
    checks = []
    if not col.nullable:
        checks.append((p.null, lambda s: "empty value, but the column is not nullable",
                       "are empty, but the column is not nullable",
                       "fill them in, or declare the column `nullable = true` in the catalog"))
    if col.type == "category":
        dom = f"{', '.join(col.domain[:8])}{', ...' if len(col.domain) > 8 else ''}"
        checks.append((p.not_type, lambda s: f"'{show(s)}' is not in the category's domain ({dom})",
                       f"are not in the category's domain ({dom})",
                       "correct them in the file (spelling and case count), or have the catalog's domain list them"))
        return checks
    checks.append((p.not_type, lambda s: f"'{show(s)}' is not {NOT_A[col.type]}", f"are not {NOT_A[col.type]}",
                   "correct them in the file"))
    if col.type == "boolean":
        return checks
    ok = ~p.null & ~p.not_type
    if col.type == "date":
        lo, hi, shown = date_to_days(col.min), date_to_days(col.max), (col.min, col.max)
    else:
        lo, hi = (0, 2 ** col.bits - 1) if col.type == "key" else (col.min, col.max)
        shown = (lo, hi)
    with np.errstate(invalid="ignore"):
        out = ok & ((p.values < lo) | (p.values > hi))
    checks.append((out, lambda s: f"{show(s)} is outside the declared range [{shown[0]}, {shown[1]}]",
                   f"are outside the declared range [{shown[0]}, {shown[1]}]",
                   "correct them in the file, or have the catalog's min and max include them"))
    if col.type == "decimal":
        scaled = p.values * 10 ** col.scale
        with np.errstate(invalid="ignore"):
            off = ok & (np.abs(scaled - np.rint(scaled)) > 1e-6)
        checks.append((off, lambda s: f"{show(s)} has more than {col.scale} decimal places",
                       f"have more than {col.scale} decimal places", f"round them to {col.scale} decimal places"))
    return checks


SUMMARY_AFTER = 3
"""A check that flags more rows than this in one column is reported once for the column, summarised."""
FIRST_ROWS = 5  # rows a summary names
VALUES_SHOWN = 5  # distinct values a summary names (the most frequent among the first flagged rows)
VALUES_READ = 1000  # flagged rows read for those values


def describe(flags: list[Flags], file: str, column: str, limit: int) -> list[DataIssue]:
    """The issues of one column, each row worded by its first check: one issue per row for a check
    that flags at most SUMMARY_AFTER rows, else one summary for the check (how many rows, the first
    ones, the values, a hint). In row order (a summary at its first row); at most `limit`."""
    if not flags or limit <= 0:
        return []
    found = []
    for f in flags:
        if f.count > SUMMARY_AFTER:
            found.append((f.rows[0], _summary(f, file, column, values=not f.many.startswith("are empty"))))
        else:
            found += [(k, DataIssue(file, k + 1, column, f.why(text))) for k, text in zip(f.rows[:limit], f.texts)]
    return [issue for _, issue in sorted(found, key=lambda x: x[0])][:limit]


def _summary(f: Flags, file: str, column: str, values: bool) -> DataIssue:
    shown = ", ".join(str(k + 1) for k in f.rows[:FIRST_ROWS]) + (", ..." if f.count > FIRST_ROWS else "")
    text = f"{f.count} values {f.many}; rows {shown}"
    if values:
        counts = Counter(show(t) for t in f.texts[:VALUES_READ])
        listed = [f"'{v}' ({n} row{'s' if n > 1 else ''})" for v, n in counts.most_common(VALUES_SHOWN)]
        text += "; values " + ", ".join(listed) + (", ..." if len(counts) > VALUES_SHOWN else "")
    return DataIssue(file, None, column, f"{text}; hint: {f.hint}")


# ------------------------------------------------------------------------------------ parsing
def parse_column(col, arr: pa.Array | pa.ChunkedArray, want: dict | None) -> Parsed:
    typed = _typed(col, arr)
    if typed is not None:
        return typed
    arr = pc.fill_null(arr if _is_text(arr.type) else pc.cast(arr, pa.string()), "")
    if col.type in ("key", "decimal") or len(arr) == 0:  # mostly distinct values: parse every row
        text = pc.utf8_trim_whitespace(arr)
        values, null, bad = _parse_text(col, text, want)
        return Parsed(values, null, bad, lambda k: text[k].as_py())
    # few distinct values (categories, dates, ages, flags): parse each distinct text once
    chunks = pc.dictionary_encode(pa.chunked_array([arr]) if isinstance(arr, pa.Array) else arr)
    chunks = chunks.unify_dictionaries().chunks
    index = np.concatenate([_np(c.indices) for c in chunks]).astype(np.intp)
    distinct = pc.utf8_trim_whitespace(chunks[0].dictionary)
    values, null, bad = (a[index] for a in _parse_text(col, distinct, want))
    return Parsed(values, null, bad, lambda k: distinct[int(index[k])].as_py())


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _parse_text(col, text: pa.Array, want) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """values, null, not of the type: THE definition of a valid value as text, for every source."""
    null = _np(pc.equal(pc.binary_length(text), 0))
    values, bad = PARSE[col.type](col, text, want)
    return values, null, bad & ~null


def _np(arr) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def _match(text: pa.Array, pattern: str) -> pa.Array:
    return pc.match_substring_regex(text, pattern)


def _integers(col, text: pa.Array, want) -> tuple[np.ndarray, np.ndarray]:
    """[+-]digits (ASCII); more than 18 significant digits is beyond any range an int64 holds."""
    signed = pc.or_(pc.starts_with(text, "+"), pc.starts_with(text, "-"))
    if pc.any(signed).as_py():
        ok = _np(pc.ascii_is_decimal(pc.if_else(signed, pc.utf8_slice_codeunits(text, 1), text)))
        text = pc.utf8_ltrim(text, characters="+")  # for the cast: "+5" is 5 (where ok, one + at most)
    else:
        ok = _np(pc.ascii_is_decimal(text))
    huge = ok & _np(pc.greater(pc.binary_length(text), INT_DIGITS))
    if huge.any():
        digits = pc.utf8_length(pc.replace_substring_regex(text, r"^-?0*", ""))
        huge &= _np(pc.greater(digits, INT_DIGITS))
    values = _np(pc.fill_null(pc.cast(_only(text, ok & ~huge), pa.int64()), 0))
    values = np.where(huge, np.where(_np(pc.starts_with(text, "-")), np.iinfo(np.int64).min,
                                     np.iinfo(np.int64).max), values)
    return values, ~ok


def _decimals(col, text: pa.Array, want) -> tuple[np.ndarray, np.ndarray]:
    ok = _np(_match(text, NUM_TEXT))
    values = _np(pc.fill_null(pc.cast(_only(text, ok), pa.float64()), 0.0))
    return values, ~ok | ~np.isfinite(values)


def _only(text: pa.Array | pa.ChunkedArray, keep: np.ndarray) -> pa.Array:
    """`text` with the rows not kept made null, without copying the strings (for a cast)."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if keep.all():
        return text
    if text.offset or text.null_count:
        return pc.if_else(pa.array(keep), text, pa.scalar(None, text.type))
    valid = pa.py_buffer(np.packbits(keep, bitorder="little"))
    return pa.Array.from_buffers(text.type, len(text), [valid, *text.buffers()[1:]])


def _dates(col, text: pa.Array, want) -> tuple[np.ndarray, np.ndarray]:
    """YYYY-MM-DD of the calendar: parsed, then written back and compared (2021-02-30 is no date)."""
    ok = _match(text, DATE_TEXT)
    filled = pc.if_else(ok, text, "1970-01-01")
    stamp = pc.strptime(filled, format="%Y-%m-%d", unit="s", error_is_null=True)
    same = pc.fill_null(pc.equal(pc.strftime(stamp, format="%Y-%m-%d"), filled), False)
    days = _np(pc.fill_null(pc.cast(pc.cast(stamp, pa.date32()), pa.int32()), 0)).astype(np.int64)
    good = _np(pc.and_(ok, same)) & (days >= FIRST_DAY)
    return np.where(good, days, 0), ~good


def _booleans(col, text: pa.Array, want) -> tuple[np.ndarray, np.ndarray]:
    low = pc.utf8_lower(text)
    is_true = _np(pc.is_in(low, pa.array(TRUE)))
    return is_true, ~(is_true | _np(pc.is_in(low, pa.array(FALSE))))


def _categories(col, text: pa.Array, want) -> tuple[np.ndarray, np.ndarray]:
    """Codes against the plan's domain (for a UNION ALL it may list more values than this dataset's)."""
    domain = list(want["domain"]) if want else list(col.domain)
    own = _np(pc.is_in(text, pa.array(list(col.domain), pa.string())))
    codes = _np(pc.fill_null(pc.index_in(text, pa.array(domain, pa.string())), 0)).astype(np.int64)
    return np.where(own, codes, 0), ~own


PARSE = {"integer": _integers, "key": _integers, "decimal": _decimals, "date": _dates, "boolean": _booleans,
         "category": _categories}


def _typed(col, arr: pa.Array) -> Parsed | None:
    """A column that already has the declared kind (Parquet), as it is; None: read it as text."""
    t, kind = arr.type, col.type
    if kind in ("integer", "key") and pa.types.is_integer(t):
        if pa.types.is_uint64(t) and (pc.max(arr).as_py() or 0) >= 2 ** 63:
            return None
        values = _np(pc.fill_null(arr, 0)).astype(np.int64)
    elif kind == "decimal" and (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t)):
        values = _np(pc.fill_null(pc.cast(arr, pa.float64()), 0.0))
    elif kind == "date" and (pa.types.is_date32(t) or pa.types.is_date64(t)):
        values = _np(pc.fill_null(pc.cast(pc.cast(arr, pa.date32()), pa.int32()), 0)).astype(np.int64)
    elif kind == "boolean" and pa.types.is_boolean(t):
        values = _np(pc.fill_null(arr, False))
    else:
        return None
    null = _np(arr.is_null())
    not_type = ~np.isfinite(values) & ~null if values.dtype.kind == "f" else np.zeros(len(arr), dtype=bool)
    return Parsed(values, null, not_type, lambda k: _shown(arr[k].as_py()))


def _shown(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return v.isoformat() if hasattr(v, "isoformat") else str(v)
