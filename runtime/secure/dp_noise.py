"""The `dp_noise` op: differentially private noise added inside MPC (spec/privacy.md 3).

Every computing party draws, per cell, one sample of the discrete Laplace distribution of the
plan's exact scale s with OpenDP's exact sampler (Canonne, Kamath and Steinke 2020: rational
arithmetic and a cryptographic random source, no floating-point inverse CDF), and secret-shares
its vector; the value gets the sum of the m samples. No party knows the sum; a coalition of at
most t = (m-1)//2 parties knows at most t of the m terms, and any one term it does not know
already makes the release epsilon-DP (the rest is independent noise: post-processing). Cost: one
input round of m vectors, no multiplication (measured against drawing the noise from jointly
random bits inside MPC: spec/privacy.md 3.2).

Registered in runtime/secure/secure_ops.py `SECURE`; the oracle adds no noise of its own
(compiler/plaintext/oracle.py); tests/test_dp_noise.py checks the distribution through this op.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

_SAMPLERS: dict[str, object] = {}


def sample_discrete_laplace(scale: str | Fraction, n: int) -> list[int]:
    """n independent samples of P(z) ∝ exp(-|z| / scale), exactly, from OpenDP's sampler. The scale
    is a double (compiler/plan/dp_lower.py `noise_scale`), which OpenDP reads as the exact rational."""
    s = float(Fraction(scale))
    assert Fraction(s) == Fraction(scale), "a dp_noise scale must be an exact double"
    key = s.hex()
    meas = _SAMPLERS.get(key)
    if meas is None:
        import opendp.prelude as dp

        dp.enable_features("contrib")
        meas = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=s)
        _SAMPLERS[key] = meas
    return [int(z) for z in meas([0] * n)]


def add_noise(s, node: dict, args: list, values: dict):
    """The value vector plus every computing party's secret-shared noise vector (one input call)."""
    mpc = s.mpc
    x = args[0]
    n = x.shape[0]
    mine = np.array(sample_discrete_laplace(node["attrs"]["scale"], n), dtype=object)
    parts = mpc.input(s.si.array(mine), senders=list(range(len(mpc.parties))))
    for z in parts:
        x = x + z
    return x
