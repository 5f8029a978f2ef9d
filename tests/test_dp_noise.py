"""The noise of the `dp_noise` op as three MPyC parties generate it (runtime/secure/dp_noise.py; spec/privacy.md 3):
its distribution is the sum of three discrete Laplace samples of the plan's scale (chi-square goodness
of fit at significance 0.001, with a check that the same test rejects a scale 15% off), and an
empirical privacy check on neighbouring counts (c and c + 1) finds no log-ratio above epsilon at the
test's resolution. One run of three party processes (MPyC -M3, as a script), 30,000 cells per input."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
N = 30_000
SCALE = "2"  # epsilon 1/2 for a count (sensitivity 1)
Z_999 = 3.0902  # standard normal quantile of 0.999

SCRIPT = textwrap.dedent('''
    import json, sys, time
    import numpy as np
    from mpyc.runtime import mpc
    from insightql.runtime.secure.secure_ops import SECURE, SecureOps

    async def main():
        await mpc.start()
        n = int(sys.argv[1])
        plan = {"secure_type": {"l": 32, "frac_bits": 0, "recip_bits": 0}, "cells": n, "nodes": [
            {"id": "x", "op": "combine", "attrs": {}, "bounds": [0, 1000]},
            {"id": "z", "op": "dp_noise", "inputs": ["x"], "attrs": {"mechanism": "discrete_laplace", "epsilon": "1/2",
             "delta": "0", "sensitivity": 1, "scale": sys.argv[2], "what": "COUNT(*)"}}]}
        s = SecureOps(mpc, plan)
        out = {}
        for c in (10, 11):  # neighbouring true counts
            x = s.si.array(np.full(n, c, dtype=object))
            t0 = time.perf_counter()
            y = await mpc.output(SECURE["dp_noise"](s, s.nodes["z"], [x], {}))
            out[str(c)] = {"values": [int(v) for v in y], "seconds": time.perf_counter() - t0}
        await mpc.shutdown()
        if mpc.pid == 0:
            print("RESULT " + json.dumps(out))

    mpc.run(main())
''')


def dlap_sum_pmf(scale: float, parties: int, half: int) -> np.ndarray:
    """P(Z = z), z = -half..half, Z the sum of `parties` discrete Laplace samples (exact convolution)."""
    q = math.exp(-1 / scale)
    z = np.arange(-half, half + 1)
    p = (1 - q) / (1 + q) * q ** np.abs(z)
    out = p
    for _ in range(parties - 1):
        out = np.convolve(out, p)[half:-half]
    return out / out.sum()


def chi_square(observed: np.ndarray, expected_p: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic over bins merged from both tails until each expects >= 5; (stat, dof)."""
    exp = expected_p * observed.sum()
    bins_o, bins_e, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(observed, exp):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= 5:
            bins_o.append(acc_o)
            bins_e.append(acc_e)
            acc_o = acc_e = 0.0
    bins_o[-1] += acc_o
    bins_e[-1] += acc_e
    o, e = np.array(bins_o), np.array(bins_e)
    return float(((o - e) ** 2 / e).sum()), len(o) - 1


def critical(dof: int) -> float:
    """chi-square quantile 0.999 (Wilson-Hilferty)."""
    a = 2 / (9 * dof)
    return dof * (1 - a + Z_999 * math.sqrt(a)) ** 3


def free_ports(n: int) -> int:
    """A base port with n free consecutive ports on loopback (MPyC -M3's default ports may be taken by
    another run on this machine, and mpc.start() waits for an absent peer forever)."""
    import random
    import socket

    for _ in range(200):
        base = random.randrange(20000, 60000)
        try:
            socks = []
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    d = tmp_path_factory.mktemp("dpnoise")
    script = d / "dp_noise_run.py"
    script.write_text(SCRIPT, encoding="utf-8")
    out = subprocess.run([sys.executable, str(script), str(N), SCALE, "-M3", "--output-file",
                          "--base-port", str(free_ports(3))], cwd=d, capture_output=True, text=True, timeout=540)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert out.returncode == 0 and line, out.stderr[-3000:]
    return json.loads(line[len("RESULT "):])


def test_noise_is_the_sum_of_three_discrete_laplace_samples(noise):
    z = np.array(noise["10"]["values"]) - 10
    half = 80
    assert np.abs(z).max() < half
    observed = np.bincount(z + half, minlength=2 * half + 1).astype(float)
    stat, dof = chi_square(observed, dlap_sum_pmf(float(Fraction(SCALE)), 3, half))
    assert stat < critical(dof), (stat, dof, critical(dof))
    for wrong in (1.15, 1 / 1.15):  # the test has the power to see a wrong scale
        bad, dof_b = chi_square(observed, dlap_sum_pmf(float(Fraction(SCALE)) * wrong, 3, half))
        assert bad > critical(dof_b), (wrong, bad, critical(dof_b))
    assert abs(z.mean()) < 4 * math.sqrt(z.var() / len(z))  # centred


def test_neighbouring_counts_stay_within_epsilon(noise):
    """Empirical privacy: for every output value seen often enough under both counts 10 and 11, the
    estimated log-ratio of its probabilities stays below epsilon = 1/2 plus 4 standard errors."""
    a, b = np.array(noise["10"]["values"]), np.array(noise["11"]["values"])
    lo = min(a.min(), b.min())
    ca, cb = np.bincount(a - lo), np.bincount(b - lo, minlength=len(np.bincount(a - lo)))
    ca = np.pad(ca, (0, max(0, len(cb) - len(ca))))
    worst = 0.0
    for x, y in zip(ca, cb):
        if x >= 200 and y >= 200:
            ratio = abs(math.log(x / y))
            worst = max(worst, ratio - 4 * math.sqrt(1 / x + 1 / y))
    assert worst <= 0.5, worst


def test_the_op_takes_one_input_round(noise):
    # 30,000 cells: three parties each share one vector
    assert noise["10"]["seconds"] < 60
