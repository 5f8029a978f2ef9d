"""The examples of spec/language.md and spec/diagnostics.md are run, so the spec cannot drift.

A fenced block (```iq: a query against tests/corpus/catalog.toml; ```toml: a catalog) follows a
marker line:

    <!-- expect: IQ203 -->                          the block is rejected with this code
    <!-- expect: IQ307; catalog: catalog_strict.toml -->   ... against tests/corpus/NAME
    <!-- valid -->                                  the block passes parse and check cleanly

After a failing ```iq example with a front-end code (IQ1xx, IQ2xx) comes a ```text block with the
diagnostic as `iq check` prints it. Those blocks are generated, never edited by hand:

    .venv/bin/python tests/test_spec_examples.py --write

Codes of later stages (IQ3xx, IQ4xx) are looked for in the whole pipeline's diagnostics; IQ5xx
happen only at run time and are left to the runtime's tests.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.check.checker import check
from insightql.compiler.check.privacy_policy import large_epsilon_warnings
from insightql.compiler.codes import CODES
from insightql.compiler.diagnostics import DiagnosticError, Source
from insightql.compiler.syntax.parser import parse

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus"
LANGUAGE = ROOT / "spec" / "language.md"
DIAGNOSTICS = ROOT / "spec" / "diagnostics.md"
BLOCK = re.compile(r"<!-- (?:expect: (IQ\d{3})|valid)(?:; catalog: (\S+))? -->\n```(iq|toml)\n(.*?)```\n", re.S)
SNAPSHOT = re.compile(r"(<!-- expect: (IQ[12]\d\d)(?:; catalog: (\S+))? -->\n```iq\n(.*?)```\n)(\n```text\n.*?```\n)?",
                      re.S)
_CATALOGS: dict[str, object] = {}


def catalog(name: str | None):
    name = name or "catalog.toml"
    if name not in _CATALOGS:
        _CATALOGS[name] = load_catalog(CORPUS / name)
    return _CATALOGS[name]


def examples(path: Path) -> list[tuple[str, str | None, str | None, str, str]]:
    """(page, code or None for valid, catalog, language, text) of every marked block."""
    text = path.read_text(encoding="utf-8")
    found = [(path.name, m[1], m[2], m[3], m[4]) for m in BLOCK.finditer(text)]
    fenced = len(re.findall(r"^```(?:iq|toml)$", text, re.M))
    assert len(found) == fenced, f"{path.name}: every ```iq/```toml block needs a marker line right before it"
    return found


EXAMPLES = examples(LANGUAGE) + examples(DIAGNOSTICS)


def front_end(query: str, cat, name: str = "example.iq"):
    """(checked query or None, diagnostics) of parse + check, with the source attached."""
    try:
        q = parse(query, name)
    except DiagnosticError as e:
        return None, e.diagnostics
    cq, diags = check(cat, q, Source(name, query))
    return cq, diags


def codes_of(query: str, cat) -> set[str]:
    cq, diags = front_end(query, cat)
    return {d.code for d in diags}


def later_stage_codes(query: str, cat) -> set[str]:
    """Every code the whole compiler reports, and what the disclosure stage says on its own."""
    from insightql.compiler.check.disclosure import check_disclosure
    from insightql.compiler.pipeline import compile_source

    found = {d.code for d in compile_source(query, "example.iq", cat).diagnostics}
    cq, _ = front_end(query, cat)
    if cq is not None and cq.bindings:
        found |= {d.code for d in check_disclosure(cq)[1]}
    return found


def _toml_codes(text: str, tmp_path: Path) -> set[str]:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    try:
        cat = load_catalog(path)
    except DiagnosticError as e:
        return {d.code for d in e.diagnostics}
    return {d.code for d in large_epsilon_warnings(cat)}  # IQ006, which `iq check` adds


@pytest.mark.parametrize("page, code, cat, lang, text", EXAMPLES,
                         ids=[f"{p.split('.')[0]}-{i:02d}-{c or 'valid'}" for i, (p, c, _, _, _) in enumerate(EXAMPLES)])
def test_spec_example(page, code, cat, lang, text, tmp_path):
    if lang == "toml":
        found = _toml_codes(text, tmp_path)
        assert (code in found) if code else not found, f"expected {code or 'no diagnostics'}, got {sorted(found)}"
        return
    if code is None:
        _, diags = front_end(text, catalog(cat))
        assert [d.render() for d in diags] == []
        return
    if code >= "IQ500":
        pytest.skip("run-time codes are exercised by the runtime's tests")
    found = codes_of(text, catalog(cat))
    if code not in found and code >= "IQ300":
        found |= later_stage_codes(text, catalog(cat))
    assert code in found, f"expected {code}, got {sorted(found)}"


def test_every_front_end_code_is_documented():
    text = DIAGNOSTICS.read_text(encoding="utf-8")
    failing = {c for p, c, _, _, _ in EXAMPLES if p == DIAGNOSTICS.name and c}
    for code in (c for c in CODES if c < "IQ300"):
        assert f"### {code} {CODES[code]}\n" in text, f"spec/diagnostics.md has no section `### {code} {CODES[code]}`"
        assert code in failing, f"spec/diagnostics.md has no failing example for {code}"


def test_documented_codes_exist():
    text = DIAGNOSTICS.read_text(encoding="utf-8")
    for code in re.findall(r"^### (IQ\d{3}) ", text, re.M):
        assert code in CODES, f"spec/diagnostics.md documents {code}, which compiler/codes.py does not have"


def test_language_page_quotes_the_grammar():
    grammar = (ROOT / "compiler" / "syntax" / "grammar.lark").read_text(encoding="utf-8")
    assert "```lark\n" + grammar + "```" in LANGUAGE.read_text(encoding="utf-8"), \
        "spec/language.md section 2 must hold compiler/syntax/grammar.lark verbatim"


def test_language_page_lists_the_keywords():
    from insightql.compiler.syntax.parser import KEYWORDS

    text = LANGUAGE.read_text(encoding="utf-8")
    listed = re.search(r"reserved everywhere:\n(.*?)\.\n", text, re.S)[1]
    assert set(re.findall(r"[A-Z]+", listed)) == {k.upper() for k in KEYWORDS}
    grammar = (ROOT / "compiler" / "syntax" / "grammar.lark").read_text(encoding="utf-8")
    assert set(re.findall(r"^([A-Z]+)\.2: /(\w+)\\b/i$", grammar, re.M)) == {(k.upper(), k) for k in KEYWORDS}


# -- rendered diagnostics (generated) ----------------------------------------------------------
def rendered(code: str, cat: str | None, query: str) -> str:
    _, diags = front_end(query, catalog(cat))
    return "\n".join(d.render() for d in diags if d.code == code)


def regenerate(text: str) -> str:
    def one(m: re.Match) -> str:
        return m[1] + "\n```text\n" + rendered(m[2], m[3], m[4]) + "\n```\n"
    return SNAPSHOT.sub(one, text)


def test_rendered_diagnostics_are_current():
    text = DIAGNOSTICS.read_text(encoding="utf-8")
    assert regenerate(text) == text, "run `.venv/bin/python tests/test_spec_examples.py --write`"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        DIAGNOSTICS.write_text(regenerate(DIAGNOSTICS.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        sys.exit("usage: test_spec_examples.py --write")
