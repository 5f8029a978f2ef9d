"""Vectorised randomness for MPyC's Shamir sharing of arrays.

MPyC 0.11 draws every random polynomial coefficient of `thresha.np_random_split` (used by every
array input and by the resharing after every array multiplication) with `secrets.randbelow`: one
Python call and one `os.urandom` system call per element. Profiled on a party of a 3-party run
(20,000 keys through MiMC plus a shuffle), that was 35 s of 62 s. `np_random_split` here draws the
same distribution in bulk: one `os.urandom` call for all coefficients, converted with numpy, each
value taken modulo p from at least 40 more bits than p has (statistical distance from uniform
below 2^-40 per value; MPyC's own comparisons mask with 2^-30). The arithmetic after the coefficients is MPyC's own.

`install()` replaces `mpyc.thresha.np_random_split` for prime fields (extension fields keep
MPyC's version); runtime/launch/mpyc_setup.py calls it when a party starts.
"""
from __future__ import annotations

import os

import numpy as np

_ORIGINAL = None


def random_below(p: int, count: int) -> np.ndarray:
    """count values in [0, p) as a Python-int object array, each within 2^-40 of uniform."""
    words = (p.bit_length() + 40 + 63) // 64
    raw = np.frombuffer(os.urandom(8 * words * count), dtype=np.uint64).reshape(words, count)
    acc = raw[0].astype(object)
    for j in range(1, words):
        acc = acc * (1 << 64) + raw[j].astype(object)
    return acc % p


def np_random_split(field, s, t, m):
    """Drop-in for mpyc.thresha.np_random_split: shares of each secret in s, one row per party."""
    p = field.modulus
    if not isinstance(p, int) or getattr(field, "ext_deg", 1) != 1:
        from mpyc import thresha

        return (_ORIGINAL or thresha.np_random_split)(field, s, t, m)
    if isinstance(s, field.array):
        s = s.value
    n = len(s)
    coefficients = random_below(p, t * n).reshape(t, n) if t else np.empty((0, n), dtype=object)
    V = np.vander(np.array(list(range(1, m + 1)), dtype=object), N=t + 1, increasing=True)
    return (V @ np.concatenate((s.reshape(1, n), coefficients))) % p


def install() -> None:
    global _ORIGINAL
    from mpyc import thresha

    if thresha.np_random_split is not np_random_split:
        _ORIGINAL = thresha.np_random_split
        thresha.np_random_split = np_random_split
