"""Stage 1: source text -> AST (`parse`). Syntax errors become IQ1xx diagnostics."""
from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, \
    v_args

from insightql.compiler.syntax import ast as A
from insightql.compiler.diagnostics import Diagnostic, DiagnosticError, Source, Span

MAX_DEPTH = 128
"""Deepest syntax tree `parse` accepts; deeper input gets IQ107 (keeps every stage's recursion bounded)."""
MAX_INT = 2 ** 63 - 1
MAX_DECIMAL_DIGITS = 18
"""Number literals: integers up to MAX_INT; decimals up to 18 digits before and after the point."""

_TOKEN_NAMES = {
    "IDENT": "a name", "INT": "an integer", "DECIMAL": "a decimal number", "STRING": "a 'string'",
    "COMP_OP": "a comparison", "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "MUL_OP": "'/' or '%'",
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "DOT": "'.'", "SEMICOLON": "';'", "AT": "'@'",
    "LSQB": "'['", "RSQB": "']'", "$END": "end of input",
}


KEYWORDS = frozenset(
    "select from where group by having order limit as and or not in between is null case when then else end "
    "join inner left outer on union all distinct asc desc true false date filter over partition".split())
"""Reserved words (case-insensitive); they must match the keyword terminals in grammar.lark."""


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The LALR parser. Building its tables takes about half a second, which every `iq` command
    and every party process would pay; Lark keeps them in a cache file that it checks against the
    grammar, options and Lark version. The file is a pickle, so it lives in this user's own cache
    folder (mode 0700), never in a shared temporary folder; without one, no cache."""
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    options = dict(start="query", parser="lalr", lexer="basic", propagate_positions=True, maybe_placeholders=True)
    cache = _cache_file()
    if cache is not None:
        try:
            return Lark(grammar, cache=str(cache), **options)
        except OSError:
            pass
    return Lark(grammar, **options)


def _cache_file() -> Path | None:
    if os.environ.get("IQ_NO_PARSER_CACHE"):
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "insightql"
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        if base.stat().st_uid != os.getuid() or base.stat().st_mode & 0o022:
            return None  # someone else's or writable by others: do not load pickles from it
    except (OSError, AttributeError):
        return None
    return base / "grammar.lark.cache"


def _tok_span(t: Token) -> Span:
    return Span(t.start_pos, t.end_pos)


def _ident(t: Token) -> str:
    s = str(t)
    return s[1:-1].replace('""', '"') if s.startswith('"') else s


def _expected(names) -> str:
    shown = sorted({_TOKEN_NAMES.get(n, n if n.isupper() and len(n) > 1 else repr(n)) for n in names})
    return ", ".join(shown[:12]) + (", ..." if len(shown) > 12 else "")


@v_args(meta=True)
class _ToAst(Transformer):
    """Builds AST nodes; does no checking beyond shape (that is the checker's job).

    Bad literals (dates, numbers out of range) are collected in `diags` and replaced by NULL,
    so one parse reports all of them.
    """

    def __init__(self):
        super().__init__()
        self.diags: list[Diagnostic] = []

    def _span(self, meta) -> Span | None:
        return Span(meta.start_pos, meta.end_pos) if not meta.empty else None

    def query(self, meta, items):
        anns = tuple(i for i in items if isinstance(i, A.Annotation))
        sel = next(i for i in items if isinstance(i, A.Query))
        return A.Query(anns, sel.select, sel.source, sel.unions, sel.joins, sel.where, sel.group_by,
                       sel.having, sel.order_by, sel.limit, span=self._span(meta))

    def annotation(self, meta, items):
        return A.Annotation(_ident(items[0]).lower(), items[1], span=self._span(meta))

    def ann_string(self, meta, items):
        return _unquote(items[0])

    def ann_idents(self, meta, items):
        return tuple(_ident(t) for t in items)

    def ann_number(self, meta, items):  # `@epsilon 0.5`: kept exact (spec/privacy.md)
        return Decimal(str(items[0]))

    def select_stmt(self, meta, items):
        parts = {"select": (), "from": None, "where": None, "group": (), "having": None,
                 "order": (), "limit": None}
        for it in items:
            if isinstance(it, tuple) and it and it[0] in parts:
                parts[it[0]] = it[1]
        src, unions, joins = parts["from"]
        return A.Query((), parts["select"], src, unions, joins, parts["where"], parts["group"],
                       parts["having"], parts["order"], parts["limit"], span=self._span(meta))

    def select_list(self, meta, items):
        return ("select", tuple(items))

    def select_item(self, meta, items):
        items = [i for i in items if not (isinstance(i, Token) and i.type == "AS")]
        alias = _ident(items[1]) if len(items) > 1 and items[1] is not None else None
        return A.SelectItem(items[0], alias, span=self._span(meta))

    def select_star(self, meta, items):
        return A.SelectItem(None, None, span=self._span(meta))

    def from_clause(self, meta, items):
        src = items[1]
        unions = tuple(i[1] for i in items[2:] if i[0] == "union")
        joins = tuple(i[1] for i in items[2:] if i[0] == "join")
        return ("from", (src, unions, joins))

    def union_part(self, meta, items):
        return ("union", items[-1])

    def join_part(self, meta, items):
        kind, table, on = items[0], items[2], items[4]
        return ("join", A.Join(kind, table, on, span=self._span(meta)))

    def inner_join(self, meta, items):
        return "inner"

    def left_join(self, meta, items):
        return "left"

    def table_ref(self, meta, items):
        names = [_ident(t) for t in items if t is not None and t.type == "IDENT"]
        return A.TableRef(names[0], names[1] if len(names) > 1 else None, span=self._span(meta))

    def where_clause(self, meta, items):
        return ("where", items[1])

    def group_clause(self, meta, items):
        return ("group", tuple(items[2:]))

    def having_clause(self, meta, items):
        return ("having", items[1])

    def order_clause(self, meta, items):
        return ("order", tuple(items[2:]))

    def order_item(self, meta, items):
        desc = len(items) > 1 and items[1] is not None and items[1].type == "DESC"
        return A.OrderItem(items[0], desc, span=self._span(meta))

    def limit_clause(self, meta, items):
        value = self.int_lit(meta, [items[1]]).value
        return ("limit", value if value is not None else 0)

    def or_(self, meta, items):
        return A.BinOp("or", items[0], items[2], span=self._span(meta))

    def and_(self, meta, items):
        return A.BinOp("and", items[0], items[2], span=self._span(meta))

    def not_(self, meta, items):
        return A.UnaryOp("not", items[1], span=self._span(meta))

    def neg(self, meta, items):
        return A.UnaryOp("neg", items[1], span=self._span(meta))

    def compare(self, meta, items):
        op = str(items[1])
        op = "<>" if op == "!=" else op
        return A.BinOp(op, items[0], items[2], span=self._span(meta))

    def binop(self, meta, items):
        return A.BinOp(str(items[1]), items[0], items[2], span=self._span(meta))

    def in_list(self, meta, items):
        negated = isinstance(items[1], Token) and items[1].type == "NOT"
        rest = [i for i in items[1:] if not (isinstance(i, Token) and i.type in ("NOT", "IN"))]
        return A.InList(items[0], tuple(rest), negated, span=self._span(meta))

    def between(self, meta, items):
        negated = isinstance(items[1], Token) and items[1].type == "NOT"
        rest = [i for i in items[1:] if not (isinstance(i, Token) and i.type in ("NOT", "BETWEEN", "AND"))]
        return A.Between(items[0], rest[0], rest[1], negated, span=self._span(meta))

    def is_null(self, meta, items):
        negated = any(isinstance(i, Token) and i.type == "NOT" for i in items[1:])
        return A.IsNull(items[0], negated, span=self._span(meta))

    def column_ref(self, meta, items):
        names = [_ident(t) for t in items if t is not None]
        if len(names) == 2:
            return A.ColumnRef(names[0], names[1], span=self._span(meta))
        return A.ColumnRef(None, names[0], span=self._span(meta))

    def func_call(self, meta, items):
        name = _ident(items[0]).lower()
        distinct = any(isinstance(a, Token) and a.type == "DISTINCT" for a in items[1:])
        args = tuple(a for a in items[1:] if a is not None and not isinstance(a, (Token, tuple)))
        return A.FuncCall(name, args, distinct, False, *_clauses(items), span=self._span(meta))

    def func_star(self, meta, items):
        return A.FuncCall(_ident(items[0]).lower(), (), False, True, *_clauses(items), span=self._span(meta))

    def filter_clause(self, meta, items):
        return ("filter", items[2])

    def over_clause(self, meta, items):
        return ("over", tuple(i for i in items if not isinstance(i, Token)))

    def case_expr(self, meta, items):
        whens = tuple(i for i in items if isinstance(i, tuple))
        else_ = None
        for k, i in enumerate(items):
            if isinstance(i, Token) and i.type == "ELSE":
                else_ = items[k + 1]
        return A.Case(whens, else_, span=self._span(meta))

    def when_clause(self, meta, items):
        return (items[1], items[3])

    def list_literal(self, meta, items):
        return A.ListLiteral(tuple(i for i in items if i is not None), span=self._span(meta))

    def _bad(self, code: str, msg: str, span: Span, hint: str) -> A.Literal:
        self.diags.append(Diagnostic(code, msg, span, [hint]))
        return A.Literal(None, "null", span=span)

    def int_lit(self, meta, items):
        digits = str(items[0]).lstrip("0")
        value = int(digits or "0") if len(digits) <= len(str(MAX_INT)) else MAX_INT + 1  # int() caps at 4300 digits
        if value > MAX_INT:
            return self._bad("IQ106", f"integer literal {_short(items[0])} is out of range", _tok_span(items[0]),
                             f"integer literals go up to {MAX_INT}")
        return A.Literal(value, "int", span=_tok_span(items[0]))

    def decimal_lit(self, meta, items):
        whole, frac = str(items[0]).split(".")
        if len(whole.lstrip("0")) > MAX_DECIMAL_DIGITS or len(frac) > MAX_DECIMAL_DIGITS:
            return self._bad("IQ106", f"decimal literal {_short(items[0])} has too many digits", _tok_span(items[0]),
                             f"decimal literals have at most {MAX_DECIMAL_DIGITS} digits before and after the point")
        return A.Literal(Decimal(str(items[0])), "decimal", span=_tok_span(items[0]))

    def string_lit(self, meta, items):
        return A.Literal(_unquote(items[0]), "string", span=_tok_span(items[0]))

    def true_lit(self, meta, items):
        return A.Literal(True, "bool", span=_tok_span(items[0]))

    def false_lit(self, meta, items):
        return A.Literal(False, "bool", span=_tok_span(items[0]))

    def null_lit(self, meta, items):
        return A.Literal(None, "null", span=_tok_span(items[0]))

    def date_lit(self, meta, items):
        text = _unquote(items[1])
        try:
            if not _ISO_DATE.fullmatch(text):
                raise ValueError(text)
            value = dt.date.fromisoformat(text)
        except ValueError:
            return self._bad("IQ105", f"invalid date literal '{_short(text)}'", _tok_span(items[1]),
                             "write dates as DATE 'YYYY-MM-DD', e.g. DATE '2024-01-31'")
        return A.Literal(value, "date", span=Span(items[0].start_pos, items[1].end_pos))


def _clauses(items) -> tuple:
    """(FILTER condition or None, OVER (PARTITION BY ...) expressions or None) of a call."""
    tagged = dict(a for a in items if isinstance(a, tuple))
    return tagged.get("filter"), tagged.get("over")


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _short(text, limit: int = 24) -> str:
    s = str(text)
    return s if len(s) <= limit else s[:limit] + "..."


def _unquote(t) -> str:
    s = str(t)
    return s[1:-1].replace("''", "'")


def parse(text: str, name: str = "<input>") -> A.Query:
    """Parse one query; raise DiagnosticError with IQ1xx diagnostics on bad syntax."""
    src = Source(name, text)
    if text.startswith("\ufeff"):
        raise DiagnosticError([Diagnostic("IQ109", "the file starts with a byte-order mark", Span(0, 1),
                                          ["save it as UTF-8 without a byte-order mark (BOM)"], source=src)])
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        raise DiagnosticError([_syntax_diagnostic(e, src)]) from None
    deep = _too_deep(tree)
    if deep is not None:
        raise DiagnosticError([Diagnostic("IQ107", f"the query is nested more than {MAX_DEPTH} levels deep", deep,
                                          ["split the expression, or use IN (...) instead of long OR chains"],
                                          source=src)])
    builder = _ToAst()
    query = builder.transform(tree)
    if builder.diags:
        for d in builder.diags:
            d.source = src
        raise DiagnosticError(sorted(builder.diags, key=lambda d: d.span.start))
    return query


def _too_deep(tree: Tree) -> Span | None:
    """The span of the first node deeper than MAX_DEPTH, found without recursion."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return Span(node.meta.start_pos, node.meta.end_pos) if not node.meta.empty else Span(0, 0)
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))
    return None


def _syntax_diagnostic(e: UnexpectedInput, src: Source) -> Diagnostic:
    if isinstance(e, UnexpectedCharacters):
        ch = src.text[e.pos_in_stream] if e.pos_in_stream < len(src.text) else ""
        hints = []
        if ch == '"':
            hints.append("this name is not closed on its line; double quotes are for names, strings use 'single quotes'")
        elif ch == "'":
            hints.append("this string is not closed on its line")
        elif ch == "#":
            hints.append("comments start with --")
        elif ch.isalnum():
            hints.append("names with characters other than ASCII letters, digits and _ go in double quotes")
        else:
            hints.append("operators are + - * / %, comparisons = <> != < <= > >=, and AND, OR, NOT")
        return Diagnostic("IQ101", f"unexpected character {ch!r}", Span(e.pos_in_stream, e.pos_in_stream + 1),
                          hints, source=src)
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        end = len(src.text.rstrip())
        return Diagnostic("IQ102", "the query ends too early", Span(end, end),
                          _misspelt(src.text, end, e.expected) + [f"expected {_expected(e.expected)}"], source=src)
    tok = e.token
    hints = _misspelt(src.text, tok.end_pos or tok.start_pos, e.expected) + [f"expected {_expected(e.expected)}"]
    before = src.text[:tok.start_pos].rstrip()
    if tok.type == "IDENT" and "FROM" in e.expected:
        hints.insert(0, "is a comma missing between two SELECT items, or FROM?")
    if before.endswith(",") and tok.type in ("FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "RPAR"):
        hints.insert(0, f"remove the comma before {tok}")
    elif str(tok).lower() in KEYWORDS and "IDENT" in e.expected:
        hints.append(f"'{tok}' is a keyword; to use it as a name, write it in double quotes: \"{tok}\"")
    return Diagnostic("IQ103", f"unexpected {str(tok)!r}", Span(tok.start_pos, tok.end_pos or tok.start_pos + len(tok)),
                      hints, source=src)


_WORD = re.compile(r"[A-Za-z_]+")


def _misspelt(text: str, upto: int, expected) -> list[str]:
    """`did you mean FROM?` when the word at the error, or the word before it (read as an alias),
    is close to a keyword: the expected ones first, then any."""
    words = list(_WORD.finditer(text, 0, upto))[-2:]
    wanted = sorted(n.lower() for n in expected if n.lower() in KEYWORDS)
    for m in reversed(words):
        word = m[0].lower()
        if word in KEYWORDS:
            continue
        close = difflib.get_close_matches(word, wanted, 1, 0.75) or difflib.get_close_matches(word, sorted(KEYWORDS), 1, 0.8)
        if close:
            return [f"did you mean {close[0].upper()} instead of '{m[0]}'?"]
    return []
