"""Stdlib functions under real MPC: the parties' result equals the plaintext oracle's.

The functions are party-local (each owner evaluates them on its own rows before sharing), so what
MPC adds is everything around them: cell codes of function results against the public domain,
WHERE masks, the cell rule on the combined counts, pct() on the released values. To keep CI time
low, each run batches several functions into one query (tests/test_stdlib_functions.py
MPC_QUERIES, whose oracle results are checked against an independent reference there), the two
runs of one example go side by side, and hypothesis draws only two data sets.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

import stdlib_ref as ref
from conftest import assert_same_result, compile_plan, oracle_result, submit_mpc
from stdlib_ref import row_sets
from test_stdlib_functions import MPC_QUERIES, QUERIES
from tiers import examples


@pytest.mark.mpc
@settings(max_examples=examples(2), deadline=None, phases=[Phase.explicit, Phase.generate],  # no shrinking: each step is 2 runs
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# both owners receive, so each one's part of a cell needs k rows (spec/disclosure.md 2.3): enough rows
@given(a=row_sets(400, 300, (0.1, 0.3), (0.3, 0.6)), b=row_sets(400, 300, (0.1, 0.3), (0.3, 0.6)))
def test_functions_under_mpc_equal_the_oracle(a, b, mpc_pool):
    with tempfile.TemporaryDirectory() as tmp:
        paths = {d: ref.write_rows(Path(tmp) / f"{d}.csv", rows) for d, rows in (("a", a), ("b", b))}
        plans = {name: compile_plan(QUERIES[name], ref.CAT) for name in MPC_QUERIES}
        runs = {name: submit_mpc(mpc_pool, plan, paths, catalog_path=ref.CATALOG_PATH) for name, plan in plans.items()}
        wants = {name: oracle_result(plan, ref.CAT, paths) for name, plan in plans.items()}
        gots = {name: run.result() for name, run in runs.items()}  # every run ends before the data go
    for name, plan in plans.items():
        assert any(not any(str(v) == "suppressed" for v in r) for r in wants[name].rows), f"{name}: nothing released"
        assert_same_result(plan, gots[name], wants[name])
