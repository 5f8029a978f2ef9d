"""The language corpus: tests/corpus/valid/*.iq check clean, tests/corpus/invalid/*.iq report
exactly the diagnostics their header announces.

Each invalid file starts with one header line per expected diagnostic (code and the line:column
where its span starts), before any other line:

    -- expect: IQ203 at 5:8

Only the front end's codes (IQ1xx syntax, IQ2xx names and types) belong here; the disclosure
corpus (IQ3xx) is tests/corpus/attacks/. Queries use tests/corpus/catalog.toml, or the catalog a
`-- catalog: NAME.toml` header line names (tests/make_golden.py `catalog_of`).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from insightql.compiler.syntax import ast as A
from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.check.checker import check
from insightql.compiler.codes import CODES
from insightql.compiler.diagnostics import DiagnosticError, Source
from insightql.compiler.syntax.parser import parse

from make_golden import catalog_of

CORPUS = Path(__file__).resolve().parent / "corpus"
CATALOG = load_catalog(CORPUS / "catalog.toml")
_CATALOGS: dict[Path, object] = {}


def catalog_for(text: str):
    path = catalog_of(text)
    if path not in _CATALOGS:
        _CATALOGS[path] = load_catalog(path)
    return _CATALOGS[path]
VALID = sorted((CORPUS / "valid").glob("*.iq"))
INVALID = sorted((CORPUS / "invalid").glob("*.iq"))
EXPECT = re.compile(r"-- expect: (IQ\d{3}) at (\d+):(\d+)")


def diagnose(path: Path):
    """(query or None, diagnostics) from parsing and checking one file."""
    text = path.read_text(encoding="utf-8")
    try:
        q = parse(text, path.name)
    except DiagnosticError as e:
        return None, e.diagnostics
    _, diags = check(catalog_for(text), q, Source(path.name, text))
    return q, diags


def expected(path: Path) -> list[tuple[str, int, int]]:
    out = []
    for line in path.read_text(encoding="utf-8").lstrip("\ufeff").splitlines():  # IQ109: a BOM first
        if not line.startswith("--"):
            break
        if m := EXPECT.fullmatch(line.strip()):
            out.append((m[1], int(m[2]), int(m[3])))
        else:
            assert not line.startswith("-- expect"), f"malformed header line: {line!r}"
    return out


def _ids(p: Path) -> str:
    return p.stem


def test_corpus_size():
    assert len(VALID) >= 45
    assert len(INVALID) >= 65


@pytest.mark.parametrize("path", VALID, ids=_ids)
def test_valid_query_checks_clean(path):
    q, diags = diagnose(path)
    assert [d.render() for d in diags] == []
    assert q.annotation("purpose") is not None, "valid corpus queries declare a @purpose"


@pytest.mark.parametrize("path", VALID, ids=_ids)
def test_valid_query_passes_the_disclosure_check(path):
    """Valid queries are also acceptable to the rest of `iq check` (disclosure rules)."""
    pipeline = pytest.importorskip("insightql.compiler.pipeline")
    text = path.read_text(encoding="utf-8")
    res = pipeline.check_source(text, path.name, catalog_for(text))
    assert [d.render() for d in res.diagnostics] == []


@pytest.mark.parametrize("path", INVALID, ids=_ids)
def test_invalid_query_reports_exactly_the_expected_diagnostics(path):
    want = expected(path)
    assert want, "an invalid corpus file must start with `-- expect: CODE at LINE:COL` lines"
    assert all(c in CODES and "IQ100" <= c < "IQ300" for c, _, _ in want), want
    _, diags = diagnose(path)
    got = []
    for d in diags:
        assert d.span is not None and d.source is not None, f"{d.code} has no position"
        got.append((d.code, *d.position()))
    assert sorted(got) == sorted(want), "\n".join(d.render() for d in diags)
    assert got == sorted(got, key=lambda g: (g[1], g[2])), "diagnostics come in source order"


def test_every_front_end_code_has_an_invalid_case():
    covered = {c for p in INVALID for c, _, _ in expected(p)}
    front_end = {c for c in CODES if "IQ100" <= c < "IQ300"}
    assert front_end - covered == set()


def _nodes(q: A.Query):
    yield from q.annotations
    for item in q.select:
        yield item
        if item.expr is not None:
            yield from A.walk(item.expr)
    for t in q.tables():
        yield t
    for j in q.joins:
        yield j
        yield from A.walk(j.on)
    for e in [q.where, *q.group_by, q.having, *(o.expr for o in q.order_by)]:
        if e is not None:
            yield from A.walk(e)
    yield from q.order_by


@pytest.mark.parametrize("path", VALID + INVALID, ids=_ids)
def test_every_node_has_a_span(path):
    text = path.read_text(encoding="utf-8")
    try:
        q = parse(text, path.name)
    except DiagnosticError:
        return
    for node in _nodes(q):
        assert node.span is not None, node
        assert 0 <= node.span.start < node.span.end <= len(text), node


def test_parse_reports_every_bad_literal_and_sorts_them():
    text = "SELECT COUNT(*) FROM police_victims WHERE a < DATE '2020-13-01' OR b < 99999999999999999999"
    with pytest.raises(DiagnosticError) as err:
        parse(text)
    assert [d.code for d in err.value.diagnostics] == ["IQ105", "IQ106"]


def test_checker_attaches_the_source_for_rendering():
    text = "@purpose research\nSELECT nope, COUNT(*) AS n FROM police_victims GROUP BY nope"
    src = Source("q.iq", text)
    _, diags = check(CATALOG, parse(text, "q.iq"), src)
    assert [d.render().splitlines()[0] for d in diags] == [
        "q.iq:2:8: IQ203 error: unknown column `nope`",
        "q.iq:2:57: IQ203 error: unknown column `nope`",
    ]
