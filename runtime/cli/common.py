"""What the `iq` subcommand groups share: the usage error (exit code 2), reading a file as text
(unreadable files become IQ109 diagnostics), finding and loading a query's catalog (its errors
located at a line and column), compiling a query (with the differencing guard's ledgers) and
writing a result table."""
from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

from insightql.compiler.check.catalog import find_catalog, load_catalog
from insightql.compiler.diagnostics import Diagnostic, DiagnosticError, Source, Span


class UsageError(Exception):
    pass


class ExamplesFormatter(argparse.HelpFormatter):
    """Help text whose description and epilog keep lines indented by two spaces as written (the
    example command lines) and fill the other lines as paragraphs; an option's name is never broken
    at its hyphen ("--min-" / "count")."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out, para = [], []

        def flush():
            if para:
                out.append(textwrap.fill(" ".join(para), width, initial_indent=indent, subsequent_indent=indent,
                                         break_on_hyphens=False))
                para.clear()
        for line in text.splitlines():
            if line.startswith("  ") or not line.strip():
                flush()
                out.append(indent + line if line.strip() else "")
            else:
                para.append(line.strip())
        flush()
        return "\n".join(out)


def examples(*commands: str) -> dict:
    """Keyword arguments of `add_parser` for an epilog of one or two full example invocations
    (a long one continued on the next line with a backslash, as in a shell)."""
    lines = []
    for command in commands:
        units: list[str] = []  # words; an option with its value is one
        for w in re.findall(r"(?:'[^']*'|\"[^\"]*\"|\S)+", command):
            if units and units[-1].startswith("-") and " " not in units[-1] and not w.startswith("-"):
                units[-1] += " " + w
            else:
                units.append(w)
        line = "  "
        for u in units:
            if len(line) + len(u) > 76 and line.strip():
                lines.append(line + "\\")
                line = "      "
            line += u + " "
        lines.append(line.rstrip())
    return {"formatter_class": ExamplesFormatter,
            "epilog": ("example:\n" if len(commands) == 1 else "examples:\n") + "\n".join(lines)}


def os_words(e: OSError) -> str:
    """An OSError in words, without Python's `[Errno N]`."""
    if isinstance(e, FileNotFoundError):
        return "no such file or folder"
    if isinstance(e, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(e, NotADirectoryError):
        return "is a file, not a folder" if e.filename else "a part of the path is a file, not a folder"
    if isinstance(e, FileExistsError):
        return "already exists"
    if isinstance(e, PermissionError):
        return "permission denied"
    return (e.strerror or type(e).__name__).lower()


def error_words(e: BaseException, path=None) -> str:
    """An error as a sentence people read, never Python's text: an OSError names its file and says
    what in words, a file that is not JSON or not UTF-8 says so with the place (`path`: the file
    being read when the error does not name it)."""
    if isinstance(e, OSError) and e.errno is None and e.args:  # raised with a message of ours
        return str(e)
    if isinstance(e, OSError):
        where = e.filename if e.filename is not None else path
        return f"{where}: {os_words(e)}" if where is not None else os_words(e)
    prefix = f"{path}: " if path is not None else ""
    if isinstance(e, json.JSONDecodeError):
        return f"{prefix}not valid JSON (at line {e.lineno}, column {e.colno})"
    if isinstance(e, UnicodeDecodeError):
        return f"{prefix}not UTF-8 text (byte {e.start + 1})"
    return str(e)


def reading(path, read, *args, **kwargs):
    """`read(path, ...)`, its errors as ValueError in words that name `path` (error_words)."""
    try:
        return read(path, *args, **kwargs)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(error_words(e, path)) from None


def read_source(path: Path) -> str:
    """The UTF-8 text of `path`; DiagnosticError IQ109 when it cannot be read, is not UTF-8 or
    starts with a byte-order mark (the parser reports that one for queries)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DiagnosticError([Diagnostic("IQ109", f"cannot read {path}: {os_words(e)}", source=Source(str(path), ""))])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        shown = data[:e.start].decode("utf-8", errors="replace")
        src = Source(str(path), data.decode("utf-8", errors="replace"))
        raise DiagnosticError([Diagnostic("IQ109", f"the file is not UTF-8 text (byte 0x{data[e.start]:02x})",
                                          Span(len(shown), len(shown) + 1),
                                          ["save it as UTF-8, e.g. `iconv -f latin1 -t utf-8`"], source=src)])
    if text.startswith("\ufeff"):
        raise DiagnosticError([Diagnostic("IQ109", "the file starts with a byte-order mark", Span(0, 1),
                                          ["save it as UTF-8 without a byte-order mark (BOM)"],
                                          source=Source(str(path), text))])
    return text


_TOML_AT = re.compile(r" \(at line (\d+), column (\d+)\)$")


def locate(d: Diagnostic) -> Diagnostic:
    """Give a catalog diagnostic a span: TOML's `(at line L, column C)`, or the key a field error
    names (found key by key along its path), else the first line."""
    text = d.source.text if d.source else ""
    if d.span is not None or not text:
        return d
    offset = 0
    if m := _TOML_AT.search(d.message):
        line, col = int(m[1]), int(m[2])
        starts = [0] + [k + 1 for k, ch in enumerate(text) if ch == "\n"]
        offset = min(starts[min(line, len(starts)) - 1] + col - 1, len(text))
        d.message = d.message[:m.start()]
    elif m := re.match(r"catalog field ([^:]+):", d.message):
        for part in m[1].split("."):
            found = re.compile(r'(?<![\w"])"?' + re.escape(part) + r'"?\s*[=.\]]').search(text, offset)
            if found is None:
                break
            offset = found.start()
    d.span = Span(offset, min(offset + 1, len(text)))
    return d


def load_catalog_file(path: Path):
    """load_catalog with every error as a located diagnostic (IQ001, IQ002, IQ109)."""
    read_source(path)
    try:
        return load_catalog(path)
    except DiagnosticError as e:
        raise DiagnosticError([locate(d) for d in e.diagnostics])


def catalog_path(path: Path, explicit: str | None) -> Path:
    cat_path = Path(explicit) if explicit else find_catalog(path)
    if cat_path is None:
        raise UsageError(f"no catalog.toml found in {path} or a parent folder; pass --catalog FILE")
    try:  # as the user would write it: relative to the working folder when under it
        return cat_path.relative_to(Path.cwd()) if cat_path.is_absolute() else cat_path
    except ValueError:
        return cat_path


def catalog_for(path: Path, explicit: str | None):
    cat_path = catalog_path(path, explicit)
    return load_catalog_file(cat_path), cat_path


def compile_query(path: Path, catalog_arg, ledgers: list[Path] = ()):
    from insightql.compiler.pipeline import compile_source

    catalog, cat_path = catalog_for(path, catalog_arg)
    earlier = None
    if ledgers:  # differencing guard: compare with every release these ledgers record
        from insightql.runtime.governance.party_checks import earlier_releases  # loaded only when there are ledgers
        try:
            earlier = earlier_releases(ledgers)
        except ValueError as e:
            raise UsageError(str(e))
    res = compile_source(read_source(path), str(path), catalog, earlier=earlier)
    for d in res.diagnostics:
        print(d.render(), file=sys.stderr)
    return res, catalog, cat_path


def write_result(table, out: str | None):
    if out is None:
        return
    text = table.to_json() if out.endswith(".json") else table.to_csv()
    Path(out).write_text(text, encoding="utf-8")
