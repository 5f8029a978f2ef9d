"""Every plan op is declared once (compiler/plan/ops.py) and has every stage's part: its plaintext
meaning (the oracle), its secure implementation (the runtime), its cost, its explain line. A
new op that lacks a part fails here; an op that is not declared cannot be built or registered."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from insightql.compiler.plaintext import oracle  # noqa: F401  (each module registers its parts)
from insightql.compiler.review import cost, explain_nodes  # noqa: F401
from insightql.compiler.plan.circuit import CircuitBuilder
from insightql.compiler.plan.ops import COST, DESCRIBE, OPS, PLAIN, SIGN_TESTS, register
from insightql.compiler.plan.plan_schema import PLAN_SCHEMA
from insightql.runtime.secure.linkage_ops import LINK
from insightql.runtime.secure.secure_ops import SECURE

GOLDEN = Path(__file__).parent / "golden"


def test_every_op_has_its_plaintext_meaning_cost_and_words():
    assert set(PLAIN) == set(OPS), "ops without a plaintext meaning (compiler/plaintext/oracle.py)"
    assert set(COST) == set(OPS), "ops the cost model does not know (compiler/review/cost.py)"
    assert set(DESCRIBE) == set(OPS), "ops `iq explain` cannot describe (compiler/review/explain_nodes.py)"


def test_every_secure_op_has_a_secure_implementation():
    secure = {n for n, o in OPS.items() if o.placement == "secure"}
    assert set(SECURE) | set(LINK) >= secure
    assert set(SECURE) <= secure and not set(SECURE) & set(LINK)
    # link ops run at parties as a whole: their local packing and sharing are implemented too
    assert set(LINK) == {n for n in OPS if n.startswith("link_")}


def test_the_schema_names_exactly_the_declared_ops():
    assert PLAN_SCHEMA["$defs"]["node"]["properties"]["op"]["enum"] == sorted(OPS)


def test_every_sign_test_says_what_it_compares():
    for name in SIGN_TESTS:
        assert "l" in OPS[name].attrs, name


def test_an_undeclared_op_is_refused_by_the_builder_and_the_registries():
    b = CircuitBuilder.__new__(CircuitBuilder)
    import networkx as nx
    b.g = nx.DiGraph()
    with pytest.raises(ValueError, match="not a declared plan op"):
        b.add("quantum_sort", "secure", [], [1])
    with pytest.raises(KeyError, match="not a declared plan op"):
        register({}, "quantum_sort")(lambda *a: None)


def test_golden_plans_use_only_declared_ops_with_their_placement():
    seen = set()
    for f in sorted(GOLDEN.glob("*.plan.json")):
        for n in json.loads(f.read_text())["nodes"]:
            spec = OPS[n["op"]]
            assert n["placement"].split(":")[0] == spec.placement, (f.name, n["id"])
            seen.add(n["op"])
    # the golden corpus exercises every op but three, which other corpora build (a dominance catalog,
    # arithmetic in SELECT); a new op should appear in a golden plan
    assert set(OPS) - seen <= {"dominance", "mul_const", "neg"}, sorted(set(OPS) - seen)


def test_the_cost_model_refuses_an_op_it_does_not_know():
    plan = json.loads((GOLDEN / "01_count_by_gender.plan.json").read_text())
    plan["nodes"][-2] = {**plan["nodes"][-2], "op": "quantum_sort"}
    with pytest.raises(AssertionError, match="no entry for op 'quantum_sort'"):
        cost.estimate(plan)
