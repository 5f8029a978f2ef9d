"""The fast linkage's arithmetic (issue 16): MiMC against a plaintext reference, the resharing's
cheaper split and recombination (runtime/secure/fast_random.py) against MPyC's own, and MPC vs the
oracle on key patterns the run structure must survive (all keys equal, one dataset empty).

1. `mimc` on secure values equals MiMC computed on Python ints, key by key; the keys' field lets it cube.
2. `integer_lagrange` gives the signed binomials for the points 1..m and None where a coefficient is
   a fraction; `np_recombine` equals `mpyc.thresha.np_recombine` (and the secret) on every point set,
   in fields above and below 64 bits (the latter fall back to MPyC's).
3. The t = 1 split is a degree-1 sharing of the secret whose shares spread over the field.
4. With real parties: every key equal, and the shelter's dataset empty.
"""
from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest

from insightql.compiler.check.catalog import load_catalog
from insightql.runtime.secure import fast_random
from insightql.runtime.secure.linkage_fast import column_type, mimc, mimc_params, mimc_prime

from conftest import assert_same_result, oracle_result, run_mpc
from test_linkage import FIXED_POINT_REL, GENDERS, REGIONS
from test_linkage_fast import fast_cat, plan_for  # noqa: F401 (a fixture)


def mimc_plain(x: int, k: int, p: int) -> int:
    e, consts = mimc_params(p)
    for c in consts:
        x = pow(x + k + c, e, p)
    return (x + k) % p


# -- 1. MiMC against the plaintext reference ----------------------------------------------------------
@pytest.mark.parametrize("bits,cubing", [(51, False), (60, False), (51, True)])
def test_mimc_matches_plaintext_reference(bits, cubing):
    from mpyc.runtime import mpc  # one party in this process: secure arithmetic without peers

    st = mpc.SecInt(bits, p=mimc_prime(bits + 32)) if cubing else mpc.SecInt(bits)
    p = st.field.modulus
    keys = [0, 1, 2, 2 ** 48 - 1, 12345678901, 1 << bits]
    for k in (0, 1, p - 1, 0x1234567890ABCDEF % p):
        x = st.array(np.array(keys, dtype=object))
        key = st.array(np.array([k], dtype=object))
        got = mpc.run(mpc.output(mimc(mpc, x, key)))
        assert [int(v) % p for v in got] == [mimc_plain(v, k, p) for v in keys]  # (SecInt opens signed)
    tags = [mimc_plain(v, 99, p) for v in range(2000)]
    assert len(set(tags)) == 2000  # a permutation: distinct keys, distinct tags


def test_key_field_lets_mimc_cube():
    """The keys' field (`column_type`) has MPyC's bit length for the layout but a prime 2 mod 3: MiMC
    cubes, 53 rounds of 2 products at 83 bits, where MPyC's prime 2^83 - 97 forced x^7 (30 rounds of 4)."""
    from mpyc.runtime import mpc

    a = {"layout": {"key_bits": 48, "sides": [[{"name": "x.val", "bits": 7}]]}, "weights": []}
    st = column_type(mpc, a, 262144)
    p = st.field.modulus
    assert p.bit_length() == mpc.SecInt(st.bit_length).field.modulus.bit_length() == 83
    assert p % 3 == 2 and mimc_params(p)[0] == 3 and len(mimc_params(p)[1]) == 53
    assert mimc_params(mpc.SecInt(st.bit_length).field.modulus)[0] == 7
    assert column_type(mpc, a, 262144) is st  # the same type at every call and party


# -- 2. recombination ---------------------------------------------------------------------------------
def test_integer_lagrange():
    assert fast_random.integer_lagrange((1, 2, 3)) == ((3, -3, 1), 1)
    assert fast_random.integer_lagrange((1, 2, 3, 4, 5)) == ((5, -10, 10, -5, 1), 1)
    assert fast_random.integer_lagrange((1, 2)) == ((2, -1), 1)
    assert fast_random.integer_lagrange((2, 3)) == ((3, -2), 1)
    assert fast_random.integer_lagrange((3, 1)) == ((-1, 3), 2)  # an opening at party 1 (pid 0), t = 1


@pytest.mark.parametrize("bits", [30, 51, 95])
@pytest.mark.parametrize("m,t", [(3, 1), (5, 2)])
def test_recombine_equals_mpyc(bits, m, t):
    from mpyc import thresha
    from mpyc.runtime import mpc

    field = mpc.SecInt(bits).field
    secret = np.array([0, 1, field.modulus - 1] + [int(v) for v in range(10 ** 6, 10 ** 6 + 50)], dtype=object)
    shares = fast_random.np_random_split(field, secret, t, m)
    for size in (t + 1, 2 * t + 1):
        for xs in itertools.permutations(range(1, m + 1), size):
            points = [(x, shares[x - 1]) for x in xs]
            mine, theirs = fast_random.np_recombine(field, points), thresha.np_recombine(field, points)
            assert isinstance(mine, field.array)
            assert list(mine.value) == list(theirs.value) == list(secret), xs


def test_t1_split_is_a_spread_degree_one_sharing():
    from mpyc.runtime import mpc

    field = mpc.SecInt(51).field
    p = field.modulus
    secret = np.full(4000, 7, dtype=object)
    s = fast_random.np_random_split(field, secret, 1, 3)
    assert all(0 <= int(v) < p for v in s.ravel())
    assert list((s[1] - s[0]) % p) == list((s[2] - s[1]) % p)  # on a line: s + i c
    assert list((2 * s[0] - s[1]) % p) == list(secret)  # whose value at 0 is the secret
    high = float(np.mean([int(v) > p // 2 for v in s[0]]))
    assert 0.45 < high < 0.55  # the shares cover the field, not a part of it
    empty = fast_random.np_random_split(field, np.zeros(0, dtype=object), 1, 3)  # an empty vector
    assert empty.shape == (3, 0) and fast_random.np_recombine(field, list(zip((1, 2, 3), empty))).value.shape == (0,)


# -- 4. key patterns with real parties -----------------------------------------------------------------
def write_data(folder, keys: dict[str, list]) -> dict[str, str]:
    out = {}
    for j, (name, ks) in enumerate(keys.items()):
        path = folder / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["person_id", "case_id", "prs_Gender", "exp_Region", "prs_Age", "hours_worked_week",
                        "debt_eur"])
            for i, k in enumerate(ks):
                w.writerow([k, i + 1, GENDERS[(i + j) % 2], REGIONS[1 + i % 3], (7 * i) % 100, 10 + i, f"{i}.50"])
        out[name] = str(path)
    return out


CASES = {
    # ngo's and shelter's keys are declared unique: every row of every dataset has the key 42
    "all_equal": {"police_victims": [42] * 12, "ngo_clients": [42], "shelter_stays": [42]},
    "empty_shelter": {"police_victims": [1, 2, 2, 3, "", 5], "ngo_clients": [2, 3, 4, ""], "shelter_stays": []},
}


@pytest.mark.mpc
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", ["inner_both_sides", "distinct_three"])
def test_fast_key_patterns_match_oracle(case, name, fast_cat, tmp_path):  # noqa: F811
    plan = plan_for(name, fast_cat)
    data = write_data(tmp_path, CASES[case])
    got = run_mpc(plan, data, catalog_path=fast_cat)
    assert_same_result(plan, got, oracle_result(plan, load_catalog(fast_cat), data), rel=FIXED_POINT_REL)
