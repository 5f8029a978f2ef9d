"""Source text -> canonical text with its comments kept (`format_source`, what `iq fmt` writes).

The formatter works on the AST, which has no comments; here they are read from the token stream
and put back beside the line of the construct they belong to:

* a comment after code on its line stays at the end of that construct's line (`-- why`); a second
  one on the same output line goes on its own line below it;
* a comment on a line of its own goes before the construct that follows it, or, when more of the
  current construct follows (inside a long WHERE), before that construct's line;
* a comment between the items of a SELECT, GROUP BY or ORDER BY list puts the list one item per line;
* blank lines before a construct or an own-line comment are kept, several as one;
* a file with a comment `-- fmt: off` (a reason may follow) is left as written (corpus files that show a spelling the
  canonical form changes: lower-case keywords, quoted plain names, `!=`).

The result parses to the same query as the source, and formatting it again changes nothing
(tests/test_formatter.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from insightql.compiler.syntax import ast as A
from insightql.compiler.syntax.formatter import Line, layout
from insightql.compiler.syntax.parser import _parser, parse

_FMT_OFF = re.compile(r"--\s*fmt: off\b")
_BLANK = re.compile(r"\n[ \t\r\f]*\n")
_CLAUSE_TOKENS = {"select": "SELECT", "from": "FROM", "where": "WHERE", "group": "GROUP", "having": "HAVING",
                  "order": "ORDER", "limit": "LIMIT"}


@dataclass
class _Comment:
    start: int
    text: str
    own_line: bool
    blank_before: bool


@dataclass
class _Slot:
    """The comments that go before one output line and after it."""
    leading: list[_Comment] = field(default_factory=list)
    trailing: _Comment | None = None


def format_source(text: str, name: str = "<input>") -> str:
    """The canonical form of `text` with every comment kept; DiagnosticError on a syntax error."""
    query = parse(text, name)
    tokens = list(_parser().lex(text, dont_ignore=True))
    if any(t.type == "COMMENT" and _FMT_OFF.match(t) for t in tokens):
        return text
    code = [t for t in tokens if t.type not in ("WS", "COMMENT")]
    comments = [_Comment(t.start_pos, str(t).rstrip(), _own_line(text, t.start_pos), _blank_before(text, tokens, k))
                for k, t in enumerate(tokens) if t.type == "COMMENT"]
    anchors = _anchors(query, code)
    lines = layout(query, _split_lists(query, comments))
    starts = [anchors[key] for key, _ in lines]
    slots = [_Slot() for _ in lines]
    at_end: list[_Comment] = []
    for c in comments:
        before = max((k for k, s in enumerate(starts) if s < c.start), default=None)
        after = next((k for k, s in enumerate(starts) if s > c.start), None)
        if not c.own_line and before is not None and slots[before].trailing is None:
            slots[before].trailing = c
            continue
        limit = starts[after] if after is not None else len(text)
        inside = c.own_line and before is not None and any(c.start < t.start_pos < limit for t in code)
        target = before if inside else after
        (slots[target].leading if target is not None else at_end).append(c)
    blank = {k for k in range(len(lines)) if _blank_before_offset(text, tokens, starts[k])}
    out: list[str] = []
    for k, ((key, line), slot) in enumerate(zip(lines, slots)):
        indent = "    " if len(key) == 2 and key[0] in ("select", "group", "order") else ""
        for c in slot.leading:
            _emit(out, indent + c.text, c.blank_before)
        _emit(out, line + (f"  {slot.trailing.text}" if slot.trailing else ""), k in blank)
    for c in at_end:
        _emit(out, c.text, c.blank_before)
    return "\n".join(out) + "\n"


def _emit(out: list[str], line: str, blank: bool) -> None:
    if blank and out and out[-1] != "":
        out.append("")
    out.append(line)


def _own_line(text: str, pos: int) -> bool:
    return text[text.rfind("\n", 0, pos) + 1:pos].strip() == ""


def _blank_before(text: str, tokens, k: int) -> bool:
    """Whether a blank line separates token k from the token before it."""
    prev = next((t for t in reversed(tokens[:k]) if t.type != "WS"), None)
    return prev is not None and bool(_BLANK.search(text, prev.end_pos, tokens[k].start_pos))


def _blank_before_offset(text: str, tokens, pos: int) -> bool:
    k = next(k for k, t in enumerate(tokens) if t.start_pos >= pos)
    return _blank_before(text, tokens, k)


def _anchors(q: A.Query, code) -> dict[tuple, int]:
    """Where each construct of `layout` starts in the source."""
    first = {}
    for t in code:
        first.setdefault(t.type, t.start_pos)
    anchors = {(key,): first[tok] for key, tok in _CLAUSE_TOKENS.items() if tok in first}
    anchors.update({("ann", k): t.start_pos for k, t in enumerate(t for t in code if t == "@")})
    anchors.update({("union", k): t.start_pos for k, t in enumerate(t for t in code if t.type == "UNION")})
    anchors.update({("join", k): j.span.start for k, j in enumerate(q.joins)})
    for key, items in (("select", q.select), ("group", q.group_by), ("order", q.order_by)):
        anchors.update({(key, k): i.span.start for k, i in enumerate(items)})
    return anchors


def _split_lists(q: A.Query, comments: list[_Comment]) -> frozenset[str]:
    """The lists with a comment between their first item's start and their last item's end."""
    split = set()
    for key, items in (("select", q.select), ("group", q.group_by), ("order", q.order_by)):
        if items and any(items[0].span.start < c.start < items[-1].span.end for c in comments):
            split.add(key)
    return frozenset(split)
