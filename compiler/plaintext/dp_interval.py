"""The expected error of a differentially private value (spec/privacy.md 6): the half-width h of
the central interval [-h, h] that holds the noise with probability 95%.

The noise of a `dp_noise` node is the sum of `parties` independent discrete Laplace samples of
scale s, P(z) = (1 - q) / (1 + q) * q^|z| with q = exp(-1/s). Its distribution is computed by
FFT convolution on [-20 s, 20 s] per sample (mass beyond: < e^-20); above s = 500 on a grid of
ceil(s / 500) with the continuous Laplace density, which the discrete one approaches. A figure for
people, computed at explain and result time, never part of a plan (no float in a plan's hash).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def noise_interval(scale: str | Fraction, parties: int, level: float = 0.95) -> int:
    """Half-width h (in the value's integer units) with P(|noise| <= h) >= level."""
    s = float(Fraction(scale))
    g = max(1, math.ceil(s / 500))
    half = math.ceil(20 * s / g) + 1
    x = np.arange(-half, half + 1, dtype=float) * g
    if g == 1:
        q = math.exp(-1 / s)
        p = (1 - q) / (1 + q) * np.power(q, np.abs(x))
    else:
        p = np.exp(-np.abs(x) / s)
    p /= p.sum()
    total = p
    for _ in range(max(1, parties) - 1):
        n = len(total) + len(p) - 1
        size = 1 << (n - 1).bit_length()
        total = np.fft.irfft(np.fft.rfft(total, size) * np.fft.rfft(p, size), size)[:n]
        total = np.clip(total, 0, None)
        total /= total.sum()
    mid = len(total) // 2
    inside = np.concatenate([[total[mid]], total[mid + 1:] + total[mid - 1::-1][:len(total) - mid - 1]]).cumsum()
    h = int(np.searchsorted(inside, level))
    return h * g


def interval_text(h: int, scale_digits: int) -> str:
    """'± h' in the value's units (a decimal column's sums are in units of 10^-scale)."""
    return f"± {h / 10 ** scale_digits:g}" if scale_digits else f"± {h}"


def output_noise(o: dict, parties: int) -> str | None:
    """An output's 95% noise interval in its own units, from the plan's `dp` entries (the table
    node's outputs, compiler/plan/circuit.py) and the number of computing parties (one sample
    each): '± h' for a count or a sum; for a quotient (AVG) the intervals of its numerator and
    denominator. None for a value without DP."""
    dp = o.get("dp")
    if not dp:
        return None
    scale = o.get("scale", 0) if len(dp) == 1 else 0
    parts = [interval_text(noise_interval(d["scale"], parties), scale if len(dp) == 1 else 0) for d in dp]
    if len(parts) == 1:
        return parts[0]
    sum_digits = o.get("scale", 0)
    num = interval_text(noise_interval(dp[0]["scale"], parties), sum_digits)
    return f"noisy SUM {num} / noisy COUNT {parts[1]}"
