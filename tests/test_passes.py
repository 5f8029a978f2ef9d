"""Optimisation passes: each does its job, and none changes what a plan computes."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.plan.circuit import CircuitBuilder
from insightql.compiler.plan.logical import to_logical
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.plan.passes import optimise
from insightql.compiler.plan.passes.batching import batch_comparisons
from insightql.compiler.plan.passes.bitwidth import annotate_bit_lengths, compared_range
from insightql.compiler.plan.passes.cse import eliminate_common_subexpressions
from insightql.compiler.pipeline import check_source
from insightql.compiler.plan.plan_io import make_plan
from insightql.runtime.data.loader import load_dataset

from randdata import random_rows, write_csv

ROOT = Path(__file__).parent
CATALOG = load_catalog(ROOT / "corpus" / "catalog.toml")
QUERY = """@purpose research
SELECT exp_Type, COUNT(hours_worked_week) AS n_hours, AVG(hours_worked_week) AS mean_hours,
       SUM(hours_worked_week) AS total_hours, COUNT(*) AS n
FROM police_victims UNION ALL ngo_clients
GROUP BY exp_Type HAVING COUNT(*) >= 11"""


def build(text=QUERY, passes=()):
    res = check_source(text, "q.iq", CATALOG)
    assert res.ok, [d.render() for d in res.diagnostics]
    lp, _ = to_logical(res.checked, res.policy)
    b = CircuitBuilder(lp, CATALOG)
    b.build()
    for p in passes:
        p(b.g)
    return res, b


def plan_of(res, b):
    return make_plan(cq=res.checked, policy=res.policy, builder=b, source_text=QUERY, source_name="q.iq")


def test_cse_merges_identical_secure_nodes():
    _, b = build()
    keys = [(d["op"], tuple(d["inputs"]), repr(sorted(d["attrs"].items()))) for _, d in b.g.nodes(data=True)
            if d["placement"] == "secure"]
    assert len(keys) > len(set(keys)), "the query should produce duplicate own-count flags"
    before = b.g.number_of_nodes()
    eliminate_common_subexpressions(b.g)
    keys = [(d["op"], tuple(d["inputs"]), repr(sorted(d["attrs"].items()))) for _, d in b.g.nodes(data=True)
            if d["placement"] == "secure"]
    assert len(keys) == len(set(keys))
    assert b.g.number_of_nodes() < before
    for nid, d in b.g.nodes(data=True):  # no dangling reference
        assert all(i in b.g for i in d["inputs"])
        if d["op"] == "table":
            for o in d["attrs"]["outputs"]:
                assert all(o[k] in b.g for k in ("value", "flag") if k in o)


def test_bitwidth_covers_every_compared_value():
    _, b = build(passes=[annotate_bit_lengths])
    tested = [n for n, d in b.g.nodes(data=True) if "l" in d["attrs"]]
    assert tested
    for nid in tested:
        lo, hi = compared_range(b.g, nid)
        l = b.g.nodes[nid]["attrs"]["l"]
        assert -(2 ** (l - 1)) <= lo and hi < 2 ** (l - 1)
        assert l <= 40, "thresholds on counts of at most 200k rows need few bits"


def test_batches_only_read_earlier_nodes():
    _, b = build(passes=[batch_comparisons])
    batches = {}
    for nid, d in b.g.nodes(data=True):
        if "batch" in d["attrs"]:
            batches.setdefault(d["attrs"]["batch"], []).append(nid)
    assert batches and any(len(v) > 1 for v in batches.values())
    for first, members in batches.items():
        assert first == min(members)
        for m in members:
            assert b.g.nodes[m]["op"] == "ge_const"
            assert all(i < first for i in b.g.nodes[m]["inputs"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_passes_do_not_change_results(tmp_path, seed):
    rng = np.random.default_rng(seed)
    tables = {}
    for d in ("police_victims", "ngo_clients"):
        path = write_csv(tmp_path / f"{d}.csv", CATALOG.datasets[d], random_rows(CATALOG.datasets[d], 120, rng))
        tables[d] = path
    plain_res, plain_b = build()
    opt_res, opt_b = build()
    opt_b.g = optimise(opt_b.g)
    results = []
    for res, b in ((plain_res, plain_b), (opt_res, opt_b)):
        plan = plan_of(res, b)
        loaded = {}
        for n in plan["nodes"]:
            if n["op"] == "load":
                d = n["attrs"]["dataset"]
                loaded[d] = load_dataset(tables[d], d, CATALOG.datasets[d], n["attrs"]["columns"])
        results.append(run_plan_plaintext(plan, loaded).to_records())
    assert results[0] == results[1]
