"""format_query is the inverse of parse (up to spans) and a fixed point on its own output;
format_source (what `iq fmt` writes) keeps every comment, and every shipped query is canonical."""
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insightql.compiler.syntax import ast as A
from insightql.compiler.diagnostics import DiagnosticError
from insightql.compiler.syntax.comments import format_source
from insightql.compiler.syntax.formatter import format_query, ident
from insightql.compiler.syntax.parser import parse

from iq_strategies import expressions, queries
from tiers import examples

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("valid/*.iq")) + sorted(CORPUS.glob("invalid/*.iq"))


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries())
def test_random_query_round_trips(q):
    text = format_query(q)
    assert parse(text) == q, text
    assert format_query(parse(text)) == text


@settings(max_examples=examples(300), deadline=None)
@given(expressions())
def test_random_expression_round_trips(e):
    q = A.Query((), (A.SelectItem(e),), A.TableRef("t"))
    assert parse(format_query(q)).select[0].expr == e


def _parsable(path: Path):
    try:
        return parse(path.read_text(), str(path))
    except DiagnosticError:
        return None


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_formatting_is_idempotent(path):
    q = _parsable(path)
    if q is None:
        pytest.skip("a syntax-error case")
    once = format_query(q)
    assert parse(once) == q
    assert format_query(parse(once)) == once


def test_canonical_layout():
    q = parse("@purpose research select prs_Gender g, count(*) n from police_victims "
              "where not (a = 1 or b = 2) and c - (d - e) > 0 group by prs_Gender order by n desc limit 5;")
    assert format_query(q) == (
        "@purpose research\n"
        "SELECT prs_Gender AS g, COUNT(*) AS n\n"
        "FROM police_victims\n"
        "WHERE NOT (a = 1 OR b = 2) AND c - (d - e) > 0\n"
        "GROUP BY prs_Gender\n"
        "ORDER BY n DESC\n"
        "LIMIT 5;\n")


@pytest.mark.parametrize("source, expected", [
    ("SELECT - -x FROM t", "-(-x)"),            # `--` would start a comment
    ("SELECT (a = b) = c FROM t", "(a = b) = c"),
    ("SELECT a - (b + c) FROM t", "a - (b + c)"),
    ("SELECT (a * b) / c FROM t", "a * b / c"),
    ("SELECT NOT (NOT a) FROM t", "NOT NOT a"),
    ("SELECT 'it''s' FROM t", "'it''s'"),
    ("SELECT 0.0000001 FROM t", "0.0000001"),
    ('SELECT "date", "a""b", "x y" FROM t', '"date", "a""b", "x y"'),
])
def test_parentheses_and_quoting(source, expected):
    assert format_query(parse(source)).splitlines()[0] == "SELECT " + expected


def test_ident_quotes_keywords_and_odd_names():
    assert ident("prs_Age") == "prs_Age"
    assert ident("Select") == '"Select"'
    assert ident("été") == '"été"'
    assert ident('say "hi"') == '"say ""hi"""'


# --- comments (format_source) ---------------------------------------------------------------

COMMENTED = """\
-- header: what this asks

@purpose research  -- why we ask
SELECT prs_Gender,       -- the group
       -- a comment between items
       COUNT(*) AS n     -- how many
FROM police_victims      -- police data only
-- a comment line between clauses
WHERE prs_Age >= 18 -- adults
  -- inside the condition
  AND exp_Type <> 'x' -- second on the line
GROUP BY prs_Gender;     -- done
-- trailer
"""


def _comments(text: str) -> list[str]:
    from insightql.compiler.syntax.parser import _parser

    return [str(t).rstrip() for t in _parser().lex(text, dont_ignore=True) if t.type == "COMMENT"]


def test_formatting_keeps_every_comment():
    out = format_source(COMMENTED)
    assert sorted(_comments(out)) == sorted(_comments(COMMENTED))
    assert parse(out) == parse(COMMENTED)
    assert format_source(out) == out
    assert out == """\
-- header: what this asks

@purpose research  -- why we ask
SELECT
    prs_Gender,  -- the group
    -- a comment between items
    COUNT(*) AS n  -- how many
FROM police_victims  -- police data only
-- a comment line between clauses
-- inside the condition
WHERE prs_Age >= 18 AND exp_Type <> 'x'  -- adults
-- second on the line
GROUP BY prs_Gender;  -- done
-- trailer
"""


def test_fmt_off_leaves_the_file_as_written():
    text = "-- fmt: off (shows lower-case keywords)\nselect a from t\n"
    assert format_source(text) == text


def _with_comments(text: str, places: list[int], own: list[bool]) -> str:
    """text with a comment after some lines and on a line of its own before others."""
    lines = text[:-1].split("\n")  # not splitlines(): a quoted name may hold a \r
    out = []
    for k, line in enumerate(lines):
        if k in places and own[places.index(k)]:
            out.append(f"-- own {k}")
        out.append(line + (f" -- after {k}" if k in places and not own[places.index(k)] else ""))
    return "\n".join(out) + "\n"


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries(), st.data())
def test_random_commented_query_keeps_comments_and_is_idempotent(q, data):
    text = format_query(q)
    n = text.count("\n")
    places = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=4))
    own = data.draw(st.lists(st.booleans(), min_size=len(places), max_size=len(places)))
    source = _with_comments(text, places, own)
    out = format_source(source)
    assert parse(out) == q, out
    assert sorted(_comments(out)) == sorted(_comments(source)), out
    assert format_source(out) == out


# --- the project's own queries are canonical (what `iq fmt --check` checks in CI) --------------

_SPEC_BLOCK = re.compile(r"<!-- (?:expect: IQ\d{3}|valid)(?:; catalog: \S+)? -->\n```iq\n(.*?)```\n", re.S)
SHIPPED = sorted((ROOT / "examples").rglob("*.iq")) + sorted(CORPUS.glob("valid/*.iq"))
SPEC_QUERIES = [(page.name, k, text) for page in sorted((ROOT / "spec").glob("*.md"))
                for k, text in enumerate(_SPEC_BLOCK.findall(page.read_text(encoding="utf-8")))]


def test_iq_fmt_check_passes_on_every_shipped_query(capsys):
    from insightql.runtime.cli import main

    paths = [str(ROOT / "examples"), str(CORPUS / "valid")]
    assert main(["fmt", "--check", *paths]) == 0, capsys.readouterr()


@pytest.mark.parametrize("page, k, text", SPEC_QUERIES, ids=lambda v: str(v)[:20] if isinstance(v, str) else None)
def test_spec_queries_are_canonical(page, k, text):
    try:
        parse(text)
    except DiagnosticError:
        pytest.skip("a syntax-error example")
    assert format_source(text) == text, f"spec/{page} query {k} is not canonical:\n{format_source(text)}"
