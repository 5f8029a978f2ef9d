"""Plan files: golden plans, schema, determinism and the content hash.

* every golden plan (tests/golden, written by tests/make_golden.py) equals a fresh compile;
* every corpus plan validates against PLAN_SCHEMA, and spec/*.schema.json are up to date;
* plans are byte-identical whatever PYTHONHASHSEED (set iteration order must not leak in);
* the hash covers every semantic part: a changed node attribute, source or catalog changes it,
  and load_plan refuses a plan edited after compilation.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plan.plan_io import dump_plan, load_plan, plan_hash
from insightql.compiler.plan.plan_schema import PLAN_SCHEMA, validate

from make_golden import CATALOG, CORPUS, GOLDEN, compile_corpus, golden_path
from make_schemas import schema_files

QUERY = """@purpose research
SELECT exp_Type, COUNT(*) AS n, AVG(prs_Age) AS mean_age
FROM police_victims UNION ALL ngo_clients
WHERE exp_Region IN ('North', 'East')
GROUP BY exp_Type;
"""


@pytest.fixture(scope="module")
def corpus():
    return compile_corpus()


@pytest.fixture(scope="module")
def plan():
    res = compile_source(QUERY, "golden_probe.iq", load_catalog(CATALOG))
    assert res.plan is not None, [d.render() for d in res.diagnostics]
    return res.plan


def test_golden_plans_equal_fresh_compiles(corpus):
    plans, _ = corpus
    on_disk = {p: p.read_text(encoding="utf-8") for p in GOLDEN.glob("*.plan.json")}
    missing = sorted(p.name for p in plans if p not in on_disk)
    stale = sorted(p.name for p in on_disk if p not in plans)
    changed = sorted(p.name for p, text in plans.items() if p in on_disk and on_disk[p] != text)
    assert not (missing or stale or changed), (
        f"golden plans out of date (run `make golden` and review the diff): missing {missing}, "
        f"stale {stale}, changed {changed}")


def test_every_corpus_query_has_a_golden_plan(corpus):
    plans, failed = corpus
    assert set(plans) == {golden_path(q) for q in CORPUS.glob("*.iq")} - {golden_path(q) for q in failed}


def test_golden_files_are_canonical(corpus):
    for path in GOLDEN.glob("*.plan.json"):
        text = path.read_text(encoding="utf-8")
        assert dump_plan(load_plan(text)) == text, path.name


def test_corpus_plans_validate_against_schema(corpus, plan):
    plans, _ = corpus
    for path, text in {**plans, Path("probe"): dump_plan(plan)}.items():
        assert validate(json.loads(text)) == [], path.name


def test_schema_rejects_malformed_plans(plan):
    bad = copy.deepcopy(plan)
    bad["nodes"][0]["op"] = "teleport"
    bad["nodes"][1]["attrs"]["surprise"] = 1
    bad["cells"] = 0
    share = next(n for n in bad["nodes"] if n["op"] == "share")
    share["placement"] = "secure"
    del bad["hash"]
    errors = "\n".join(validate(bad))
    for what in ("'teleport' is not one of", "unexpected field 'surprise'", "cells: 0 is below 1",
                 "does not match ^input:", "missing 'hash'"):
        assert what in errors


@pytest.mark.parametrize("design", ["oblivious", "fast"])
def test_linkage_plans_validate_against_schema(design, tmp_path):
    """Every record-linkage query of tests/test_linkage.py, with both designs (compiler/plan/linkage.py)."""
    from test_linkage import LCAT_PATH, QUERIES
    from test_linkage_fast import catalog_with_fast

    cat = load_catalog(LCAT_PATH if design == "oblivious" else catalog_with_fast(tmp_path))
    for name, q in QUERIES.items():
        res = compile_source(q["iq"], f"{name}.iq", cat)
        assert res.plan is not None, [d.render() for d in res.diagnostics]
        plan = json.loads(dump_plan(res.plan))
        assert validate(plan) == [], name
        links = [n for n in plan["nodes"] if n["op"] in ("link_join", "link_distinct")]
        assert links and all(n["attrs"]["algorithm"] == design for n in links), name
        items = {i["item"] for i in plan["leakage"]}
        assert "input_sizes" in items, name
        assert ("match_pattern" in items, "sort_comparisons" in items) == (design == "fast", design != "fast"), name


def test_schema_rejects_malformed_link_ops(tmp_path):
    from test_linkage import LCAT, QUERIES

    plan = compile_source(QUERIES["inner_both_sides"]["iq"], "j.iq", LCAT).plan
    bad = copy.deepcopy(plan)
    by_op = {n["op"]: n for n in bad["nodes"]}
    by_op["link_join"]["attrs"]["algorithm"] = "psi"
    by_op["link_join"]["attrs"]["weights"].append({"kind": "sum", "side": 2, "field": "m0_0", "lo": 0})
    by_op["link_rows"]["attrs"]["size_rule"] = "rounded"
    del by_op["link_rows"]["attrs"]["layout"]
    by_op["link_share"]["placement"] = "secure"
    bad["leakage"].append({"item": "who_matched", "to": [], "detail": "?"})
    errors = "\n".join(validate(bad))
    for what in ("'psi' is not one of", "attrs.weights[6]: matches 0 of the anyOf", "'rounded' is not one of",
                 "missing 'layout'", "does not match ^input:", "'who_matched' is not one of"):
        assert what in errors, what


def test_schema_files_are_up_to_date():
    for path, text in schema_files().items():
        assert path.exists() and path.read_text(encoding="utf-8") == text, \
            f"{path.name} is out of date: run `.venv/bin/python tests/make_schemas.py`"


def test_iq_schema_plan_prints_the_schema(capsys):
    from insightql.runtime.cli import main

    assert main(["schema", "plan"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(PLAN_SCHEMA))


SNIPPET = """
import hashlib, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from make_golden import compile_corpus
from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plan.plan_io import dump_plan
plans, _ = compile_corpus()
texts = [plans[p] for p in sorted(plans)]
texts.append(dump_plan(compile_source({query!r}, "probe.iq", load_catalog({catalog!r})).plan))
print(hashlib.sha256("".join(texts).encode()).hexdigest(), len(texts))
"""


def test_plans_identical_across_hash_seeds():
    code = SNIPPET.format(tests=str(Path(__file__).parent), query=QUERY, catalog=str(CATALOG))
    outs = set()
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs.add(r.stdout.strip())
    assert len(outs) == 1, outs


def _rehash(p: dict) -> dict:
    p = copy.deepcopy(p)
    p["hash"] = plan_hash(p)
    return p


def test_hash_changes_with_any_node_attribute(plan):
    ge = next(n for n in plan["nodes"] if n["op"] == "ge_const")
    for mutate in (lambda q: q["nodes"][plan["nodes"].index(ge)]["attrs"].update(const=ge["attrs"]["const"] - 1),
                   lambda q: q["nodes"][-1]["attrs"].update(limit=1),
                   lambda q: q["nodes"][0]["attrs"]["columns"].popitem(),
                   lambda q: q["nodes"][1]["attrs"]["slots"][0].update(kind="count"),
                   lambda q: q["nodes"][2]["bounds"].__setitem__(1, 7),
                   lambda q: q["query"].update(purpose="policy"),
                   lambda q: q["policy"].update(min_group_size=9),
                   lambda q: q["receivers"].pop(),
                   lambda q: q["leakage"].pop(),
                   lambda q: q["secure_type"].update(l=q["secure_type"]["l"] + 1)):
        q = copy.deepcopy(plan)
        mutate(q)
        assert q != plan and plan_hash(q) != plan["hash"]


def test_load_plan_rejects_a_tampered_plan(plan):
    text = dump_plan(plan)
    assert load_plan(text) == plan
    tampered = copy.deepcopy(plan)
    reveal = next(n for n in tampered["nodes"] if n["op"] == "reveal")
    reveal["attrs"]["to"] = ["police"]  # redirect the results, keep the old hash
    with pytest.raises(ValueError, match="hash"):
        load_plan(dump_plan(tampered))
    with pytest.raises(ValueError, match="format"):
        load_plan(dump_plan({**_rehash(plan), "format": "other/9"}))


def test_hash_changes_with_the_source(plan):
    catalog = load_catalog(CATALOG)
    for changed in (QUERY.replace("AS n,", "AS rows,"), QUERY + "-- a comment\n",
                    QUERY.replace("'East'", "'West'")):
        other = compile_source(changed, "golden_probe.iq", catalog).plan
        assert other["hash"] != plan["hash"]
        assert other["query"]["source_sha256"] != plan["query"]["source_sha256"]
    same = compile_source(QUERY, "golden_probe.iq", catalog).plan
    assert dump_plan(same) == dump_plan(plan)


def test_hash_changes_with_the_catalog(plan):
    text = CATALOG.read_text(encoding="utf-8")
    for old, new in (("min_group_size = 10", "min_group_size = 11"),
                     ('description = "Neutral computing party that holds no data"', 'description = "Helper"'),
                     ("prs_Age = { type = \"integer\", min = 0, max = 99,", "prs_Age = { type = \"integer\", min = 0, max = 98,")):
        assert old in text, old
        cat = _catalog_from_text(text.replace(old, new, 1))
        other = compile_source(QUERY, "golden_probe.iq", cat).plan
        assert other["catalog_digest"] != plan["catalog_digest"], old
        assert other["hash"] != plan["hash"], old


def test_policy_fields_added_later_count_only_when_set():
    """An unchanged catalog keeps its digest across compiler versions (compiler/check/catalog.py)."""
    text = CATALOG.read_text(encoding="utf-8")
    base = load_catalog(CATALOG).digest()
    policy = "[datasets.ngo_clients.policy]\n"
    for line, counts in (('linkage = "oblivious"', False), ("require_approval = false", False),
                         ('linkage = "fast"', True), ("require_approval = true", True)):
        digest = _catalog_from_text(text.replace(policy, policy + line + "\n", 1)).digest()
        assert (digest != base) == counts, line


def _catalog_from_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "catalog.toml"
        p.write_text(text, encoding="utf-8")
        return load_catalog(p)
