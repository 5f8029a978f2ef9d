"""format_query is the inverse of parse (up to spans) and a fixed point on its own output."""
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from insightql.compiler.syntax import ast as A
from insightql.compiler.diagnostics import DiagnosticError
from insightql.compiler.syntax.formatter import format_query, ident
from insightql.compiler.syntax.parser import parse

from iq_strategies import expressions, queries

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("valid/*.iq")) + sorted(CORPUS.glob("invalid/*.iq"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries())
def test_random_query_round_trips(q):
    text = format_query(q)
    assert parse(text) == q, text
    assert format_query(parse(text)) == text


@settings(max_examples=300, deadline=None)
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
        "LIMIT 5\n")


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
