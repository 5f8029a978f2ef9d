"""Oblivious sort for record linkage: shuffle, then quicksort with opened comparisons.

MPyC's `np_sort` is Batcher's network: (log2 n)^2 / 2 layers of n/2 comparisons, 35 minutes for the
20,000 rows of a 10k x 10k join on this kind of machine. After a shuffle that no coalition of t
parties can undo (runtime/secure/linkage_fast.py), the values sit in a uniformly random order; made
distinct by appending each one's (public) position BEFORE the shuffle (`shuffle_with_positions`), the
outcomes of a quicksort's comparisons depend on nothing but that random order, so they can be opened (Hamada et al. 2012; ORQ, SOSP'25):
every party can simulate them without the data. Cost: about 1.4 n log2 n comparisons in about
4 ln n vectorised rounds, all partitions of one level in one batch.

The opened bits go through runtime/secure/reveal.py (`open_comparisons`, leakage item `sort_comparisons`).
The values themselves are never opened: the result is a public permutation applied to the shares.

The comparisons are MPyC's own (`np_sgn` with LT: Toft's protocol, l + 1 random bits, a product
of l + 1 factors and a public zero test), with one change: the random bits and masks come from t + 1
parties' inputs (each draws random signs in bulk; their product is a random sign no t parties know),
not from MPyC's pseudorandom secret sharing, which spends one modular square root and nine PRF
values per bit: profiled, random bits were two thirds of the sort, and this makes it about 1.5x faster.
"""
from __future__ import annotations

import os

import numpy as np


def tiebreak_bits(n: int) -> int:
    return max(1, (max(n, 1) - 1).bit_length())


async def shuffle_with_positions(mpc, x):
    """(x shuffled, each row's position BEFORE the shuffle, shuffled along with it): the tie-break.

    Equal values must be made distinct before the shuffle, never after it. A tie-break by the
    position after the shuffle (as this module once did) keeps every run of equal values in
    ascending tie-break order through each stable partition, so the first-element pivot of a run is
    always its smallest member: a run of r equal values took r levels and r^2/2 comparisons (mostly
    padding behind a selective WHERE: 420 s instead of 70 s), and the opened outcomes then depended
    on the multiplicities. Appended before the shuffle, the tie-breaks travel with their rows: the
    distinct values (x, position) are in a uniformly random order whatever the repeats."""
    from insightql.runtime.secure.linkage_fast import shuffle

    n = x.shape[0]
    st = type(x).sectype
    both = mpc.np_stack([x, st.array(np.arange(n, dtype=object))], axis=1)
    both = await shuffle(mpc, both)
    return both[:, 0], both[:, 1]


async def sorted_positions(mpc, node: dict, x, value_bits: int) -> np.ndarray:
    """pos such that x[pos] is ascending. x must be DISTINCT values (0 <= x < 2**value_bits) in an
    order made uniformly random by a shuffle (append the tie-break of `shuffle_with_positions`
    where values repeat): only then do the opened outcomes depend on nothing but that order.
    Comparisons are value_bits + 1 bits wide."""
    from insightql.runtime.secure.reveal import open_comparisons

    n = x.shape[0]
    pos = np.arange(n)
    starts, ends = np.array([0]), np.array([n])
    while True:
        live = ends - starts > 1
        starts, ends = starts[live], ends[live]
        if starts.size == 0:
            return pos
        sizes = ends - starts
        seg = np.repeat(np.arange(starts.size), sizes)  # segment of each slot in these segments
        slots = _ranges(starts, sizes)
        pivot_slot = starts[seg]
        others = slots != pivot_slot
        a, p = pos[slots[others]], pos[pivot_slot[others]]
        senders = [(len(starts) + i) % len(mpc.parties) for i in range(mpc.threshold + 1)]  # rotate the work
        shares = await less_than_zero(mpc, x[a] - x[p], value_bits + 1, senders)
        less = await open_comparisons(mpc, node, shares)
        category = np.ones(slots.size, dtype=np.int64)  # the pivot: 1, smaller: 0, larger: 2
        category[others] = np.where(less == 1, 0, 2)
        order = np.lexsort((category, seg))  # stable: segments stay in place
        pos[slots] = pos[slots[order]]
        n_less = np.bincount(seg[others], weights=(less == 1), minlength=starts.size).astype(np.int64)
        mid = starts + n_less
        starts, ends = np.concatenate([starts, mid + 1]), np.concatenate([mid, ends])


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenation of range(s, s + k) for each (s, k), vectorised."""
    total = int(sizes.sum())
    offsets = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(starts, sizes) + offsets


async def less_than_zero(mpc, a, l: int, senders: list[int]):
    """Shares of [a < 0] for a secure integer vector with -2**(l-1) <= a < 2**(l-1): MPyC's np_sgn
    (LT) step by step, its randomness from `senders` (t + 1 parties) instead of PRSS."""
    from insightql.runtime.secure.reveal import open_masked

    stype = type(a)
    field = stype.sectype.field
    n = a.shape[0]
    signs, r_divl = await random_signs_and_masks(mpc, stype.sectype, (l + 1) * n, n, senders)
    r_bits = (signs + 1) * ((field.modulus + 1) >> 1) % field.modulus  # 0/1 shares
    s_sign = (r_bits[-n:] << 1) - 1
    r_bits = r_bits[:l * n].reshape((n, l))
    shifts = np.arange(l - 1, -1, -1)
    r_modl = np.sum(r_bits << shifts, axis=1)
    a = (await mpc.gather(a)).value.reshape((n,))
    a_r = a + (1 << l) + r_modl
    c = await open_masked(mpc, field.array(a_r + (r_divl << l)))
    c = c.value & ((1 << l) - 1)
    z = c - a_r
    c_bits = np.right_shift.outer(c, shifts).T & 1
    r_bits = r_bits.T
    xor = c_bits + r_bits - (c_bits * r_bits << 1)
    sum_xors = np.cumsum(np.vstack((np.zeros((1, n), dtype=object), xor)), axis=0)
    e = s_sign - np.vstack((c_bits - r_bits, np.ones((1, n), dtype=object))) + 3 * sum_xors
    e = mpc.np_prod(stype(field.array(e)), axis=0)
    g = await mpc.np_is_zero_public(e)
    h = (1 - (np.asarray(g, dtype=object) << 1)) * s_sign + 3
    return stype(field.array(z + (h << (l - 1))) >> l)


async def random_signs_and_masks(mpc, sectype, n_signs: int, n_masks: int, senders: list[int]):
    """This party's shares of n_signs random signs (+1/-1: the product of one from each sender) and
    n_masks random integers below 2**k (k = MPyC's statistical security parameter; the sum of one
    from each sender), as object arrays. Each sender draws its values in bulk from os.urandom."""
    field = sectype.field
    d = len(senders)
    bound = 1 << max(0, ((1 << mpc.options.sec_param) // d).bit_length() - 1)
    if mpc.pid in senders:
        words = np.frombuffer(os.urandom(8 * (n_signs + n_masks)), dtype=np.uint64)
        signs = (words[:n_signs] & 1).astype(np.int64) * 2 - 1
        masks = words[n_signs:] % np.uint64(bound)
        mine = np.concatenate([signs.astype(object), masks.astype(object)])
    else:
        mine = np.zeros(n_signs + n_masks, dtype=object)
    parts = mpc.input(sectype.array(mine), senders=senders)
    signs, masks = parts[0][:n_signs], parts[0][n_signs:]
    for part in parts[1:]:
        signs = signs * part[:n_signs]
        masks = masks + part[n_signs:]
    signs, masks = await mpc.gather(signs, masks)
    return signs.value, masks.value
