"""Vectorised randomness for MPyC's Shamir sharing of arrays.

MPyC 0.11 draws every random polynomial coefficient of `thresha.np_random_split` (used by every
array input and by the resharing after every array multiplication) with `secrets.randbelow`: one
Python call and one `os.urandom` system call per element. Profiled on a party of a 3-party run
(20,000 keys through MiMC plus a shuffle), that was 35 s of 62 s. `np_random_split` here draws the
same distribution in bulk: one `os.urandom` call for all coefficients, converted with numpy, each
value taken modulo p from at least 40 more bits than p has (statistical distance from uniform
below 2^-40 per value; MPyC's own comparisons mask with 2^-30). The arithmetic after the coefficients is MPyC's own.

Word-sized primes (p * (m + 1) < 2**64: the oblivious linkage's fields, runtime/secure/linkage_ops.py)
take a faster path: coefficients by rejection sampling of p's bit length from 64-bit words (exactly
uniform) and the polynomials evaluated by Horner's rule in numpy uint64, converted to Python ints once.
Profiled on a party of a radix sort (4,096 rows, 60-bit field), the object-array version was a third
of the party's CPU.

`install()` replaces `mpyc.thresha.np_random_split` for prime fields (extension fields keep
MPyC's version); runtime/launch/mpyc_setup.py calls it when a party starts.
"""
from __future__ import annotations

import functools
import math
import os
from fractions import Fraction

import numpy as np

_ORIGINAL = None
_ORIGINAL_RECOMBINE = None


def random_below(p: int, count: int) -> np.ndarray:
    """count values in [0, p) as a Python-int object array, each within 2^-40 of uniform."""
    words = (p.bit_length() + 40 + 63) // 64
    raw = np.frombuffer(os.urandom(8 * words * count), dtype=np.uint64).reshape(words, count)
    acc = raw[0].astype(object)
    for j in range(1, words):
        acc = acc * (1 << 64) + raw[j].astype(object)
    return acc % p


def uniform_two_words(p: int, count: int) -> np.ndarray:
    """count values uniform in [0, p) as Python ints, p < 2**128: rejection sampling of
    p.bit_length() bits from two 64-bit words compared in uint64, no big-integer modulo."""
    b = p.bit_length()
    if b <= 64:  # (a shift by 64 bits would be undefined in numpy)
        return uniform_words(p, count).astype(object)
    if count == 0:
        return np.zeros(0, dtype=object)
    ph, pl = np.uint64(p >> 64), np.uint64(p & ((1 << 64) - 1))
    hi_parts, lo_parts, got = [], [], 0
    while got < count:
        want = (count - got) * (1 << b) // p * 33 // 32 + 16  # about 1/32 more than p's acceptance rate needs
        raw = np.frombuffer(os.urandom(16 * want), dtype=np.uint64).reshape(2, want)
        hi, lo = raw[0] >> np.uint64(128 - b), raw[1]
        ok = (hi < ph) | ((hi == ph) & (lo < pl))
        hi_parts.append(hi[ok])
        lo_parts.append(lo[ok])
        got += int(ok.sum())
    hi, lo = np.concatenate(hi_parts)[:count], np.concatenate(lo_parts)[:count]
    return (hi.astype(object) << 64) + lo  # (uint64 + Python int: numpy converts each word once)


def uniform_words(p: int, count: int) -> np.ndarray:
    """count values uniform in [0, p) as uint64, p < 2**64: rejection sampling of p.bit_length() bits."""
    b = p.bit_length()
    out = np.empty(0, dtype=np.uint64)
    while out.size < count:
        want = count - out.size
        raw = np.frombuffer(os.urandom(8 * (want + want // 2 + 16)), dtype=np.uint64) >> np.uint64(64 - b)
        out = np.concatenate([out, raw[raw < np.uint64(p)]])
    return out[:count]


def _split_words(p: int, s: np.ndarray, t: int, m: int) -> np.ndarray:
    """np_random_split for p * (m + 1) < 2**64: Horner's rule in uint64, no value ever reaches 2**64.
    The shares stay uint64 (an (m, n) array): MPyC pickles each party's row for sending, and a
    uint64 row pickles as one buffer where an object row pickles every Python int (dumps and loads
    were a sixth of a radix-sorting party's CPU); the receiver's `field.array` turns it into Python
    ints as it does any value array."""
    n = len(s)
    sw = s.astype(np.uint64) if n else np.zeros(0, dtype=np.uint64)
    c = uniform_words(p, t * n).reshape(t, n)
    P = np.uint64(p)
    out = np.empty((m, n), dtype=np.uint64)
    for i in range(1, m + 1):
        acc = np.zeros(n, dtype=np.uint64)
        x = np.uint64(i)
        for k in range(t - 1, -1, -1):
            acc = (acc * x + c[k]) % P
        out[i - 1] = (acc * x + sw) % P
    return out


def np_random_split(field, s, t, m):
    """Drop-in for mpyc.thresha.np_random_split: shares of each secret in s, one row per party."""
    p = field.modulus
    if not isinstance(p, int) or getattr(field, "ext_deg", 1) != 1:
        from mpyc import thresha

        return (_ORIGINAL or thresha.np_random_split)(field, s, t, m)
    if isinstance(s, field.array):
        s = s.value
    if p * (m + 1) < 1 << 64:
        return _split_words(p, s, t, m)
    n = len(s)
    if t == 1 and p.bit_length() <= 128:  # s + i*c for i = 1..m as a chain of additions (the fast linkage's MiMC)
        c = uniform_two_words(p, n)
        out = np.empty((m, n), dtype=object)
        acc = s
        for i in range(m):
            acc = acc + c
            acc %= p
            out[i] = acc
        return out
    if p.bit_length() <= 128:  # Horner's rule with small ints: fewer big-integer operations than V @ C
        c = uniform_two_words(p, t * n).reshape(t, n) if t else np.empty((0, n), dtype=object)
        out = np.empty((m, n), dtype=object)
        for i in range(1, m + 1):
            acc = s
            if t:
                acc = c[t - 1]
                for k in range(t - 2, -1, -1):
                    acc = acc * i + c[k]
                acc = acc * i + s
            out[i - 1] = acc % p
        return out
    coefficients = random_below(p, t * n).reshape(t, n) if t else np.empty((0, n), dtype=object)
    V = np.vander(np.array(list(range(1, m + 1)), dtype=object), N=t + 1, increasing=True)
    return (V @ np.concatenate((s.reshape(1, n), coefficients))) % p


@functools.cache
def integer_lagrange(xs: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """The Lagrange coefficients at 0 for the points xs as (integer numerators, common denominator).
    For the points 1..m (a resharing after a product, with 2t + 1 = m) they are (-1)^(i-1) C(m, i)
    over 1; an opening from t + 1 parties may need a denominator ((3, 1): (-1, 3) / 2)."""
    fracs = []
    for i, x_i in enumerate(xs):
        c = Fraction(1)
        for j, x_j in enumerate(xs):
            if i != j:
                c *= Fraction(-x_j, x_i - x_j)
        fracs.append(c)
    den = math.lcm(*(c.denominator for c in fracs))
    return tuple(int(c * den) for c in fracs), den


def np_recombine(field, points, x_rs=0):
    """Drop-in for mpyc.thresha.np_recombine. For prime fields above 64 bits (the 83-bit field of the
    fast linkage's MiMC) and x_rs = 0: the shares times small integers, grouped by coefficient
    (3 (s1 - s2) + s3 for the points 1, 2, 3), one reduction, then one product by the inverse of the
    common denominator if there is one. MPyC's version reduces every share again and multiplies each
    by a full-size field element (about half the CPU of a resharing's receiver)."""
    p = field.modulus
    if not (isinstance(x_rs, int) and x_rs == 0 and isinstance(p, int) and p >= 1 << 64
            and getattr(field, "ext_deg", 1) == 1):
        from mpyc import thresha

        return (_ORIGINAL_RECOMBINE or thresha.np_recombine)(field, points, x_rs)
    nums, den = integer_lagrange(tuple(int(x) for x, _ in points))
    groups: dict[int, np.ndarray] = {}  # |c| -> sum of +-shares
    for c, (_, share) in zip(nums, points):
        v = share.value if isinstance(share, field.array) else np.asarray(share, dtype=object)
        if abs(c) in groups:
            groups[abs(c)] = groups[abs(c)] + v if c > 0 else groups[abs(c)] - v
        else:
            groups[abs(c)] = v if c > 0 else -v
    acc = None
    for c, v in groups.items():
        term = v if c == 1 else v * c
        acc = term if acc is None else acc + term
    acc = acc % p
    if den != 1:
        acc = acc * pow(den, -1, p) % p
    return field.array(acc, check=False)


def install() -> None:
    global _ORIGINAL, _ORIGINAL_RECOMBINE
    from mpyc import thresha

    if thresha.np_random_split is not np_random_split:
        _ORIGINAL = thresha.np_random_split
        thresha.np_random_split = np_random_split
    if thresha.np_recombine is not np_recombine:
        _ORIGINAL_RECOMBINE = thresha.np_recombine
        thresha.np_recombine = np_recombine
