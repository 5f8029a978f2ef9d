"""The secure division (runtime/secure/secure_ops.py, issue 19 item 4): the reciprocal's start from
the divisor's bit decomposition is exactly 2**(P-e) for its bit length e, the reciprocal keeps its
32 bits of precision, and several div nodes computed in one call (`divide_many`, how a party runs
AVG's divisions) give the quotients that one call per node gives, signed divisors and guards included.
One MPyC party in a subprocess; real parties run them in tests/test_differential.py."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import random, sys
    sys.argv = [sys.argv[0]]  # one MPyC party in this process
    import numpy as np
    from mpyc.runtime import mpc
    from insightql.runtime.secure import secure_ops
    from insightql.runtime.secure.secure_ops import SecureOps

    P = 54
    plan = {"secure_type": {"l": 114, "frac_bits": 24, "recip_bits": P}, "cells": 6, "nodes": []}

    async def main():
        await mpc.start()
        random.seed(11)
        s = SecureOps(mpc, plan)
        for b_hi in (1, 2, 3, 4, 7, 8, 9, 100, 1023, 1024, 2_000_000):
            bs = sorted({1, b_hi, max(1, b_hi - 1), (b_hi + 1) // 2 or 1} | {random.randint(1, b_hi) for _ in range(8)})
            b = s.si.array(np.array(bs, dtype=object))
            steps, secure_ops.RECIPROCAL_NEWTON_STEPS = secure_ops.RECIPROCAL_NEWTON_STEPS, 0
            start = [int(v) for v in await mpc.output(s.reciprocal(b, b_hi))]
            secure_ops.RECIPROCAL_NEWTON_STEPS = steps
            assert start == [2 ** (P - v.bit_length()) for v in bs], (b_hi, bs, start)
            rec = [int(v) for v in await mpc.output(s.reciprocal(b, b_hi))]
            for v, r in zip(bs, rec):
                assert abs(r - 2 ** P / v) <= 2 ** P / v * 2.0 ** -31 + 8, (b_hi, v, r)

        cells = 6
        def node(i, lo, hi, guard):
            return {"id": f"d{i}", "op": "div", "inputs": [f"n{i}", f"b{i}"], "frac": 24,
                    "attrs": {"guard": f"g{i}"} if guard else {}}
        specs = [(0, 0, 2_000_000, True), (1, 0, 90, True), (2, -50, 70, False), (3, 0, 2_000_000, True)]
        nodes, values, want = [], {}, {}
        plan2 = {**plan, "cells": cells, "nodes": []}
        for i, lo, hi, guard in specs:
            den = [random.randint(lo, hi) or 1 for _ in range(cells)]
            num = [random.randint(0, 10 ** 7) for _ in range(cells)]
            g = [random.randint(0, 1) for _ in range(cells)] if guard else [1] * cells
            plan2["nodes"] += [{"id": f"n{i}", "op": "x", "attrs": {}, "bounds": [0, 10 ** 7]},
                               {"id": f"b{i}", "op": "x", "attrs": {}, "bounds": [lo, hi]},
                               {"id": f"g{i}", "op": "x", "attrs": {}, "bounds": [0, 1]}, node(i, lo, hi, guard)]
            values.update({f"n{i}": num, f"b{i}": den, f"g{i}": g})
            want[f"d{i}"] = [n * 2 ** 24 / (d if gg else 1) for n, d, gg in zip(num, den, g)]
        s = SecureOps(mpc, plan2)
        sec = {k: s.si.array(np.array(v, dtype=object)) for k, v in values.items()}
        divs = [n for n in plan2["nodes"] if n["op"] == "div"]
        together = s.divide_many(divs, sec)
        apart = {n["id"]: s.divide(n, [sec[i] for i in secure_ops.operands(n)], s.fracs(n)) for n in divs}
        for n in divs:
            a = [int(v) for v in await mpc.output(together[n["id"]])]
            b = [int(v) for v in await mpc.output(apart[n["id"]])]
            for x, y, w in zip(a, b, want[n["id"]]):
                assert abs(x - w) <= abs(w) * 2.0 ** -31 + 2 and abs(y - w) <= abs(w) * 2.0 ** -31 + 2, (n["id"], x, y, w)
        await mpc.shutdown()
        print("all equal")

    mpc.run(main())
''')


def test_reciprocal_start_and_batched_divisions():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "all equal" in out.stdout, out.stderr[-3000:]


def test_reciprocal_scales_keep_the_precision():
    """The Newton steps at growing scales (compiler/plan/ops.py reciprocal_scales), replayed in plain
    integers with MPyC's truncation rounding each time down, up or at random: every reciprocal of a
    divisor of up to L bits stays within 2**-31 of 2**P / b, worst cases (powers of two, where the
    start is off by a factor 2) included, for the plan's P and a larger one."""
    import math
    import random

    from insightql.compiler.plan.ops import RECIPROCAL_NEWTON_STEPS, reciprocal_scales

    def trunc(x, f, up):
        if f <= 0:
            return x * 2 ** -f
        q, r = divmod(x, 2 ** f)
        return q + (r and up(r / 2 ** f))

    rng = random.Random(5)
    roundings = (lambda r: 0, lambda r: 1, lambda r: rng.random() < r)
    for b_hi, P in ((1, 54), (3, 54), (100, 54), (1024, 54), (2_000_000, 54), (2_000_000, 70), (10 ** 9, 62)):
        L = max(1, math.ceil(math.log2(b_hi + 1)))
        divisors = {1, b_hi} | {2 ** k + d for k in range(L) for d in (-1, 0, 1)} | {rng.randint(1, b_hi) for _ in range(200)}
        for b in sorted(v for v in divisors if 1 <= v <= b_hi):
            for up in roundings:
                x, p = 2 ** (L - b.bit_length()), L
                for q in reciprocal_scales(L, P, RECIPROCAL_NEWTON_STEPS):
                    x, p = trunc(x * (2 ** (p + 1) - b * x), 2 * p - q, up), q
                assert p == P and abs(x - 2 ** P / b) <= 2 ** P / b * 2.0 ** -31, (b_hi, P, b, x)
