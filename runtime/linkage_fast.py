"""Record linkage, the fast design (spec/linkage.md section 6): shuffle, keyed PRF, open the tags.

Chosen only when every linked dataset's policy says `linkage = "fast"`, because it opens the match
pattern (leakage item `match_pattern`). The packed rows of all owners (compiler/linkage_local.py)
are concatenated and

1. shuffled by a permutation that no coalition of t parties knows (`shuffle`, linear cost: for each
   set T of t parties, t+1 parties outside T turn their Shamir shares into additive ones, permute
   them by a permutation only they know, and re-share -- Laur, Willemson, Zhang 2011);
2. each row's key goes through MiMC (`mimc`) under a secret random key; padding rows and rows
   without a key get a secret random offset first, so they never match anything;
3. the tags are opened (runtime/reveal.py `open_match_tags`), and every party sorts the shuffled
   positions by tag in the clear. Equal tags are equal keys: runs of one key are contiguous and
   their boundaries public, so what the oblivious design pays a sort and log n rounds of scans for
   becomes local index arithmetic on shares (gathers, segment sums); only the OR over a run (for
   distinct counts) still multiplies.
The side of a row (which owner it came from) and all payload fields stay secret-shared.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import secrets

import numpy as np

MIMC_DOMAIN = b"insightql/mimc/v1"
RANDOM_OFFSET_BITS = 64


# -- the shuffle ------------------------------------------------------------------------------
def _lagrange_at_zero(p: int, xs: list[int], x_i: int) -> int:
    num = den = 1
    for x_j in xs:
        if x_j != x_i:
            num = num * x_j % p
            den = den * (x_j - x_i) % p
    return num * pow(den, -1, p) % p


async def shuffle(mpc, x):
    """x (n, ...) secure array, rows permuted by pi_T1 ... pi_Tc, one permutation per set T of t
    parties, known only to t+1 parties outside T: every coalition of t misses one of them."""
    stype = type(x)
    field = stype.sectype.field
    p, n = field.modulus, x.shape[0]
    m, t = len(mpc.parties), mpc.threshold
    for T in itertools.combinations(range(m), t):
        A = [q for q in range(m) if q not in T][:t + 1]
        seed = await mpc.transfer(secrets.randbits(128) if mpc.pid == A[0] else None,
                                  senders=[A[0]], receivers=A)
        if mpc.pid in A:
            share = await mpc.gather(x)
            lam = _lagrange_at_zero(p, [a + 1 for a in A], mpc.pid + 1)
            perm = np.random.Generator(np.random.PCG64(seed[0])).permutation(n)
            mine = field.array((share.value * lam % p)[perm], check=False)
        else:
            mine = field.array(np.zeros(x.shape, dtype=object), check=False)
        parts = mpc.input(stype(mine), senders=A)
        x = parts[0]
        for part in parts[1:]:
            x = x + part
    return x


# -- the keyed PRF ----------------------------------------------------------------------------
def mimc_params(p: int) -> tuple[int, list[int]]:
    """(exponent e, round constants) for MiMC over GF(p): the smallest e with gcd(e, p-1) = 1, so
    x -> x**e is a permutation, and ceil(log_e p) rounds with constants from SHA-256 (c_0 = 0)."""
    e = next(e for e in (3, 5, 7, 11, 13, 17, 19, 23) if math.gcd(e, p - 1) == 1)
    rounds = math.ceil(p.bit_length() / math.log2(e))
    consts = [0] + [int.from_bytes(hashlib.sha256(MIMC_DOMAIN + i.to_bytes(4, "big")).digest(), "big") % p
                    for i in range(1, rounds)]
    return e, consts


def _power(y, e: int):
    out, base = None, y
    while e:
        if e & 1:
            out = base if out is None else out * base
        e >>= 1
        if e:
            base = base * base
    return out


def mimc(mpc, x, key):
    """MiMC-e/e: x -> (x + k + c_i)**e per round, then + k. Vectorised: one secure product per
    squaring/multiplication over the whole vector per round."""
    e, consts = mimc_params(type(x).sectype.field.modulus)
    for c in consts:
        x = _power(x + key + c, e)
    return x + key


def random_array(mpc, stype, n: int, bound: int | None = None):
    """A secret random vector from pseudorandom secret sharing (no communication)."""
    return stype(mpc._np_randoms(stype.sectype.field, n, bound), (n,))


# -- the public run structure after the tags are open ------------------------------------------
class Runs:
    """Positions grouped by equal tag: `order` sorts the shuffled positions so that each run is
    contiguous; run r is [starts[r], starts[r+1]) in that order."""

    def __init__(self, tags: list[int]):
        tags_arr = np.empty(len(tags), dtype=object)
        tags_arr[:] = tags
        self.order = np.argsort(tags_arr, kind="stable")
        s = tags_arr[self.order]
        n = len(tags)
        self.n = n
        new = np.ones(n, dtype=bool)
        if n > 1:
            new[1:] = s[1:] != s[:-1]
        self.starts = np.flatnonzero(new)
        self.sizes = np.diff(np.append(self.starts, n))
        self.run_of = np.cumsum(new) - 1  # run number of each position (in run order)

    def histogram(self) -> dict[int, int]:
        sizes, counts = np.unique(self.sizes, return_counts=True)
        return {int(s): int(c) for s, c in zip(sizes, counts)}

    def sums(self, mpc, z):
        """z (C, n) in run order -> (C, runs): per-run sums, local (prefix sums and gathers)."""
        stype = type(z)
        zero = stype(stype.sectype.field.array(np.zeros((z.shape[0], 1), dtype=object), check=False))
        cs = mpc.np_concatenate([zero, mpc.np_cumsum(z, axis=1)], axis=1)
        ends = np.append(self.starts[1:], self.n)
        return cs[:, ends] - cs[:, self.starts]

    def spread(self, mpc, z):
        """z (C, n) -> (C, n): each position gets the sum over its run."""
        return self.sums(mpc, z)[:, self.run_of]

    def or_total(self, mpc, z):
        """z (C, n) of 0/1 in run order -> (C,): the number of runs holding at least one 1 in each
        row. Runs of one position add their bit; longer runs 1 - prod(1 - z), a product tree."""
        C = z.shape[0]
        total = None
        for s in np.unique(self.sizes):
            firsts = self.starts[self.sizes == s]
            g = z[:, (firsts[:, None] + np.arange(s)).ravel()]
            if s == 1:
                part = mpc.np_sum(g, axis=1)
            else:
                q = (1 - g).reshape(C, firsts.size, int(s))
                while q.shape[2] > 1:
                    h = q.shape[2] // 2
                    prod = q[:, :, :h] * q[:, :, h:2 * h]
                    q = prod if q.shape[2] == 2 * h else mpc.np_concatenate([prod, q[:, :, 2 * h:]], axis=2)
                part = firsts.size - mpc.np_sum(q.reshape(C, firsts.size), axis=1)
            total = part if total is None else total + part
        return total


async def open_runs(mpc, node: dict, key, real):
    """Tag every row's key (random offset where `real` is 0), open the tags, return the Runs."""
    from .reveal import open_match_tags

    stype = type(key)
    n = key.shape[0]
    offset = random_array(mpc, stype, n, 2 ** RANDOM_OFFSET_BITS)
    tags = mimc(mpc, key + (1 - real) * offset, random_array(mpc, stype, 1))
    return Runs(await open_match_tags(mpc, node, tags))
