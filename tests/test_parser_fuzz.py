"""Robustness: parse() fails only with DiagnosticError, check() never raises, every error has a span."""
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.check.checker import check
from insightql.compiler.codes import CODES
from insightql.compiler.diagnostics import DiagnosticError, Source
from insightql.compiler.syntax.formatter import format_query
from insightql.compiler.syntax.parser import parse

from iq_strategies import catalog_queries, queries, token_soup
from tiers import examples

CATALOG = load_catalog(Path(__file__).parent / "corpus" / "catalog.toml")
FUZZ = settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_AST = settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _front_end(text: str):
    """Parse and check text; assert the contract every caller relies on."""
    src = Source("<fuzz>", text)
    try:
        q = parse(text, "<fuzz>")
    except DiagnosticError as e:
        assert e.diagnostics, "a DiagnosticError must carry at least one diagnostic"
        for d in e.diagnostics:
            assert d.code in CODES and d.code < "IQ200", d.code
            assert d.span is not None and 0 <= d.span.start <= d.span.end <= len(text)
            d.render()
        return None
    _, diags = check(CATALOG, q, src)
    starts = [d.span.start for d in diags]
    assert starts == sorted(starts), "diagnostics are sorted by position"
    for d in diags:
        assert d.span is not None, f"{d.code} {d.message} has no span"
        assert 0 <= d.span.start <= d.span.end <= len(text)
        assert d.source is src
        d.render()
    return q


@FUZZ
@given(st.binary(max_size=200))
@example(b"\xff\xfe")
@example(b"SELECT")
def test_random_bytes(data):
    _front_end(data.decode("utf-8", errors="replace"))
    _front_end(data.decode("latin-1"))


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text):
    _front_end(text)


@FUZZ
@given(token_soup)
@example("SELECT " + "NOT " * 500 + "TRUE FROM police_victims")
@example("SELECT 1 FROM t LIMIT " + "9" * 5000)
@example("SELECT " + "9" * 5000 + " FROM t")
def test_token_soup(text):
    _front_end(text)


@FUZZ
@given(st.sampled_from(["SELECT COUNT(*) FROM police_victims WHERE ", "SELECT ", "SELECT prs_Gender, COUNT(*) "
                        "FROM police_victims GROUP BY "]), token_soup)
def test_token_soup_after_a_prefix(prefix, soup):
    _front_end(prefix + soup)


@FUZZ_AST
@given(catalog_queries(CATALOG))
def test_check_never_raises_on_parsed_catalog_queries(q):
    text = format_query(q)
    assert _front_end(text) == q


@FUZZ_AST
@given(queries())
def test_check_never_raises_on_any_parsed_query(q):
    assert _front_end(format_query(q)) == q


@FUZZ_AST
@given(catalog_queries(CATALOG))
def test_check_never_raises_without_spans(q):
    """Hand-built ASTs (no spans, e.g. from other tools) are checked without crashing."""
    check(CATALOG, q)
