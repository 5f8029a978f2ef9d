"""MEDIAN / PERCENTILE's two-level search (runtime/secure/secure_ops.py `_rank`, issue 19 item 4): the same
answer as testing every histogram row, on random histograms of every block shape, and its cost-model
tally (compiler/review/cost.py): about 2*sqrt(size) tested elements per cell instead of size."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from insightql.compiler.plan.ops import rank_block
from insightql.compiler.review.cost import Tally, _Model, COST

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import random, sys
    sys.argv = [sys.argv[0]]  # one MPyC party in this process
    import numpy as np
    from mpyc.runtime import mpc
    from insightql.runtime.secure.secure_ops import SECURE, SecureOps

    def flat(hist, n, a, b):  # rows whose running count c has a*c < b*n
        c = k = 0
        for h in hist:
            c += h
            k += a * c < b * n
        return k

    async def main():
        await mpc.start()
        random.seed(7)
        for size in (1, 2, 5, 8, 9, 10, 11, 17, 24, 100, 101):
            for op, attrs in (("median", {}), ("percentile", {"percent": 90}), ("percentile", {"percent": 100}),
                              ("percentile", {"percent": 1})):
                cells = 5
                H = [[random.choice([0, 0, random.randint(0, 9)]) for _ in range(cells)] for _ in range(size)]
                n = [sum(r[c] for r in H) for c in range(cells)]
                n[0] += 3  # a count above the histogram's total: every row below
                n[1] = 0
                plan = {"secure_type": {"l": 64, "frac_bits": 0, "recip_bits": 0}, "cells": cells, "nodes": [
                    {"id": "h", "op": "x", "attrs": {}, "bounds": [0, 1000]},
                    {"id": "c", "op": "x", "attrs": {}, "bounds": [0, 1000]},
                    {"id": "m", "op": op, "inputs": ["h", "c"], "attrs": {"lo_value": 7, **attrs}}]}
                s = SecureOps(mpc, plan)
                a, b = (2, 1) if op == "median" else (100, attrs["percent"])
                got = await mpc.output(SECURE[op](s, s.nodes["m"], [s.si.array(np.array(H, dtype=object)),
                                                                     s.si.array(np.array(n, dtype=object))], {}))
                want = [7 + flat([r[c] for r in H], n[c], a, b) for c in range(cells)]
                assert [int(v) for v in got] == want, (size, op, got, want)
        await mpc.shutdown()
        print("all equal")

    mpc.run(main())
''')


def test_two_level_search_equals_testing_every_row():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "all equal" in out.stdout, out.stderr[-3000:]


def test_block_lengths():
    assert [rank_block(s) for s in (1, 2, 8)] == [0, 0, 0]
    assert [rank_block(s) for s in (9, 10, 100, 101)] == [3, 4, 10, 11]


def test_cost_counts_both_levels():
    plan = {"secure_type": {"recip_bits": 0, "frac_bits": 0}, "parties": [], "nodes": [
        {"id": "h", "op": "combine", "attrs": {}, "shape": [100, 11], "bounds": [0, 2000000]},
        {"id": "c", "op": "combine", "attrs": {}, "shape": [11], "bounds": [0, 2000000]},
        {"id": "m", "op": "median", "inputs": ["h", "c"], "attrs": {"l": 24, "lo_value": 0}, "shape": [11]}]}
    t = Tally()
    COST["median"](_Model(plan), t, plan["nodes"][2])
    assert [c["elements"] for c in t.comparisons] == [10 * 11, 9 * 11]  # was one test of 100 * 11
    assert 10 * 9 * 11 in t.reshare  # one-hot of the block x its rows
