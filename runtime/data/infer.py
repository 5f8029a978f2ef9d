"""`iq catalog infer DATA`: a draft catalog dataset from a data file, for its owner to review.

Each column is read with the readers of runtime/data/sources.py and judged with the parsers of
runtime/data/validate.py (the definitions the loader uses), so every declared column of the draft
validates against the same file, except the rows whose category values were left out (below):

  type      boolean (true/false, yes/no words), integer, decimal (scale: the most decimal places
            seen, at most 6), date (YYYY-MM-DD), else text: a category when it has at most
            `max_categories` distinct values, else not declared (the catalog has no free text)
  nullable  when some value is empty
  bounds    the data's extremes rounded outward (integers, decimals: to a power of ten, at least 10; dates: to
            whole years), and flagged: bounds from the data still hint at its extremes, so the
            owner should set public bounds (legal or physical limits)
  domain    only values seen in at least `min_count` rows: a catalog is public, and a value held
            by few rows (a name, a rare nationality) would disclose them. The draft says how many
            values were left out, never which; rows holding them fail validation until recoded
  keys      a column named like an identifier (`id`, `*_id`, `*_key`, `uuid`) or with a distinct
            record number or hash per row is a `key` (no domain, no bounds, never in WHERE); identifying
            text (names, e-mail, phone, an identifier that is not a number) is not declared

The draft never holds a value of the data beyond the domains; `render_draft` writes it as TOML the
catalog loader accepts, every inferred field commented with how it was inferred.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from insightql.stdlib.types import days_to_date

from insightql.runtime.data.checks import DataError, check_path
from insightql.runtime.data.sources import Source, read_source
from insightql.runtime.data.validate import parse_column

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
DEFAULT_MAX_ROWS = 1_000_000

IDENTIFIER = re.compile(r"(^|_)(id|key|uuid|guid|ref|number|no)$|^(id|uuid|guid)_|_id_", re.I)
IDENTIFYING_TEXT = re.compile(r"name|e_?mail|phone|address|street|passport|ssn|iban|account|birth_?place|"
                              r"notes?$|comment|remark|description|text", re.I)
PERSON = re.compile(r"person|prs|client|victim|individual|subject|patient|beneficiary", re.I)
WORDS = {"true", "false", "yes", "no", "t", "f", "y", "n"}
UNIQUE_ROWS = 50
"""A distinct whole number per row marks an identifier in a file at least this long, when the numbers
are consecutive (record numbers) or all of at least 7 digits (hashes); not ages in a small file."""
DISTINCT_TEXT = 10  # this many texts, each in one row, are an identifier, never a category domain


@dataclass
class InferOptions:
    name: str | None = None
    owner: str | None = None
    min_count: int = 10
    max_categories: int = 50


@dataclass
class Inferred:
    """One column of the draft: its catalog fields (None: not declared) and how each was inferred."""
    name: str
    column: dict | None
    notes: list[str] = field(default_factory=list)
    left_out: int = 0  # distinct values held by fewer than min_count rows (not named anywhere)


def _col(spec: dict):
    from pydantic import TypeAdapter

    from insightql.compiler.check.catalog import Column
    return TypeAdapter(Column).validate_python(spec)


def _parses_as(spec: dict, arr) -> tuple[bool, object]:
    """Does every non-empty value parse as this type (validate.py's own parser)?"""
    p = parse_column(_col(spec), arr, None)
    return not p.not_type.any(), p


def _outward(lo: float, hi: float) -> tuple[float, float]:
    """[lo, hi] widened to multiples of a power of ten, at least 10: 16..78 -> 10..80, 3..12000 -> 0..20000,
    0..7 -> 0..10. With a step of 1 a small count's extremes (7 children: maybe one family) were the
    exact values, the disclosure a domain's --min-count prevents for categories."""
    top = max(abs(lo), abs(hi), 1)
    step = 10 ** max(1, len(str(int(top))) - 1)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step


def _numbers(name: str, arr, kind: str, rows: int, notes: list[str]) -> dict | None:
    big = 10 ** 15
    if kind == "integer":
        ok, p = _parses_as({"type": "integer", "min": -big, "max": big, "nullable": True}, arr)
        scale = 0
    else:
        ok, p = _parses_as({"type": "decimal", "scale": 6, "min": -big, "max": big, "nullable": True}, arr)
        vals = p.values[~p.null]
        scale = next((s for s in range(7) if np.all(np.abs(vals * 10 ** s - np.rint(vals * 10 ** s)) < 1e-6)), 7)
        ok = ok and scale <= 6
    if not ok or p.null.all():
        return None
    vals = p.values[~p.null]
    lo, hi = _outward(float(vals.min()), float(vals.max()))
    spec = {"type": kind}
    if kind == "decimal":
        spec["scale"] = max(scale, 1)
    if kind == "integer":
        lo, hi = int(lo), int(hi)
    spec.update(min=lo, max=hi)
    if p.null.any():
        spec["nullable"] = True
    spec.update(role="measure", clamp=[lo, hi])
    notes.append(f"{kind} (every value {'a whole number' if kind == 'integer' else 'a number'}"
                 + (f", at most {spec['scale']} decimal place(s)" if kind == "decimal" else "") + ")")
    notes.append("BOUNDS FROM THE DATA, its extremes rounded outward to a power of ten: set public bounds")
    notes.append("a measure, clamp = the bounds (SUM/AVG allowed): make it a dimension if it is a code")
    return spec


def _key(name: str, arr, rows: int, notes: list[str]) -> dict | None:
    ok, p = _parses_as({"type": "key", "bits": 64, "nullable": True}, arr)
    if not ok or p.null.all():
        return None
    vals = p.values[~p.null]
    bits = 48 if vals.max() < 2 ** 48 else 64
    spec = {"type": "key", "bits": bits, "where": False}
    if len(np.unique(vals)) == len(vals):
        spec["unique"] = True
    if p.null.any():
        spec["nullable"] = True
    notes.append("IDENTIFIER (its name, or a distinct number per row): a key, never released, grouped or in "
                 "WHERE; load a keyed hash of the identifiers (examples/pseudonymise.py), not record numbers")
    return spec


def _category(name: str, arr, opts: InferOptions, inferred: Inferred) -> dict | None:
    text = pc.utf8_trim_whitespace(pc.fill_null(arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string()), ""))
    counts = pc.value_counts(text).to_pylist()
    counts = [(c["values"], c["counts"]) for c in counts if c["values"] != ""]
    if len(counts) > opts.max_categories:
        inferred.notes.append(f"NOT DECLARED: text with more than {opts.max_categories} distinct values (free text or "
                              f"an identifier); the catalog has no text type")
        return None
    if len(counts) >= DISTINCT_TEXT and all(n == 1 for _, n in counts):
        inferred.notes.append("NOT DECLARED: a distinct text per row, like an identifier (whatever --min-count says)")
        return None
    domain = sorted(v for v, n in counts if n >= opts.min_count)
    inferred.left_out = len(counts) - len(domain)
    if not domain:
        inferred.notes.append(f"NOT DECLARED: text whose every value is held by fewer than {opts.min_count} rows")
        return None
    spec = {"type": "category", "domain": domain}
    if pc.any(pc.equal(text, "")).as_py():
        spec["nullable"] = True
    inferred.notes.append(f"category (at most {opts.max_categories} distinct values); the domain: the values held "
                          f"by at least {opts.min_count} rows, in alphabetical order")
    if inferred.left_out:
        inferred.notes.append(f"LEFT OUT of the domain: {inferred.left_out} rarer value(s), not shown (a catalog is "
                              f"public); rows holding them fail validation until recoded (e.g. to Other)")
    return spec


def infer_column(name: str, arr, rows: int, opts: InferOptions) -> Inferred:
    out = Inferred(name, None)
    text = pc.utf8_trim_whitespace(pc.fill_null(arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string()), ""))
    filled = [v for v in pc.unique(text).to_pylist() if v != ""]
    if not filled:
        out.notes.append("NOT DECLARED: every value is empty")
        return out
    if pa.types.is_timestamp(arr.type) or pa.types.is_time(arr.type):
        out.notes.append("NOT DECLARED: times of day; the catalog has dates only (store the date, YYYY-MM-DD)")
        return out
    named_id = bool(IDENTIFIER.search(name))
    if named_id or IDENTIFYING_TEXT.search(name):
        out.column = _key(name, arr, rows, out.notes) if named_id else None
        if out.column is None:
            out.notes.append("NOT DECLARED: identifying " + ("text: pseudonymise it to a whole-number key "
                             "(examples/pseudonymise.py), then declare it as type = \"key\"" if named_id else
                             "text (names, contact details, free text) is never part of a catalog"))
        return out
    if {v.lower() for v in filled} <= WORDS and not all(v.isdigit() for v in filled):
        ok, p = _parses_as({"type": "boolean", "nullable": True}, arr)
        if ok:
            out.column = {"type": "boolean", **({"nullable": True} if p.null.any() else {})}
            out.notes.append("boolean (every value true/false or yes/no)")
            return out
    ok, p = _parses_as({"type": "integer", "min": -10 ** 15, "max": 10 ** 15, "nullable": True}, arr)
    if ok:
        vals = p.values[~p.null]
        if rows >= UNIQUE_ROWS and len(np.unique(vals)) == len(vals) == rows and (
                vals.max() - vals.min() + 1 == rows or np.abs(vals).min() >= 10 ** 6):  # numbered rows, or hashes
            out.column = _key(name, arr, rows, out.notes)
            return out
        out.column = _numbers(name, arr, "integer", rows, out.notes)
        return out
    ok, _ = _parses_as({"type": "decimal", "scale": 6, "min": -10 ** 15, "max": 10 ** 15, "nullable": True}, arr)
    if ok:
        out.column = _numbers(name, arr, "decimal", rows, out.notes)
        if out.column is None:
            out.notes.append("NOT DECLARED: numbers with more than 6 decimal places")
        return out
    ok, p = _parses_as({"type": "date", "min": dt.date(1, 1, 1), "max": dt.date(9999, 12, 31), "nullable": True}, arr)
    if ok:
        days = p.values[~p.null]
        lo, hi = days_to_date(int(days.min())), days_to_date(int(days.max()))
        out.column = {"type": "date", "min": dt.date(lo.year, 1, 1), "max": dt.date(hi.year, 12, 31),
                      **({"nullable": True} if p.null.any() else {})}
        out.notes += ["date (every value YYYY-MM-DD)",
                      "BOUNDS FROM THE DATA, rounded outward to whole years: set the public period the data covers"]
        return out
    out.column = _category(name, arr, opts, out)
    return out


def _person_key(columns: list[Inferred]) -> str | None:
    """The key column named like a person's, else the only key column, else none."""
    keys = [c.name for c in columns if c.column and c.column["type"] == "key"]
    named = [k for k in keys if PERSON.search(k)]
    return named[0] if named else keys[0] if len(keys) == 1 else None


def dataset_name(path: Path, opts: InferOptions) -> str:
    if opts.name:
        return opts.name
    name = re.sub(r"\W+", "_", path.stem).strip("_").lower()
    return name if name and not name[0].isdigit() else f"dataset_{name}"


def infer_source(src: Source, opts: InferOptions) -> list[Inferred]:
    if src.issues:
        raise DataError(src.issues)
    seen: set[str] = set()
    out = []
    for name, arr in zip(src.header, src.columns):
        if not name or name in seen:
            out.append(Inferred(name or "(empty name)", None, ["NOT DECLARED: the header names it twice or not at all"]))
            continue
        seen.add(name)
        out.append(infer_column(name, arr, src.rows, opts))
    return out


def infer_dataset(path: Path, opts: InferOptions | None = None) -> str:
    """The draft (TOML text) for the file at `path`; DataError when the file cannot be read."""
    opts = opts or InferOptions()
    check_path(path)
    src = read_source(path)
    columns = infer_source(src, opts)
    return render_draft(path, dataset_name(path, opts), opts, columns, _person_key(columns), src.rows)



# ------------------------------------------------------------------------------- the draft as TOML
def key(name: str) -> str:
    return name if BARE_KEY.match(name) else basic_string(name)


def value(v) -> str:
    """A TOML value: strings as basic strings (JSON's escapes are TOML's), dates bare."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    return basic_string(str(v))


def basic_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but not its surrogate pairs (so non-ASCII stays
    literal) and JSON leaves DEL unescaped."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def inline(spec: dict) -> str:
    return "{ " + ", ".join(f"{key(k)} = {value(v)}" for k, v in spec.items()) + " }"


def _max_rows(rows: int) -> tuple[int, str]:
    if rows <= DEFAULT_MAX_ROWS:
        return DEFAULT_MAX_ROWS, "the default; set the most rows this dataset will ever have"
    return 10 ** math.ceil(math.log10(rows + 1)), "the file's row count rounded up to a power of ten; set the most rows " \
                                                  "this dataset will ever have"


def render_draft(path: Path, name: str, opts, columns, person_key: str | None, rows: int) -> str:
    owner = opts.owner or "OWNER"
    max_rows, rows_note = _max_rows(rows)
    declared = [c for c in columns if c.column is not None]
    out = [
        f"# DRAFT of dataset {key(name)}, inferred by `iq catalog infer {key(path.name)}`: for its owner to REVIEW",
        "# before use. Every type, domain, bound and policy below is a guess from the data, marked",
        "# `inferred:`; nothing is decided until the owner has checked each line and removed this header.",
        "#",
        "# A catalog is public: every party reads it. This draft holds no value of the data except the",
        f"# category domains, which list only values held by at least {opts.min_count} rows (--min-count).",
        "# BOUNDS come from the data's extremes, rounded outward; they still hint at the smallest and",
        "# largest values: replace them with public bounds (legal or physical limits, the period covered).",
        "# The policy starts strict (preset `strict`, results to the owner only, signed approvals): loosen",
        "# it on purpose (spec/catalog.md, spec/stdlib.md section 3).",
        f"[datasets.{key(name)}]",
        f"owner = {value(owner)}" + ("" if opts.owner else "   # inferred: nothing; write the party that holds the data"),
        f"description = {value('Inferred from ' + path.name)}   # inferred: nothing; say what one row is",
        f"max_rows = {max_rows}   # inferred: {rows_note}",
    ]
    if person_key is not None:
        out.append(f"person_key = {value(person_key)}   # inferred: the identifier column; check that it identifies "
                   f"a person (the same person, the same key)")
    out += [
        'policy_preset = "strict"   # inferred: a cautious start (k = 20, counts rounded to 10)',
        f"[datasets.{key(name)}.policy]",
        f"receivers = [{value(owner)}]   # inferred: the owner only; add the parties that may learn results",
        "require_approval = true   # inferred: every plan needs the owner's signed approval",
        f"[datasets.{key(name)}.columns]",
    ]
    for c in columns:
        out += textwrap.wrap(f"{key(c.name)}: inferred: " + "; ".join(c.notes), 110, initial_indent="# ",
                             subsequent_indent="#   ", break_on_hyphens=False)
        if c.column is None:
            out.append(f"# {key(c.name)} is not declared (see above)")
        else:
            out.append(f"{key(c.name)} = {inline(c.column)}")
    if not declared:
        out.append("# no column could be declared: the dataset needs at least one (write it by hand)")
    return "\n".join(out) + "\n"


__all__ = ["InferOptions", "Inferred", "infer_dataset", "infer_source"]
