"""Dataset layouts (`like = "..."`, spec/catalog.md): corpus cases and the same-plan guarantee.

tests/catalog_layouts/valid/NAME.toml loads cleanly and equals NAME.expanded.toml (the same datasets
written out, or spelled the other way): same validated datasets, same digest. Each file in
tests/catalog_layouts/invalid/ says what it must report, one line per diagnostic:

    # expect: CODE LINE:COL words of the message or a hint
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.diagnostics import DiagnosticError
from insightql.compiler.pipeline import compile_source
from insightql.runtime.cli.common import load_catalog_file

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "catalog_layouts"
VALID = sorted(p for p in (CASES / "valid").glob("*.toml") if not p.name.endswith(".expanded.toml"))
INVALID = sorted((CASES / "invalid").glob("*.toml"))
EXPECT = re.compile(r"^# expect: (IQ\d{3}) (\d+):(\d+) (.+)$", re.M)


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_layout_equals_the_dataset_written_out(path):
    cat = load_catalog(path)
    written = load_catalog(path.with_name(path.stem + ".expanded.toml"))
    assert cat.model_dump() == written.model_dump()
    assert [list(ds.columns) for ds in cat.datasets.values()] == [list(ds.columns) for ds in written.datasets.values()]
    assert cat.digest() == written.digest()
    assert any(cat.lineage(name).chain for name in cat.datasets), "the case uses no layout"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_layout_reports_each_expected_diagnostic_once(path):
    expected = [(m[1], int(m[2]), int(m[3]), m[4]) for m in EXPECT.finditer(path.read_text(encoding="utf-8"))]
    assert expected, f"{path.name} has no `# expect:` line"
    with pytest.raises(DiagnosticError) as e:
        load_catalog_file(path)
    got = e.value.diagnostics
    assert len(got) == len(expected), [d.render() for d in got]
    for d, (code, line, col, words) in zip(got, expected):
        assert (d.code, *d.position()) == (code, line, col), d.render()
        assert words in d.message + " " + " ".join(d.hints), d.render()
        assert d.hints, f"{code} without a hint"


def test_chain_lineage_names_where_each_value_comes_from():
    cat = load_catalog(CASES / "valid" / "chain.toml")
    lin = cat.lineage("c")
    assert lin.chain == ("b", "a")
    assert lin.fields["owner"] == "c"
    assert lin.policy == {"min_group_size": "a", "round_counts_to": "c"}
    assert lin.columns == {"age": "c (over b (over a))", "region": "a"}
    assert cat.lineage("a").chain == () and cat.lineage("a").columns == {"age": "a", "region": "a"}


def test_preset_resets_what_it_governs_and_keeps_the_rest():
    cat = load_catalog(CASES / "valid" / "preset_over_inherited.toml")
    b = cat.datasets["b"].policy
    assert (b.min_group_size, b.round_counts_to, b.max_groups, b.receivers) == (5, 1, 1000, ["police", "ngo"])
    assert cat.lineage("b").policy["min_group_size"] == "preset official-tables"
    assert cat.lineage("b").policy["receivers"] == "a"


# ------------------------------------------------------------------ same plan as written out
CORPUS_NGO_LIKE = '''[datasets.ngo_clients]
like = "police_victims"
owner = "ngo"
description = "Clients supported by the NGO, one row per client"
[datasets.ngo_clients.policy]
purposes = ["research", "policy"]
round_counts_to = 1
[datasets.ngo_clients.columns]
person_id = { unique = true }
'''


def _corpus_with_like(tmp_path) -> Path:
    """tests/corpus/catalog.toml with ngo_clients (written out by hand there) as `like` police_victims."""
    text = (ROOT / "tests" / "corpus" / "catalog.toml").read_text(encoding="utf-8")
    start = text.index("[datasets.ngo_clients]")
    end = text.index("[datasets.", text.index("[datasets.ngo_clients.columns]") + 1)
    path = tmp_path / "catalog.toml"
    path.write_text(text[:start] + CORPUS_NGO_LIKE + "\n" + text[end:], encoding="utf-8")
    return path


def test_like_compiles_to_the_same_plans_as_written_out(tmp_path):
    written = load_catalog(ROOT / "tests" / "corpus" / "catalog.toml")
    liked = load_catalog(_corpus_with_like(tmp_path))
    assert liked.lineage("ngo_clients").chain == ("police_victims",)
    assert liked.digest() == written.digest()
    queries = sorted((ROOT / "tests" / "corpus" / "valid").glob("*.iq"))
    compared = 0
    for q in queries:
        text = q.read_text(encoding="utf-8")
        if re.search(r"^-- catalog: ", text, re.M) or "ngo_clients" not in text:
            continue
        a, b = compile_source(text, q.name, written), compile_source(text, q.name, liked)
        assert (a.plan or {}).get("hash") == (b.plan or {}).get("hash"), q.name
        compared += a.plan is not None
    assert compared >= 5, "too few corpus queries read ngo_clients"


@pytest.mark.parametrize("catalog, queries", [
    ("examples/catalog.toml", ["examples/victims_by_exploitation.iq", "examples/overlap.iq",
                               "examples/shares_within_groups.iq"]),
    ("examples/htcds/catalog.toml", ["examples/htcds/victims_by_region_and_age.iq"]),
])
def test_shipped_examples_use_like_and_keep_their_plans(catalog, queries):
    """The shipped catalogs were converted to `like`; their digests (recorded before) did not change."""
    digests = {"examples/catalog.toml": "sha256:b0b1987a0f147662379db2a84c8604f811003285f644cf9db3155e186ddbc500",
               "examples/htcds/catalog.toml":
                   "sha256:da17fa17df20f8ac9a842f1247a991be43094c872c70d383e273a80654ab721a"}
    cat = load_catalog(ROOT / catalog)
    assert cat.digest() == digests[catalog]
    assert "like = " in (ROOT / catalog).read_text(encoding="utf-8")
    for q in queries:
        res = compile_source((ROOT / q).read_text(encoding="utf-8"), q, cat)
        assert res.plan is not None and res.plan["catalog_digest"] == digests[catalog], q


# ------------------------------------------------------------------ the schema describes the written file
def _as_json(value):
    import datetime as dt
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value.isoformat() if isinstance(value, dt.date) else value


def test_schema_accepts_every_catalog_as_written_and_refuses_a_dataset_without_layout_or_owner():
    import jsonschema
    import tomllib

    from insightql.compiler.check.catalog import catalog_json_schema

    validator = jsonschema.Draft202012Validator(catalog_json_schema())
    files = [ROOT / "examples/catalog.toml", ROOT / "examples/htcds/catalog.toml",
             *sorted((ROOT / "tests" / "corpus").glob("*.toml")), *sorted((CASES / "valid").glob("*.toml"))]
    for f in files:
        errors = [e.message for e in validator.iter_errors(_as_json(tomllib.loads(f.read_text(encoding="utf-8"))))]
        assert not errors, (f.name, errors[:3])
    bad = {"datasets": {"a": {"description": "neither owner and columns nor like"}}}
    assert list(validator.iter_errors(bad))
    both = {"datasets": {"a": {"like": "template:htcds.case", "from": "htcds.case", "owner": "x"}}}
    assert list(validator.iter_errors(both))
    change = {"datasets": {"a": {"like": "b", "columns": {"age": {"role": "measure", "kind": "x"}}}}}
    assert list(validator.iter_errors(change)), "a column change has only column fields"
