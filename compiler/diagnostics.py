"""One diagnostic type for every stage, with stable codes and four renderings.

Spans are byte offsets into a source; line and column are computed only when rendering,
so every stage can report positions without carrying line tables around.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True)
class Span:
    """Half-open byte range [start, end) in one source file."""

    start: int
    end: int

    def merge(self, other: "Span | None") -> "Span":
        if other is None:
            return self
        return Span(min(self.start, other.start), max(self.end, other.end))


@dataclass
class Source:
    """A named text; turns byte offsets into 1-based line and column numbers."""

    name: str
    text: str

    def line_col(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        line = self.text.count("\n", 0, offset) + 1
        col = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return line, col

    def line_text(self, line: int) -> str:
        lines = self.text.split("\n")
        return lines[line - 1] if 0 < line <= len(lines) else ""


@dataclass
class Diagnostic:
    """A finding: code (IQ1xx syntax, IQ2xx names/types, IQ3xx disclosure, IQ4xx plan,
    IQ5xx data/runtime, IQ9xx internal), severity, message, optional span and hints."""

    code: str
    message: str
    span: Span | None = None
    hints: list[str] = field(default_factory=list)
    severity: Severity = Severity.ERROR
    source: Source | None = None

    def position(self) -> tuple[int, int] | None:
        if self.span is None or self.source is None:
            return None
        return self.source.line_col(self.span.start)

    def to_dict(self) -> dict:
        pos = self.position()
        end = self.source.line_col(self.span.end) if self.span and self.source else None
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.source.name if self.source else None,
            "line": pos[0] if pos else None,
            "column": pos[1] if pos else None,
            "end_line": end[0] if end else None,
            "end_column": end[1] if end else None,
            "hints": list(self.hints),
        }

    def render(self) -> str:
        """`file:line:col: CODE message`, the source line, a caret underline and hints."""
        d = self.to_dict()
        where = d["file"] or "<input>"
        if d["line"] is not None:
            where += f":{d['line']}:{d['column']}"
        out = [f"{where}: {self.code} {self.severity.value}: {self.message}"]
        if d["line"] is not None and self.source is not None:
            text = self.source.line_text(d["line"])
            width = 1
            if d["end_line"] == d["line"]:
                width = max(1, d["end_column"] - d["column"])
            out.append(f"    {text}")
            out.append("    " + " " * (d["column"] - 1) + "^" * min(width, max(1, len(text) - d["column"] + 1)))
        out.extend(f"    hint: {h}" for h in self.hints)
        return "\n".join(out)


class PlanError(Exception):
    """A checked query the planner cannot execute (IQ4xx): one diagnostic."""

    def __init__(self, diag: Diagnostic):
        self.diag = diag
        super().__init__(diag.message)


class DiagnosticError(Exception):
    """Raised when a stage cannot go on; carries every diagnostic found so far."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.render() for d in diagnostics))


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity == Severity.ERROR for d in diagnostics)


def render_json(diagnostics: list[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in diagnostics], indent=2)


def _escape_data(text: str) -> str:
    """A workflow command's message: %, CR and LF escaped (GitHub's toolkit rule)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """A workflow command's property value (file=, title=): also : and , escaped."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(diagnostics: list[Diagnostic]) -> str:
    """GitHub Actions workflow commands, one annotation a finding."""
    lines = []
    for d in diagnostics:
        x = d.to_dict()
        kind = "error" if d.severity == Severity.ERROR else "warning"
        loc = f"file={_escape_property(x['file'] or '<input>')}"
        if x["line"] is not None:
            loc += f",line={x['line']},col={x['column']}"
        msg = _escape_data(d.message + "".join(f" (hint: {h})" for h in d.hints))
        lines.append(f"::{kind} {loc},title={_escape_property(d.code)}::{msg}")
    return "\n".join(lines)


SRCROOT = "%SRCROOT%"


def _artifact(name: str | None, root) -> dict:
    """A SARIF artifactLocation: relative to `root` (uriBaseId %SRCROOT%) when the file is under it."""
    from pathlib import Path
    from urllib.parse import quote

    path = Path(name or "<input>")
    try:
        rel = path.resolve().relative_to(root)
    except ValueError:
        return {"uri": path.resolve().as_uri() if path.is_absolute() else quote(path.as_posix())}
    return {"uri": quote(rel.as_posix()), "uriBaseId": SRCROOT}


def render_sarif(diagnostics: list[Diagnostic], version: str, docs_url: str | None = None, root=None) -> str:
    """SARIF 2.1.0, the format code-scanning dashboards read. File URIs are relative to `root`
    (default: the working folder), each rule has a `helpUri` to its section of the spec."""
    from pathlib import Path

    from insightql.compiler.codes import CODES, DOCS_URL, help_uri

    root = Path(root or Path.cwd()).resolve()
    used = sorted({d.code for d in diagnostics})
    rules = [{"id": c, "shortDescription": {"text": CODES.get(c, c)}, "helpUri": help_uri(c, docs_url or DOCS_URL)}
             for c in used]
    results = []
    for d in diagnostics:
        x = d.to_dict()
        loc = {"physicalLocation": {"artifactLocation": _artifact(x["file"], root)}}
        if x["line"] is not None:
            loc["physicalLocation"]["region"] = {
                "startLine": x["line"], "startColumn": x["column"],
                "endLine": x["end_line"], "endColumn": x["end_column"]}
        results.append({
            "ruleId": d.code,
            "ruleIndex": used.index(d.code),
            "level": "error" if d.severity == Severity.ERROR else "warning",
            "message": {"text": d.message + "".join(f" Hint: {h}" for h in d.hints)},
            "locations": [loc],
        })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "insightql", "version": version, "rules": rules}},
                  "originalUriBaseIds": {SRCROOT: {"uri": root.as_uri() + "/"}},
                  "results": results}],
    }
    return json.dumps(doc, indent=2)
