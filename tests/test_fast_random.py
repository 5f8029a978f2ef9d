"""runtime/secure/fast_random.py: the bulk Shamir randomness is a correct sharing and looks uniform."""
from __future__ import annotations

import numpy as np

from insightql.runtime.secure.fast_random import np_random_split, random_below


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
        xs = list(range(1, t + 2))  # any t+1 shares determine the secret (Lagrange at 0)
        lam = []
        for i in xs:
            num = den = 1
            for j in xs:
                if j != i:
                    num, den = num * j % p, den * (j - i) % p
            lam.append(num * pow(den, -1, p) % p)
        rec = sum(lam[k] * shares[xs[k] - 1] for k in range(t + 1)) % p
        assert list(rec) == list(secrets_.value)
        assert len(set(shares[0].tolist())) == 1000  # party 1's shares of 0..999 look random
    ext = finfields.GF(finfields.gfpx.GFpX(2)(283))  # an extension field falls back to MPyC's own
    assert np_random_split(ext, ext.array(np.array([1, 2, 3], dtype=object)), 1, 3).shape == (3, 3)
