"""Oblivious sort for record linkage: shuffle, then quicksort with opened comparisons.

MPyC's `np_sort` is Batcher's network: (log2 n)^2 / 2 layers of n/2 comparisons, 35 minutes for the
20,000 rows of a 10k x 10k join on this kind of machine. After a shuffle that no coalition of t
parties can undo (runtime/linkage_fast.py), the values sit in a uniformly random order; made
distinct by appending each one's (public) position, the outcomes of a quicksort's comparisons
depend on nothing but that random order, so they can be opened (Hamada et al. 2012; ORQ, SOSP'25):
every party can simulate them without the data. Cost: about 1.4 n log2 n comparisons in about
4 ln n vectorised rounds, all partitions of one level in one batch.

The opened bits go through runtime/reveal.py (`open_comparisons`, leakage item `sort_comparisons`).
The values themselves are never opened: the result is a public permutation applied to the shares.
"""
from __future__ import annotations

import numpy as np


def tiebreak_bits(n: int) -> int:
    return max(1, (max(n, 1) - 1).bit_length())


async def sorted_positions(mpc, node: dict, x, value_bits: int) -> np.ndarray:
    """pos such that x[pos] is ascending; x must already be shuffled. Comparisons are on
    x * 2**b + position (distinct), value_bits + b + 1 bits wide."""
    from .reveal import open_comparisons

    n = x.shape[0]
    b = tiebreak_bits(n)
    xt = x * (1 << b) + np.arange(n, dtype=object)
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
        less = await open_comparisons(mpc, node, mpc.np_sgn(xt[a] - xt[p], l=value_bits + b + 1, LT=True))
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
