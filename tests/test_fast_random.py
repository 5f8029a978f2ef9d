"""runtime/secure/fast_random.py: the bulk Shamir randomness is a correct sharing and looks uniform."""
from __future__ import annotations

import numpy as np

from insightql.runtime.secure.fast_random import np_random_split, random_below


def reconstruct(shares, xs: list[int], p: int):
    """The secrets from the shares of the parties at points xs (Lagrange interpolation at 0)."""
    lam = []
    for i in xs:
        num = den = 1
        for j in xs:
            if j != i:
                num, den = num * j % p, den * (j - i) % p
        lam.append(num * pow(den, -1, p) % p)
    return sum(lam[k] * shares[x - 1] for k, x in enumerate(xs)) % p


def test_random_below_is_in_range_and_spread():
    p = 9671406556917033397649353  # the prime field of a SecInt(51)
    r = random_below(p, 20000)
    assert all(0 <= int(v) < p for v in r)
    assert len(set(r.tolist())) == r.size  # no repeats among 20,000 draws of 83 bits
    for bit in (0, 40, 81):  # each bit is set about half the time (4 sigma: +-283)
        ones = sum((int(v) >> bit) & 1 for v in r)
        assert abs(ones - 10000) < 300, (bit, ones)
    small = random_below(7, 70000)
    counts = np.bincount(small.astype(np.int64), minlength=7)
    assert counts.min() > 9500 and counts.max() < 10500


def test_shares_reconstruct_and_any_single_share_is_fresh():
    from mpyc import finfields

    F = finfields.GF(9671406556917033397649353)
    p = F.modulus
    secrets_ = F.array(np.arange(1000, dtype=object))
    for t, m in ((1, 3), (2, 5)):
        shares = np_random_split(F, secrets_, t, m)
        assert shares.shape == (m, 1000)
        rec = reconstruct(shares, list(range(1, t + 2)), p)  # any t+1 shares determine the secret
        assert list(rec) == list(secrets_.value)
        assert len(set(shares[0].tolist())) == 1000  # party 1's shares of 0..999 look random
    ext = finfields.GF(finfields.gfpx.GFpX(2)(283))  # an extension field falls back to MPyC's own
    assert np_random_split(ext, ext.array(np.array([1, 2, 3], dtype=object)), 1, 3).shape == (3, 3)


def test_word_sized_fields_share_exactly_and_uniformly():
    """Primes below 2**64 / (m + 1) take the uint64 path: the same reconstruction, uniform coefficients."""
    from mpyc import finfields

    from insightql.runtime.secure.fast_random import uniform_words

    for p in (1000000007, (1 << 61) - 1, 1152921504606847009):
        F = finfields.GF(p)
        secrets_ = F.array(np.array([0, 1, p - 1] + list(range(2, 999)), dtype=object))
        for t, m in ((1, 3), (2, 5)):
            shares = np_random_split(F, secrets_, t, m)
            assert shares.shape == (m, 1000) and shares.dtype == np.uint64  # pickled as one buffer
            shares = shares.astype(object)
            assert all(0 <= int(v) < p for v in shares.ravel())
            rec = reconstruct(shares, list(range(2, t + 3)), p)
            assert [int(v) for v in rec] == [int(v) for v in secrets_.value]
    small = uniform_words(7, 70000)
    counts = np.bincount(small.astype(np.int64), minlength=7)
    assert small.size == 70000 and counts.min() > 9500 and counts.max() < 10500
    top = uniform_words((1 << 61) - 1, 20000)
    for bit in (0, 30, 60):
        ones = int(((top >> np.uint64(bit)) & np.uint64(1)).sum())
        assert abs(ones - 10000) < 300, (bit, ones)


def test_two_word_coefficients_are_in_range_and_spread():
    from insightql.runtime.secure.fast_random import uniform_two_words

    p = 9671406556917033397649353  # 83 bits: the fast design's field
    r = uniform_two_words(p, 20000)
    assert r.dtype == object and all(0 <= int(v) < p for v in r)
    for bit in (0, 63, 64, 81):
        ones = sum((int(v) >> bit) & 1 for v in r)
        assert abs(ones - 10000) < 300, (bit, ones)
    q = (1 << 64) + 13  # rejection near the bottom of the range: values above 2**64 are rare but present
    r = uniform_two_words(q, 20000)
    assert all(0 <= int(v) < q for v in r)
    q = (1 << 63) + 29  # 64 bits, too wide for the uint64 Horner path with 3 parties: one word
    r = uniform_two_words(q, 20000)
    assert all(0 <= int(v) < q for v in r) and max(r) > 1 << 62


def test_times_mod_in_words_equals_python_ints():
    """linkage_fast.times_mod (a shuffle step's Lagrange scaling in 64-bit words) == values * c % p,
    at the edges (0, 1, p - 1) and on random values, for word-sized primes and a larger one."""
    from insightql.runtime.secure.linkage_fast import times_mod

    rng = np.random.default_rng(5)
    for p in (1000000007, 288230376151711687, (1 << 59) + 21, 1152921504606846883, 9671406556917033397649353):
        vals = np.array([0, 1, p - 1, p - 2] + [int(v) % p for v in rng.integers(0, 2 ** 63, 5000, dtype=np.uint64)],
                        dtype=object)
        for c in (0, 1, 2, p - 1, (p + 1) // 2, int(rng.integers(0, 2 ** 62)) % p):
            got = times_mod(vals, c, p)
            assert [int(v) for v in got] == [v * c % p for v in vals], (p, c)
