"""Load one party's own dataset and validate it against the catalog before anything is shared.

Fast path: column-wise numpy conversion. When a column fails, a row-by-row pass finds every
bad value, so the owner gets file, row, column and reason for each (up to a limit).
"""
from __future__ import annotations

import csv
import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insightql.compiler.catalog import Dataset
from insightql.compiler.local_eval import Table
from insightql.stdlib.functions import Vec
from insightql.stdlib.types import date_to_days

MAX_REPORTED = 25
TRUE = {"true", "1", "yes", "t", "y"}
FALSE = {"false", "0", "no", "f", "n"}
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # Python 3.11 also parses 20240131, 2024-W05-3
INT_TEXT = re.compile(r"[+-]?[0-9]+")  # Python's int() also takes 1_000 and non-ASCII digits
NUM_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")  # and float() takes nan, inf


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


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataError([DataIssue(str(path), None, None, "the file is empty (no header line)")])
        rows = list(reader)
    return [h.strip() for h in header], rows


def load_dataset(path: str | Path, name: str, ds: Dataset, wanted: dict[str, dict] | None = None) -> tuple[Table, int]:
    """Read `path`, check every declared column, return the columns the plan reads.

    `wanted` maps column name -> the plan's view of its type (category codes are taken
    against that domain, which for a UNION ALL may list more values than this dataset's).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError([DataIssue(str(path), None, None, "file not found")])
    header, rows = read_csv(path)
    issues: list[DataIssue] = []
    for col in ds.columns:
        if col not in header:
            issues.append(DataIssue(str(path), None, col, f"missing column (dataset {name} declares it)"))
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
                bad(k, f"'{s}' is not in the category's domain ({', '.join(col.domain[:8])}"
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
                bad(k, f"'{s}' is not a boolean (true/false)")
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
                bad(k, f"'{s}' is not a date (YYYY-MM-DD)")
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
                bad(k, f"'{s}' is not {'an integer' if is_int else 'a number'}")
    if t == "key":
        lo, hi = 0, 2 ** col.bits - 1
    else:
        lo, hi = col.min, col.max
    out = np.flatnonzero(((vals < lo) | (vals > hi)) & ~null)
    for k in out[:MAX_REPORTED]:
        bad(int(k), f"{raw[k]} is outside the declared range [{lo}, {hi}]")
    if t == "decimal":
        scaled = vals * 10 ** col.scale
        off = np.flatnonzero((np.abs(scaled - np.rint(scaled)) > 1e-6) & ~null)
        for k in off[:MAX_REPORTED]:
            bad(int(k), f"{raw[k]} has more than {col.scale} decimal places")
    return Vec(vals, null)
