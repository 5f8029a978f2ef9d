"""The oblivious linkage's steps after the sort (spec/linkage.md section 3, steps 4-5), on secure
vectors with one vectorised call per step, no Python loop over rows:

* `chunk_columns` / `chunks_equal_prev`: adjacent-key equality in a field too small for the whole key.
  The key is cut into chunks (linear combinations of the owners' shared bits, carried through the
  sort); each chunk's difference to the row before gets one zero test (radix.is_zero, randomness from
  t + 1 parties' inputs), all chunks' tests in one product tree;
* `segmented_scan`: the unique side's fields copied along each key's run, work-efficient.
"""
from __future__ import annotations

import numpy as np

from insightql.runtime.secure.radix import is_zero


def chunk_columns(mpc, bits, lo: int, hi: int, c: int):
    """(n, chunks) values of the bit columns [lo, hi) in chunks of at most c bits (linear, local)."""
    out = []
    for a in range(lo, hi, c):
        b = min(a + c, hi)
        out.append(bits[:, a:b] @ np.array([1 << j for j in range(b - a)], dtype=object))
    return mpc.np_stack(out, axis=1)


async def chunks_equal_prev(mpc, chunks, c: int):
    """1 where row i's chunks (each < 2**c) all equal row i-1's (0 at i = 0): per chunk one test of
    difference + 2**c == 2**c, a value below 2**(c+1) tested with c + 1 random bits under MPyC's k-bit
    mask (as MPyC's own zero test of a (c+1)-bit value); the product over chunks inside it (`is_zero`)."""
    n, q = chunks.shape
    st = type(chunks).sectype
    if n < 2:
        return st.array(np.zeros(n, dtype=object))
    diff = chunks[1:] - chunks[:-1] + (1 << c)
    # in blocks of rows: the test holds (c + 1) random bits per chunk and row at once, and at 262,144
    # rows x 3 chunks their sharing (as Python ints in object arrays) took a party beyond its memory
    rows = max(1, BITS_AT_ONCE // ((c + 1) * q))
    out = [st.array(np.zeros(1, dtype=object))]
    for a in range(0, n - 1, rows):
        b = min(a + rows, n - 1)
        d = mpc.np_transpose(diff[a:b]).reshape(q * (b - a))
        out.append(await is_zero(mpc, d, c + 1, list(range(mpc.threshold + 1)), parts=q, at=1 << c))
    return mpc.np_concatenate(out)


BITS_AT_ONCE = 1 << 21  # random bits a zero test draws at once (chunks_equal_prev)


def segmented_scan(mpc, z):
    """Inclusive segmented scan along the last axis of z (C, n), whose last row is the flag "a
    segment starts here" (0/1): each column becomes z[:, i] + (1 - f_i) * (the scan at i - 1), i.e.
    every value row copies the latest flagged column's value (flags OR-ed). Work-efficient (Brent-Kung,
    recursive): pairs are combined (n/2 columns), the half-length sequence is scanned, and the even
    positions combine with the odd prefix before them (n/2 more): about 2n combines of C products in
    2 log2 n rounds, against n log2 n in log2 n rounds for recursive doubling."""
    C, n = z.shape
    if n == 1:
        return z
    h = n // 2
    left, right = z[:, 0:2 * h:2], z[:, 1:2 * h:2]
    odd = segmented_scan(mpc, right + (1 - right[-1]).reshape(1, h) * left)  # scan at 2i + 1
    parts = [z[:, 0:1]]
    if h > 1:
        ev = z[:, 2:2 * h:2]
        parts.append(ev + (1 - ev[-1]).reshape(1, h - 1) * odd[:, :h - 1])  # scan at 2i, i >= 1
    even = mpc.np_concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    out = mpc.np_stack([even, odd], axis=2).reshape(C, 2 * h)
    if n > 2 * h:
        last = z[:, n - 1:n]
        out = mpc.np_concatenate([out, last + (1 - last[-1]).reshape(1, 1) * odd[:, h - 1:h]], axis=1)
    return out
