"""Oblivious radix sort for record linkage: stable, one bit per pass, no comparison opened.

The quicksort (runtime/secure/quicksort.py) spends about 1.4 log2 n comparisons of the whole sort key
per row, each with its own l + 1 random bits and a product of l + 1 factors. A least-significant-digit
radix sort decomposes each key into its l bits ONCE and then, per bit, needs one secure product per
row and two resharings of short vectors (Hamada et al. 2014; ORQ, SOSP'25):

* the secret permutation sigma (row -> position in the order sorted by the bits seen so far) and the
  next bit are shuffled together by a fresh permutation pi that no coalition of t parties knows
  (runtime/secure/linkage_fast.py `shuffle`); sigma o pi^-1 is opened (`open_permutation`): a
  uniformly random permutation, whatever sigma. It tells each shuffled row its position, so the bits
  are arranged in the current order by public index arithmetic on shares;
* the stable partition by that bit: position i goes to i - c1 (bit 0) or zeros + c1 - 1 (bit 1),
  c1 the prefix count of ones, a linear function of the shares plus ONE product per row;
* the new sigma is rho[a], in the shuffled order; the next pass undoes that shuffle on the way into
  its own (`unshuffle`, the same parties re-share with the inverse permutations), the first step of
  each fused into one resharing by their common holders (`_shuffled_with_sigma`).
At the end the rows themselves are shuffled together with sigma by a fresh permutation, sigma o pi^-1
is opened and the rows are placed. Every opened vector is a uniformly random permutation independent
of the data and of every other opened vector (each uses a fresh pi), so every party can simulate them:
unlike the quicksort, equal keys need no tie-break (the sort is stable) and no multiplicity can show.
"""
from __future__ import annotations

import numpy as np

from insightql.runtime.secure.linkage_fast import (_reshare_permuted, derived_permutation, shuffle_seeds,
                                                   shuffle_sets, unshuffle)


def destinations(mpc, bits: list):
    """Stable partition by a digit of one or two 0/1 vectors (least significant first): the new
    position of each position, smaller digits first. Bucket q's rows go to start_q + (their rank
    among q's rows): prefix sums (linear) and, for two bits, one product per row (the digit's
    one-hot) and one inner product of length 3 per row (resharing one value per row).
    (Packing the two bits as one value b0 + 2 b1 would shuffle one column fewer, but its one-hot
    needs v^2 and v^3: two products and a dozen more vector operations per pass, measured no faster,
    benchmarks/LINKAGE.md.)"""
    n = bits[0].shape[0]
    st = type(bits[0]).sectype
    i = st.array(np.arange(n, dtype=object))
    if len(bits) == 1:
        bit = bits[0]
        ones = mpc.np_cumsum(bit)
        zeros = n - ones[-1]
        return i - ones + bit * (zeros + 2 * ones - i - 1)
    b0, b1 = bits
    h3 = b0 * b1
    hot = [b0 - h3, b1 - h3, h3]  # digit 1, 2, 3; digit 0 is the rest
    ranks = [mpc.np_cumsum(h) for h in hot]  # rank + 1 among the rows of each digit
    counts = [r[-1] for r in ranks]
    before0 = i + 1 - ranks[0] - ranks[1] - ranks[2]  # rank + 1 among digit 0
    start = n - counts[0] - counts[1] - counts[2]  # digit 0's rows come first
    v0 = before0 - 1
    offsets = []
    for r, c in zip(ranks, counts):
        offsets.append(start + r - 1 - v0)
        start = start + c
    # dest = v0 + sum_q hot_q * offset_q: per row an inner product of length 3, as ONE batched
    # matrix product (n, 1, 3) @ (n, 3, 1), which reshares only its n results, not 3n products
    H = mpc.np_transpose(mpc.np_stack(hot)).reshape(n, 1, 3)
    O = mpc.np_transpose(mpc.np_stack(offsets)).reshape(n, 3, 1)
    return v0 + (H @ O).reshape(n)


async def _shuffled_with_sigma(mpc, sigma, previous: list | None, rest, seeds: tuple):
    """[sigma | rest] (n, 1 + c) shuffled by a fresh shuffle (permutations derived from `seeds`),
    and its steps. `rest` is in row order; sigma is in row order (`previous` None) or still in the
    order of the `previous` shuffle (its steps), which is undone on the way: its last steps alone
    on sigma (`unshuffle`), and its first step FUSED with the new shuffle's first step, which the
    same parties apply (sigma's column permuted by the composition, the others by the new
    permutation): one resharing step and one round fewer per pass."""
    n = rest.shape[0]
    if previous:
        sigma = await unshuffle(mpc, sigma, previous[1:])
    x = mpc.np_concatenate([sigma.reshape(n, 1), rest], axis=1)
    steps = []
    for j, A in enumerate(shuffle_sets(mpc)):
        perm = derived_permutation(seeds[0][j], seeds[1], n) if mpc.pid in A else None
        step = perm
        if j == 0 and previous and perm is not None:
            assert previous[0][0] == A
            step = (np.argsort(previous[0][1])[perm],) + (perm,) * rest.shape[1]
        x = await _reshare_permuted(mpc, x, A, step)
        steps.append((A, perm))
    return x, steps


async def radix_sort(mpc, node: dict, digits: list, rows, width: int = 2):
    """rows (n,) or (n, c) ordered by the key whose 0/1 digits are given least significant first
    (each an (n,) secure vector of the same type as rows); stable. `width` bits (1 or 2) per pass:
    two halve the passes and rounds for four products per row instead of one.

    Per pass after the first: [sigma | digit's bits] shuffled, sigma o
    pi^-1 opened, the digit arranged in the current order, rho = its stable partition, and rho o sigma
    per row is rho[a] in the shuffled order: left there, the next pass undoes the shuffle on the way
    into its own (`_shuffled_with_sigma`)."""
    from insightql.runtime.secure.reveal import open_permutation

    n = rows.shape[0]
    st = type(rows).sectype
    sigma = None  # identity: the first pass needs no shuffle and opens nothing
    steps = None  # the shuffle whose order sigma is in (None: row order)
    seeds = await shuffle_seeds(mpc)  # once per sort; each shuffle derives fresh permutations
    count = 0
    for k in range(0, len(digits), width):
        digit = digits[k:k + width]
        if sigma is None:
            sigma = destinations(mpc, digit)
            continue
        cols, steps = await _shuffled_with_sigma(mpc, sigma, steps, mpc.np_stack(digit, axis=1), (seeds, count))
        count += 1
        a = await open_permutation(mpc, node, cols[:, 0])
        arranged = cols[:, 1:][np.argsort(a)]
        rho = destinations(mpc, [arranged[:, j] for j in range(len(digit))])
        sigma = rho[a]  # rho o sigma, in this pass's shuffled order
    if sigma is None:
        sigma = st.array(np.arange(n, dtype=object))
    wide = rows.reshape(n, 1) if len(rows.shape) == 1 else rows
    both, _ = await _shuffled_with_sigma(mpc, sigma, steps, wide, (seeds, count))
    h = await open_permutation(mpc, node, both[:, 0])
    out = both[:, 1:][np.argsort(h)]
    return out[:, 0] if len(rows.shape) == 1 else out


async def to_bits(mpc, a, l: int, senders: list[int]):
    """(n, l) shares of the bits of 0 <= a < 2**l, least significant first: MPyC's np_to_bits (open
    a + r for l random bits r and a k-bit mask above them, then subtract r bit by bit with a borrow:
    one product per bit) with its randomness from t + 1 parties' inputs, as the quicksort's
    comparisons (runtime/secure/quicksort.py): MPyC's pseudorandom bits cost a modular square root
    each, and the decomposition of the sort keys was half of the radix sort's time."""
    from insightql.runtime.secure.quicksort import random_signs_and_masks
    from insightql.runtime.secure.reveal import open_masked

    stype = type(a)
    field = stype.sectype.field
    p, n = field.modulus, a.shape[0]
    signs, r_divl = await random_signs_and_masks(mpc, stype.sectype, l * n, n, senders)
    r_bits = ((signs + 1) * ((p + 1) >> 1) % p).reshape((l, n))  # row i: bit i of r
    r_modl = np.sum(r_bits << np.arange(l, dtype=object).reshape(l, 1), axis=0)
    a = (await mpc.gather(a)).value.reshape((n,))
    c = await open_masked(mpc, field.array(a + r_modl + (r_divl << l)))
    c = np.asarray(c.value, dtype=object) & ((1 << l) - 1)
    bits, borrow = [], None
    for i in range(l):
        ci = (c >> i) & 1
        r = stype(field.array(r_bits[i]))
        if borrow is None:
            rb, x = 0, r
        else:
            rb = r * borrow
            x = r + borrow - 2 * rb  # r xor borrow
        bits.append(x * (1 - 2 * ci) + ci)  # c xor r xor borrow
        borrow = x * (1 - ci) + rb  # c - r - borrow < 0
    return mpc.np_stack(bits, axis=1)


async def is_zero(mpc, a, l: int, senders: list[int], parts: int = 1, at: int = 0):
    """Shares of [a == at] for 0 <= a < 2**l and a public 0 <= at < 2**l, with its randomness from
    t + 1 parties' inputs like `to_bits`. As MPyC's zero test, open a + r for l random bits r under
    a k-bit mask; a = at iff the low l bits of the opened value minus `at` equal r's. Instead of a
    product of those l equalities (l - 1 products per value), their Hamming distance h (a sum of
    XORs of public bits with shared bits: linear, no product) is tested for zero the same way, on
    its few bits: h <= l needs bit_length(l) random bits and products (5 products per row instead
    of 53 for a 54-bit key), for one more opening. Only masked values are opened: the outcome stays secret.

    With `parts` > 1, a is `parts` vectors of n concatenated and the result (n,) is 1 where all of
    them equal `at` (one Hamming distance over parts * l bits: the chunks of a key, `chunks_equal_prev`)."""
    from insightql.runtime.secure.quicksort import random_signs_and_masks
    from insightql.runtime.secure.reveal import open_masked

    stype = type(a)
    field = stype.sectype.field
    p, n = field.modulus, a.shape[0]
    m = n // parts
    l2 = (l * parts).bit_length()  # bits of the Hamming distance, at most l * parts
    signs, masks = await random_signs_and_masks(mpc, stype.sectype, l * n + l2 * m, n + m, senders)
    r_all = (signs + 1) * ((p + 1) >> 1) % p  # 0/1 shares
    r_bits, r2_bits = r_all[:l * n].reshape((l, n)), r_all[l * n:].reshape((l2, m))
    r_modl = np.sum(r_bits << np.arange(l, dtype=object).reshape(l, 1), axis=0)
    a = (await mpc.gather(a)).value.reshape((n,))
    c = await open_masked(mpc, field.array(a + r_modl + (masks[:n] << l)))
    c = (np.asarray(c.value, dtype=object) - at) & ((1 << l) - 1)
    c_bits = np.array([(c >> i) & 1 for i in range(l)], dtype=object)
    xor = r_bits * (1 - 2 * c_bits) + c_bits  # 1 where bit i of r differs from bit i of c
    h = np.sum(xor.reshape(l, parts, m), axis=(0, 1)) % p  # the Hamming distance, < 2**l2
    r2_modl = np.sum(r2_bits << np.arange(l2, dtype=object).reshape(l2, 1), axis=0)
    c2 = await open_masked(mpc, field.array(h + r2_modl + (masks[n:] << l2)))
    c2 = np.asarray(c2.value, dtype=object) & ((1 << l2) - 1)
    c2_bits = np.array([(c2 >> i) & 1 for i in range(l2)], dtype=object)
    same = (r2_bits * (2 * c2_bits - 1) + 1 - c2_bits) % p  # 1 where bit i of r2 equals bit i of c2
    return mpc.np_prod(stype(field.array(same)), axis=0)
