"""What the language server answers, without the protocol library: a diagnostic's LSP range,
completion candidates at a cursor and the hover text of a word, from the document's text and its
catalog. Offsets are indexes into the Python string (as the compiler's spans are); LSP positions
are 0-based lines and UTF-16 code units (the protocol's default encoding)."""
from __future__ import annotations

import re
from dataclasses import dataclass

from insightql.compiler.check.catalog import Catalog, Dataset
from insightql.compiler.diagnostics import Diagnostic
from insightql.compiler.syntax.parser import KEYWORDS
from insightql.stdlib.aggregates import AGGREGATES
from insightql.stdlib.functions import FUNCTIONS


def position(text: str, offset: int) -> tuple[int, int]:
    """(line, character) of an offset: 0-based, the character in UTF-16 code units."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    return line, len(text[start:offset].encode("utf-16-le")) // 2


def offset(text: str, line: int, character: int) -> int:
    """The offset of an LSP (line, UTF-16 character) position; past the end of a line, its end."""
    start = 0
    for _ in range(line):
        nl = text.find("\n", start)
        if nl < 0:
            return len(text)
        start = nl + 1
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    units = 0
    for i in range(start, end):
        if units >= character:
            return i
        units += 2 if ord(text[i]) > 0xFFFF else 1
    return end


def diagnostic_range(text: str, d: Diagnostic) -> tuple[tuple[int, int], tuple[int, int]]:
    """The LSP range of a diagnostic: its span, or the first character when it has none; an empty
    span is widened to one character so editors draw it."""
    if d.span is None:
        return (0, 0), (0, 1 if text else 0)
    start, end = d.span.start, max(d.span.end, d.span.start)
    if end == start and start < len(text) and text[start] != "\n":
        end = start + 1
    return position(text, start), position(text, end)


def diagnostic_message(d: Diagnostic) -> str:
    """The message with its hints, one a line (editors show the message alone)."""
    return "\n".join([d.message] + [f"hint: {h}" for h in d.hints])


# -------------------------------------------------------------------- what the document reads

_NAME = r'(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\n]|"")+")'
_TABLE = re.compile(r"\b(?:from|join|union\s+all)\s+(" + _NAME + ")", re.I)
_COMMENT_OR_STRING = re.compile(r"--[^\n]*|'(?:[^'\n]|'')*'?")  # a string open at the end included
_CLOSED = re.compile(r"--[^\n]*|'(?:[^'\n]|'')*'")


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _code(text: str) -> str:
    """The text with comments and string literals blanked (same length), so regexes see code only."""
    return _COMMENT_OR_STRING.sub(lambda m: " " * len(m[0]), text)


def datasets_in(text: str, catalog: Catalog) -> list[str]:
    """The catalog's datasets the document reads (after FROM, JOIN or UNION ALL), in order."""
    names = [_unquote(m[1]) for m in _TABLE.finditer(_code(text))]
    return list(dict.fromkeys(n for n in names if n in catalog.datasets))


def _columns(text: str, catalog: Catalog) -> list[tuple[str, str, Dataset]]:
    """(column, dataset name, dataset) of the datasets the document reads, or of every dataset."""
    names = datasets_in(text, catalog) or list(catalog.datasets)
    return [(c, n, catalog.datasets[n]) for n in names for c in catalog.datasets[n].columns]


# -------------------------------------------------------------------- completion

@dataclass(frozen=True)
class Candidate:
    label: str
    kind: str  # keyword | dataset | column | function | value
    detail: str = ""
    insert: str | None = None


_AFTER_TABLE_WORD = re.compile(r"\b(?:from|join|union\s+all)\s+[A-Za-z0-9_]*$", re.I)
_IN_CATEGORY = re.compile(
    r"(" + _NAME + r")\s*(?:=|<>|!=|\bnot\s+in\s*\(|\bin\s*\()(?:\s*'(?:[^'\n]|'')*'\s*,)*\s*'((?:[^'\n]|'')*)$", re.I)


def _ident(name: str) -> str:
    """A name as the query must write it: double-quoted when it is a keyword or not a plain name."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.lower() not in KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def _type_words(col) -> str:
    return col.type + (", nullable" if col.nullable else "")


def complete(text: str, at: int, catalog: Catalog | None) -> list[Candidate]:
    """Completion candidates at offset `at`: inside a string compared with a category column,
    that column's values; after FROM / JOIN / UNION ALL, the datasets; else keywords, functions,
    aggregates and the columns of the datasets the document reads."""
    before = text[:at]
    if catalog is not None and (m := _IN_CATEGORY.search(before)):
        column = _unquote(m[1].split(".")[-1])
        values: dict[str, None] = {}
        for name, _, ds in _columns(text, catalog):
            col = ds.columns[name]
            if name == column and col.type == "category":
                values.update(dict.fromkeys(col.domain))
        if values:
            return [Candidate(v, "value", f"{column} value", v.replace("'", "''")) for v in values]
    if "'" in _CLOSED.sub("", before.rsplit("\n", 1)[-1]):
        return []  # inside a string that is not a category value
    code = _code(before)
    if _AFTER_TABLE_WORD.search(code):
        if catalog is None:
            return []
        return [Candidate(n, "dataset", f"{ds.owner}: {ds.description}".rstrip(": "), _ident(n))
                for n, ds in catalog.datasets.items()]
    out = [Candidate(k.upper(), "keyword") for k in sorted(KEYWORDS)]
    out += [Candidate(f.name, "function", f.signature, f.name) for f in FUNCTIONS.values()]
    out += [Candidate(a.name.upper(), "function", f"{a.signature}: {a.result}", a.name.upper())
            for a in AGGREGATES.values()]
    if catalog is not None:
        seen: set[str] = set()
        for name, ds_name, ds in _columns(text, catalog):
            if name not in seen:
                seen.add(name)
                out.append(Candidate(name, "column", f"{_type_words(ds.columns[name])} ({ds_name})", _ident(name)))
    return out


# -------------------------------------------------------------------- hover

def word_at(text: str, at: int) -> str | None:
    """The name under offset `at` (a plain or double-quoted identifier), unquoted."""
    for m in re.finditer(_NAME, text[max(0, at - 200):at + 200]):
        start = m.start() + max(0, at - 200)
        if start <= at <= start + len(m[0]):
            return _unquote(m[0])
    return None


def _policy_lines(name: str, ds: Dataset) -> list[str]:
    p = ds.policy
    lines = [f"**policy of `{name}`** (owner {ds.owner})",
             f"- groups of at least k = {p.min_group_size}" + (f", person key `{ds.person_key}`" if ds.person_key else ""),
             f"- receivers: {', '.join(ds.receivers())}"]
    if p.purposes:
        lines.append(f"- purposes: {', '.join(p.purposes)}")
    if p.round_counts_to > 1:
        lines.append(f"- counts rounded to {p.round_counts_to}")
    if p.dominance is not None:
        lines.append(f"- dominance: the {p.dominance.n} largest at most {p.dominance.k:g}% of a sum")
    lines.append(f"- at most {p.max_groups} groups; row counts {'may' if p.allow_row_counts else 'may not'} be revealed")
    if p.require_approval:
        lines.append("- plans need signed approvals")
    return lines


def _column_hover(name: str, ds_name: str, ds: Dataset) -> str:
    col = ds.columns[name]
    lines = [f"**{name}**: {_type_words(col)}, {col.role} (dataset `{ds_name}`)"]
    if col.description:
        lines.append(col.description)
    lines.append("")
    if col.type == "category":
        shown = ", ".join(col.domain[:20]) + (f", ... ({len(col.domain)} values)" if len(col.domain) > 20 else "")
        lines.append(f"- domain: {shown}")
    elif col.type in ("integer", "decimal", "date"):
        lines.append(f"- range: {col.min} to {col.max}")
    if getattr(col, "clamp", None):
        lines.append(f"- clamped to {col.clamp[0]} .. {col.clamp[1]}")
    lines.append(f"- allowed aggregates: {', '.join(a.upper() for a in col.allowed_aggregates())}")
    if not col.where:
        lines.append("- may not be used in WHERE")
    return "\n".join(lines + [""] + _policy_lines(ds_name, ds))


def hover(text: str, at: int, catalog: Catalog | None) -> str | None:
    """Markdown for the name at offset `at`: a column (type, domain, role, allowed aggregates and
    its dataset's policy), a dataset (owner, description, policy), a function or an aggregate."""
    word = word_at(text, at)
    if word is None:
        return None
    if catalog is not None:
        if word in catalog.datasets:
            ds = catalog.datasets[word]
            head = [f"**{word}**: dataset of {ds.owner}, up to {ds.max_rows} rows"] + ([ds.description] if ds.description else [])
            return "\n".join(head + [""] + _policy_lines(word, ds))
        parts = [_column_hover(c, n, ds) for c, n, ds in _columns(text, catalog) if c == word]
        if parts:
            return "\n\n---\n\n".join(parts)
    if (f := FUNCTIONS.get(word.lower())) is not None:
        return f"**{f.signature}**\n\n{f.doc}"
    if (a := AGGREGATES.get(word.lower())) is not None:
        return f"**{a.signature}**: {a.result}\n\n{a.argument}"
    return None
