"""Record linkage, the fast design (spec/linkage.md section 6): shuffle, keyed PRF, open the tags.

Chosen only when every linked dataset's policy says `linkage = "fast"`, because it opens the match
pattern (leakage item `match_pattern`). Each owner turns its packed rows (compiler/plaintext/linkage_local.py)
into columns locally (`owner_columns`: the key, then 0/1 one-hot cells, present/keyed flags and
measure values; padding rows and rows without a key get a unique key of their own so that they
never match), shares the matrix, and then

1. the rows of all owners are shuffled by a permutation that no coalition of t parties knows
   (`shuffle`, linear cost: for each set T of t parties, t+1 parties outside T turn their Shamir
   shares into additive ones, permute them by a permutation only they know, and re-share --
   Laur, Willemson, Zhang 2011);
2. each row's key goes through MiMC (`mimc`) under a secret random key and the tags are opened
   (runtime/secure/reveal.py `open_match_tags`); every party sorts the shuffled positions by tag in the
   clear. Equal tags are equal keys: the runs of one key are contiguous and public, so what the
   oblivious design pays a sort and log n rounds of scans for is local index arithmetic on shares
   (gathers, segment sums). Products remain only for the joint (U cell x M cell) one-hot, the one
   secure matrix product per join, and the OR over a run where distinct keys are counted.
Which owner a row came from and every payload column stay secret-shared.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import math
import os
import sys
import time

import numpy as np

MIMC_DOMAIN = b"insightql/mimc/v1"


class Phases:
    """IQ_PROFILE=1: wall time of each phase at this party (waits for the phase's values, so it
    serialises what would otherwise overlap; for profiling only)."""

    def __init__(self, mpc, what: str):
        self.mpc, self.what, self.t = mpc, what, time.perf_counter()
        self.on = bool(os.environ.get("IQ_PROFILE"))

    async def done(self, name: str, *values):
        if not self.on:
            return
        for v in values:
            await self.mpc.gather(v)
        now = time.perf_counter()
        print(f"[{self.mpc.pid}] profile {self.what} {name}: {now - self.t:.3f}s", file=sys.stderr, flush=True)
        self.t = now


# -- the shuffle ------------------------------------------------------------------------------
def _lagrange_at_zero(p: int, xs: list[int], x_i: int) -> int:
    num = den = 1
    for x_j in xs:
        if x_j != x_i:
            num = num * x_j % p
            den = den * (x_j - x_i) % p
    return num * pow(den, -1, p) % p


def shuffle_sets(mpc) -> list[list[int]]:
    """Per set T of t parties, the t+1 parties outside T that hold one permutation of a shuffle."""
    m, t = len(mpc.parties), mpc.threshold
    return [[q for q in range(m) if q not in T][:t + 1] for T in itertools.combinations(range(m), t)]


async def shuffle_seeds(mpc) -> list:
    """One fresh 128-bit seed per set of `shuffle_sets`, sent by the set's first party to the others
    of the set: a party holds the seeds of the sets it belongs to, None for the others. A sort draws
    them once (one round per set, once) and derives one permutation per shuffle from
    (seed, shuffle number), instead of a round per set in every pass."""
    from insightql.runtime.secure.reveal import send_shuffle_seed

    return [await send_shuffle_seed(mpc, A[0], A) for A in shuffle_sets(mpc)]


def derived_permutation(seed: int, counter: int, n: int) -> np.ndarray:
    """The permutation of n for shuffle number `counter` under `seed`: PCG64 seeded by
    SHA-256(seed, counter), so the shuffles of one sort are independent of each other."""
    d = hashlib.sha256(seed.to_bytes(16, "big") + counter.to_bytes(8, "big")).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(d[:16], "big"))).permutation(n)


async def shuffle(mpc, x, steps: list | None = None, seeds: tuple | None = None):
    """x (n, ...) secure array, rows permuted by pi_T1 ... pi_Tc, one permutation per set T of t
    parties, known only to t+1 parties outside T: every coalition of t misses one of them. With a
    list `steps`, each step's (parties, permutation or None) is appended to it, for `unshuffle`.
    `seeds` = (shuffle_seeds(mpc), counter): permutations derived from seeds sent once per sort
    (no round for seeds here); without, each set's holder sends a fresh seed (one round per set)."""
    from insightql.runtime.secure.reveal import send_shuffle_seed

    n = x.shape[0]
    for j, A in enumerate(shuffle_sets(mpc)):
        if seeds is None:
            seed = await send_shuffle_seed(mpc, A[0], A)
            perm = np.random.Generator(np.random.PCG64(seed)).permutation(n) if mpc.pid in A else None
        else:
            perm = derived_permutation(seeds[0][j], seeds[1], n) if mpc.pid in A else None
        x = await _reshare_permuted(mpc, x, A, perm)
        if steps is not None:
            steps.append((A, perm))
    return x


async def unshuffle(mpc, x, steps: list):
    """The inverse of the `shuffle` that recorded `steps`, applied to rows of the same length: the
    same parties re-share, each step's inverse permutation in reverse order."""
    for A, perm in reversed(steps):
        x = await _reshare_permuted(mpc, x, A, None if perm is None else np.argsort(perm))
    return x


def times_mod(values: np.ndarray, c: int, p: int) -> np.ndarray:
    """values * c % p for values in [0, p) (an object array): for p < 2**60, in 64-bit integers with
    the quotient from an 80-bit long double (off by at most one, then corrected), about half the
    CPU of Python ints (a shuffle step scales every share by a Lagrange coefficient); elsewhere, or
    where long double has no 64-bit mantissa, Python ints."""
    if p >= 1 << 60 or np.finfo(np.longdouble).nmant < 63 or not 0 <= c < p:
        return values * c % p
    w = values.astype(np.uint64)
    q = np.floor(w.astype(np.longdouble) * np.longdouble(c) / np.longdouble(p)).astype(np.uint64)
    r = (w * np.uint64(c) - q * np.uint64(p)).view(np.int64)  # exact modulo 2**64; in (-p, 2p)
    r = np.where(r < 0, r + p, r)
    return np.where(r >= p, r - p, r)


async def _reshare_permuted(mpc, x, A: list[int], perm):
    """The parties in A turn their Shamir shares into additive ones, permute the rows by `perm` and
    re-share them; the sum of their sharings is a Shamir sharing of x[perm]. `perm` may also be a
    tuple of one permutation per column of a 2-D x (runtime/secure/radix.py fuses two shuffles' steps)."""
    stype = type(x)
    field = stype.sectype.field
    p = field.modulus
    if mpc.pid in A:
        share = await mpc.gather(x)
        lam = _lagrange_at_zero(p, [a + 1 for a in A], mpc.pid + 1)
        v = times_mod(share.value, lam, p)
        if isinstance(perm, tuple):
            v = np.stack([v[q, j] for j, q in enumerate(perm)], axis=1)
        else:
            v = v[perm]
        mine = field.array(v, check=False)
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
        x = _power(x + (key + c), e)  # the round key first: one vector addition per round, not two
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


async def open_runs(mpc, node: dict, key, phases: "Phases") -> Runs:
    """Tag every row's key, open the tags, return the Runs."""
    from insightql.runtime.secure.reveal import open_match_tags

    tags = mimc(mpc, key, random_array(mpc, type(key), 1))
    await phases.done("prf", tags)
    runs = Runs(await open_match_tags(mpc, node, tags))
    await phases.done("open+runs")
    return runs


# -- the owner's columns, and the secure ops -----------------------------------------------------
def key_width(layout: dict) -> int:
    """Bits of the key column: real keys < 2**K, padding keys 2**K + (vector << 32) + row."""
    return max(layout["key_bits"], 36) + 1


def columns(a: dict) -> list[tuple[int, str]]:
    """(side, name) of each shared column after the key, the same list for every owner."""
    lay = a["layout"]
    if lay["mode"] == "distinct":
        return [(0, f"hot{c}") for c in range(a["cells"])]
    out = [(0, "match")] + [(0, f"hot{c}") for c in range(a["cells_u"])]
    out += [(1, "keyed")] + [(1, f"hot{c}") for c in range(a["cells_m"])]
    for w in a["weights"]:
        if "field" in w:
            out += [(w["side"], w["field"] + ".nn"), (w["side"], w["field"] + ".val")]
    return list(dict.fromkeys(out))


def _sum_bits(a: dict, n: int) -> int:
    val_bits = [f["bits"] for side in a["layout"]["sides"] for f in side if f["name"].endswith(".val")]
    lo = [abs(int(w.get("lo", 0))) for w in a.get("weights", []) if "field" in w]
    return max(max(val_bits, default=1), max(lo, default=0).bit_length()) + 1 + max(n, 1).bit_length()


@functools.cache
def mimc_prime(bits: int) -> int:
    """The smallest prime of `bits` bits with p = 2 (mod 3): x -> x^3 is then a permutation of GF(p),
    so MiMC cubes (2 products per round, 106 at 83 bits). MPyC's own prime for SecInt(51), 2^83 - 97,
    is 1 mod 3 (and 1 mod 5), which forced x^7: 4 products per round, 120 in all."""
    from mpyc.gmpy import next_prime

    p = int(next_prime(1 << (bits - 1)))
    while p % 3 != 2:
        p = int(next_prime(p))
    return p


def column_type(mpc, a: dict, n: int):
    """The keys' SecInt, whose prime field MiMC works in: the bit length MPyC would give it (about 83
    bits: the key's security against an owner's search and the collision bound, section 6.2a of
    spec/linkage.md) but a prime of `mimc_prime`; wide enough for the sums too, as it was when every
    column used it."""
    l = max(key_width(a["layout"]), _sum_bits(a, n)) + 2
    return mpc.SecInt(l, p=mimc_prime(l + mpc.options.sec_param + 2))


def value_type(mpc, a: dict, n: int):
    """The other columns' SecInt (0/1 cells and flags, measures, per-cell sums over n rows): about a
    60-bit field instead of the keys' 83 bits, so the shuffle and the aggregation work on smaller
    numbers and Shamir splitting takes the uint64 path (runtime/secure/fast_random.py)."""
    return mpc.SecInt(max(_sum_bits(a, n) + 2, 24))


async def shuffle_pair(mpc, rows):
    """(keys, columns) shuffled by the SAME permutations: seeds drawn once, one derived shuffle each."""
    key, cols = rows
    seeds = await shuffle_seeds(mpc)
    return await shuffle(mpc, key, None, (seeds, 0)), await shuffle(mpc, cols, None, (seeds, 0))


def owner_columns(a: dict, vector: int, packed: list[int]) -> np.ndarray:
    """The owner's (rows, 1 + columns) matrix from its packed rows, computed locally before sharing.
    Rows that are padding (or, in a join, have no key) are zero but for a unique key."""
    from insightql.compiler.plaintext.linkage_local import decode

    lay = a["layout"]
    K = lay["key_bits"]
    cols = columns(a)
    out = np.zeros((len(packed), 1 + len(cols)), dtype=object)
    for r, v in enumerate(packed):
        key, side, f = decode(lay, int(v))
        real = f["present"] and f.get("keyed", 1)
        out[r, 0] = key if real else (1 << K) + (vector << 32) + r
        if not f["present"]:
            continue
        for j, (s, name) in enumerate(cols, 1):
            if s == side:
                out[r, j] = int(real) if name == "match" else \
                    int(f["cell"] == int(name[3:])) if name.startswith("hot") else f[name]
    return out


async def distinct(mpc, node: dict, a: dict, rows):
    """Per cell, the number of runs (distinct keys) holding a row of that cell; `rows` are all
    owners' (keys, columns), concatenated."""
    phases = Phases(mpc, node["id"])
    key, x = await shuffle_pair(mpc, rows)
    await phases.done("shuffle", key, x)
    runs = await open_runs(mpc, node, key, phases)
    out = runs.or_total(mpc, mpc.np_transpose(x[runs.order]))
    await phases.done("aggregate", out)
    return out


async def join(mpc, node: dict, a: dict, rows, m_unique: bool):
    """Per weight and cell, the sums over the joined rows (`rows`: U's (keys, columns), then M's).
    U's columns reach the M rows of their key by segment sums; every weight is then a column, so
    one joint one-hot product and one matrix product do the aggregation."""
    phases = Phases(mpc, node["id"])
    cols = {c: j for j, c in enumerate(columns(a))}
    key, x = await shuffle_pair(mpc, rows)
    await phases.done("shuffle", key, x)
    n = x.shape[0]
    runs = await open_runs(mpc, node, key, phases)
    X = mpc.np_transpose(x[runs.order])
    u_names = [c for c in cols if c[0] == 0]
    spread = runs.spread(mpc, X[np.array([cols[c] for c in u_names])])
    carried = {c: spread[i] for i, c in enumerate(u_names)}
    match = carried[(0, "match")]
    cu, cm = a["cells_u"], a["cells_m"]
    hot_u = mpc.np_stack([carried[(0, f"hot{c}")] for c in range(cu)])
    if a["kind"] == "left":  # unmatched left rows go to the NULL right-side cell
        null = np.zeros((cu, 1), dtype=object)
        null[a["null_cell_u"], 0] = 1
        hot_u = hot_u + (1 - match).reshape(1, n) * null
    hot_m = X[np.array([cols[(1, f"hot{c}")] for c in range(cm)])]
    joint = (hot_u.reshape(cu, 1, n) * hot_m.reshape(1, cm, n)).reshape(cu * cm, n)
    st = type(x).sectype
    weights, persons = [], None
    for w in a["weights"]:
        if w["kind"] == "rows" or (w["kind"] == "persons" and not m_unique):
            weights.append(st.array(np.ones(n, dtype=object)))
        elif w["kind"] == "persons":  # each M row is its own key
            weights.append(X[cols[(1, "keyed")]])
        else:
            pick = carried.__getitem__ if w["side"] == 0 else (lambda c: X[cols[c]])
            nn, val = pick((w["side"], w["field"] + ".nn")), pick((w["side"], w["field"] + ".val"))
            weights.append(nn if w["kind"] == "count" else val + w["lo"] * nn)
    out = joint @ mpc.np_transpose(mpc.np_stack(weights))  # (cells, weights): only this is communicated
    if any(w["kind"] == "persons" for w in a["weights"]) and not m_unique:
        persons = runs.or_total(mpc, joint * X[cols[(1, "keyed")]].reshape(1, n))
    rows = [persons if w["kind"] == "persons" and persons is not None else out[:, r]
            for r, w in enumerate(a["weights"])]
    res = mpc.np_stack(rows)[:, np.array(a["cell_perm"], dtype=int)]
    await phases.done("aggregate", res)
    return res
