"""Every example of spec/disclosure.md is compiled and checked, so the spec cannot drift.

A ```iq block is preceded by `<!-- expect: IQ3xx -->` (rejected with that code) or
`<!-- valid -->` (compiles to a plan), optionally followed by `; catalog: NAME.toml` (a catalog
in tests/corpus; default catalog.toml). An expected code may come from an earlier stage, or from
the disclosure stage run on the checked query (defence in depth, e.g. IQ311 behind IQ210).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from insightql.compiler.catalog import load_catalog
from insightql.compiler.checker import check
from insightql.compiler.codes import CODES
from insightql.compiler.disclosure import check_disclosure
from insightql.compiler.pipeline import compile_source
from insightql.compiler.syntax import parse

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "spec" / "disclosure.md"
CORPUS = ROOT / "tests" / "corpus"
BLOCK = re.compile(r"<!-- (expect: (IQ\d{3})|valid)(?:; catalog: (\S+))? -->\n```iq\n(.*?)```", re.S)


def examples() -> list[tuple[str | None, str, str]]:
    text = SPEC.read_text(encoding="utf-8")
    found = [(m[2], m[3] or "catalog.toml", m[4]) for m in BLOCK.finditer(text)]
    assert len(found) == text.count("```iq"), "every ```iq block needs an expect/valid comment right before it"
    return found


EXAMPLES = examples()
_CATALOGS = {}


def catalog(name: str):
    if name not in _CATALOGS:
        _CATALOGS[name] = load_catalog(CORPUS / name)
    return _CATALOGS[name]


@pytest.mark.parametrize("code, cat, query", EXAMPLES,
                         ids=[f"{i:02d}-{c or 'valid'}" for i, (c, _, _) in enumerate(EXAMPLES)])
def test_spec_example(code, cat, query):
    res = compile_source(query, "spec/disclosure.md", catalog(cat))
    if code is None:
        assert res.ok and res.plan is not None, "\n".join(d.render() for d in res.diagnostics)
        return
    assert not res.ok, f"expected {code}, but the query compiles"
    codes = {d.code for d in res.diagnostics}
    if code not in codes:  # reported behind an earlier stage's error: run the disclosure stage itself
        cq, _ = check(catalog(cat), parse(query, "spec/disclosure.md"))
        codes |= {d.code for d in check_disclosure(cq)[1]}
    assert code in codes, f"expected {code}, got {sorted(codes)}"


def test_every_disclosure_code_is_specified():
    text = SPEC.read_text(encoding="utf-8")
    for code in (c for c in CODES if c.startswith("IQ3")):
        assert f"### {code} " in text, f"spec/disclosure.md has no section for {code}"
        assert any(c == code for c, _, _ in EXAMPLES), f"spec/disclosure.md has no failing example for {code}"
