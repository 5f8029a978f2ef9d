"""The audit report's document (sections of paragraphs and tables, built by report.py) as a self-contained HTML page or as Markdown.

Every value from a ledger is text written by someone else (a query name, a signer's name, a legal
basis, an error message): in HTML it is escaped with ``html.escape`` (quotes too) and the page has
no script, no external resource and a Content-Security-Policy that forbids both; in Markdown each
cell escapes the characters Markdown or an HTML-rendering viewer would interpret (``|``, ``<``,
backslash, emphasis and link brackets) and loses its line breaks.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field


@dataclass
class Section:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    status: str = ""  # "ok" | "problem" | "none": how a renderer marks the section


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } .subtitle { color: #555; margin-top: 0; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #d0d0d0; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f2f2f2; white-space: nowrap; }
section.problem h2 { color: #a40000; } section.ok h2::after { content: " \\2713"; color: #1a7f37; }
section.none .notice { background: #fff8e1; border-left: 4px solid #e0a800; padding: 0.5rem 0.8rem; }
td.PROBLEM { color: #a40000; font-weight: bold; white-space: nowrap; }
td.OK { color: #1a7f37; font-weight: bold; white-space: nowrap; }
footer { color: #666; font-size: 0.8rem; margin-top: 3rem; }
"""


def render(doc: Document, fmt: str) -> str:
    if fmt == "html":
        return to_html(doc)
    if fmt == "md":
        return to_markdown(doc)
    raise ValueError(f"unknown report format {fmt!r} (html or md)")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _section_html(sec: Section) -> str:
    cls = f' class="{sec.status}"' if sec.status else ""
    parts = [f"<section{cls}>", f"<h2>{_e(sec.title)}</h2>"]
    notice = ' class="notice"' if sec.status == "none" else ""
    parts += [f"<p{notice}>{_e(p)}</p>" for p in sec.paragraphs]
    if sec.rows:
        parts.append("<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in sec.header) + "</tr></thead><tbody>")
        for row in sec.rows:
            cells = []
            for h, v in zip(sec.header, row):
                status = str(v).split(" ")[0] if h == "status" else ""
                cells.append(f'<td class="{_e(status)}">{_e(v)}</td>' if status else f"<td>{_e(v)}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</section>")
    return "\n".join(parts)


def to_html(doc: Document) -> str:
    body = "\n".join(_section_html(s) for s in doc.sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(doc.title)}</title>
<style>{CSS}</style>
</head>
<body>
<h1>{_e(doc.title)}</h1>
<p class="subtitle">Period: {_e(doc.subtitle)}</p>
{body}
<footer>Written by <code>iq audit report</code> from the parties' hash-chained ledgers (spec/governance.md).
Values are as the ledgers record them; nothing here is a released cell value.</footer>
</body>
</html>
"""


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#!])")


def _m(text) -> str:
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def to_markdown(doc: Document) -> str:
    lines = [f"# {_m(doc.title)}", "", f"Period: {_m(doc.subtitle)}", ""]
    for sec in doc.sections:
        lines += [f"## {_m(sec.title)}", ""]
        for p in sec.paragraphs:
            lines += [("> **Note:** " if sec.status == "none" else "") + _m(p), ""]
        if sec.rows:
            lines.append("| " + " | ".join(_m(h) for h in sec.header) + " |")
            lines.append("|" + "---|" * len(sec.header))
            lines += ["| " + " | ".join(_m(v) for v in row) + " |" for row in sec.rows]
            lines.append("")
    lines.append("Written by `iq audit report` from the parties' hash-chained ledgers (spec/governance.md).")
    return "\n".join(lines) + "\n"
