"""Record linkage on MPyC secret-shared arrays (spec/linkage.md): the oblivious, sort-based design,
and dispatch to the fast design (runtime/secure/linkage_fast.py) where the policy opts in.

Each owner shares the bits of its packed rows (compiler/plaintext/linkage_local.py); the parties
concatenate them and radix-sort them (runtime/secure/radix.py, only uniformly random permutations
opened), and from then on touch every position the same way: adjacent key equality (a zero test per
chunk of the key, the chunks carried through the sort), the payload's fields (linear combinations of
bits), one-hot cell encodings from bits by products (no comparisons), a work-efficient segmented scan
that copies the unique side's fields along each key's run, and per-cell sums as one secure matrix
product (which communicates only its result). All of it in a SecInt sized to positions and sums
(`LinkOps.radix_type`), not to the packed rows: about 60-bit shares instead of 100-bit ones. The small
per-cell results are converted to the plan's type. The older quicksort (IQ_LINK_SORT=quicksort, kept for
measurements) sorts packed values in a SecInt sized to them.

Opened here (through runtime/secure/reveal.py only): the sort's random permutations (the quicksort:
comparison outcomes that depend on nothing but the shuffle's random order) and values masked for zero
tests. The per-cell vectors feed the plan's threshold/mask/reveal nodes like `combine` outputs. The
plaintext meaning of every op is in compiler/plaintext/oracle.py.
"""
from __future__ import annotations

import os

import numpy as np

from insightql.compiler.plaintext.linkage_local import LinkageDataError, field_of, link_rows
from insightql.compiler.plan.ops import register

from insightql.runtime.secure import linkage_fast
from insightql.runtime.secure.quicksort import shuffle_with_positions, sorted_positions, tiebreak_bits
from insightql.runtime.secure.link_steps import chunk_columns, chunks_equal_prev
from insightql.runtime.secure.linkage_join import JoinSteps
from insightql.runtime.secure.radix import is_zero, radix_sort

LINK: dict = {}  # link op name -> its implementation at a party (registered at the end of this module)


def local_vectors(plan: dict, me: str, loaded: dict) -> dict[str, list[int]]:
    """This owner's packed vectors, {link_rows node id: vector}, computed before the handshake
    (their lengths are exchanged there). Raises LinkageDataError on data contradicting the catalog."""
    out = {}
    for n in plan["nodes"]:
        if n["op"] == "link_rows" and n["placement"] == f"local:{me}":
            tbl, count = loaded[n["inputs"][0]]
            out[n["id"]] = link_rows(n["attrs"], tbl, count)
    return out


def sizes_from_statuses(plan: dict, statuses: list[dict]) -> dict[str, int]:
    """Every link vector's length, as its owner announced it in the status handshake."""
    sizes = {}
    for s in statuses:
        sizes.update(s.get("link_sizes") or {})
    return sizes


class LinkOps(JoinSteps):
    """The link ops at one party; the join's steps after the sort: runtime/secure/linkage_join.py."""

    def __init__(self, mpc, plan: dict, sizes: dict[str, int], main_type):
        self.mpc = mpc
        self.nodes = {n["id"]: n for n in plan["nodes"]}
        self.sizes = sizes
        self.main = main_type
        self._types = {}
        # the oblivious design's sort: "radix" (runtime/secure/radix.py), or the older "quicksort"
        # with opened comparisons (runtime/secure/quicksort.py), kept for measurements
        self.sorter = os.environ.get("IQ_LINK_SORT", "radix")

    def stype(self, bits: int):
        if bits not in self._types:
            self._types[bits] = self.mpc.SecInt(bits + 2)
        return self._types[bits]

    def radix_type(self, link: dict):
        """The radix design's SecInt: the owners share 0/1 bits, so its field need only hold positions
        (< rows) and the per-cell sums, not the packed rows (whose key is compared in chunks,
        `chunks_equal_prev`). About 60 bits instead of 100 for a 10k join: two Python digits instead
        of four in every share, and word-sized (runtime/secure/fast_random.py)."""
        a = link["attrs"]
        rows = max(1, self.total_rows(self.nodes[link["inputs"][0]]))
        mag = 1
        for w in a.get("weights", []):
            if "field" in w:
                f = field_of(a["layout"], w["side"], w["field"] + ".val")
                mag = max(mag, abs(int(w.get("lo", 0))) + (1 << f["bits"]))
        return self.stype(max(mag.bit_length() + rows.bit_length() + 1, rows.bit_length() + 2, 24))

    def run(self, node: dict, values: dict, me: str, names: list[str], local: dict):
        part = LINK.get(node["op"])
        if part is None:
            raise AssertionError(f"no secure implementation of link op {node['op']!r} (runtime/secure/linkage_ops.py LINK)")
        return part(self, node, values, me, names, local)

    # -- helpers --------------------------------------------------------------------------
    async def finish(self, coro):
        """Both designs open something midway (tags, comparison outcomes): coroutines the party awaits."""
        return self.to_main(await coro)

    def consumer(self, node: dict) -> dict:
        return next(n for n in self.nodes.values() if node["id"] in n["inputs"])

    def m_unique(self, join: dict) -> bool:
        return bool(self.nodes[self.nodes[join["inputs"][1]]["inputs"][0]]["attrs"]["unique"])

    def sort_keys_distinct(self, link: dict) -> bool:
        """A join of keys unique on both sides sorts without a tie-break: its sort keys (key', side)
        are distinct once padding and keyless rows carry distinct keys (`spread_padding`; keys of
        K >= 34 bits leave room for them below 2**(K+1))."""
        return link["op"] == "link_join" and link["attrs"].get("algorithm") != "fast" \
            and self.m_unique(link) and link["attrs"]["layout"]["key_bits"] >= 34

    def total_rows(self, share: dict) -> int:
        """Rows of all vectors the link op consuming this share concatenates (public lengths)."""
        return sum(int(self.sizes[self.nodes[i]["inputs"][0]]) for i in self.consumer(share)["inputs"])

    def share_columns(self, node: dict, me: str, names: list[str], local: dict):
        """Fast design: the owner shares its rows as columns (runtime/secure/linkage_fast.py): the
        key in the PRF's field, the other columns in a field sized to their sums (a pair)."""
        link = self.consumer(node)
        a, src = link["attrs"], node["inputs"][0]
        n = self.total_rows(node)
        kt, vt = linkage_fast.column_type(self.mpc, a, n), linkage_fast.value_type(self.mpc, a, n)
        size, width = int(self.sizes[src]), 1 + len(linkage_fast.columns(a))
        if node["attrs"]["party"] == me:
            plain = linkage_fast.owner_columns(a, link["inputs"].index(node["id"]), local[src])
        else:
            plain = np.zeros((size, width), dtype=object)
        assert plain.shape == (size, width)
        sender = names.index(node["attrs"]["party"])
        return (self.mpc.input(kt.array(plain[:, 0]), senders=sender),
                self.mpc.input(vt.array(plain[:, 1:]), senders=sender))

    def concat(self, vecs: list):
        if isinstance(vecs[0], tuple):  # the fast design's (keys, columns) pairs
            return tuple(self.concat([v[j] for v in vecs]) for j in range(len(vecs[0])))
        return vecs[0] if len(vecs) == 1 else self.mpc.np_concatenate(vecs)

    def to_main(self, x):
        """Small per-cell results into the plan's secure integer type."""
        mpc = self.mpc
        shape = x.shape
        flat = mpc.np_tolist(mpc.np_flatten(x)) if len(shape) > 1 else mpc.np_tolist(x)
        return mpc.np_fromlist(mpc.convert(flat, self.main)).reshape(shape)

    async def shuffled(self, node: dict, vecs: list, tiebreak: bool):
        """The concatenated vectors shuffled, with (`tiebreak`) each row's position before the
        shuffle, shuffled along (None without): the tie-break that makes repeated sort keys distinct."""
        phases = linkage_fast.Phases(self.mpc, node["id"])
        x = self.concat(vecs)
        if tiebreak:
            x, where = await shuffle_with_positions(self.mpc, x)
        else:
            x, where = await linkage_fast.shuffle(self.mpc, x), None
        await phases.done("shuffle", x)
        return x, where

    async def sort_order(self, node: dict, key, key_bits: int, where=None) -> np.ndarray:
        """Quicksort with opened comparisons (runtime/secure/quicksort.py) of a shuffled key vector,
        made distinct by the pre-shuffle positions `where` unless it is distinct already (None)."""
        phases = linkage_fast.Phases(self.mpc, node["id"])
        if where is not None:
            b = tiebreak_bits(key.shape[0])
            key, key_bits = key * (1 << b) + where, key_bits + b
        pos = await sorted_positions(self.mpc, node, key, key_bits)
        await phases.done("quicksort")
        return pos

    def chunk_bits(self, st, width: int) -> int:
        """Bits per chunk of a `width`-bit key compared in `st`: at most l - 2 (the zero test of a
        (c+1)-bit value needs 2**(c + 2 + k) below the field, about 2**(l + 32)), as even as possible (each chunk's zero test costs a random
        bit per bit of the chunk: 49 bits in chunks of 17 rather than 23, 23, 3)."""
        most = st.bit_length - 2
        return -(-width // -(-width // most))

    async def radix_sorted(self, node: dict, bits, low: int, digit_cols: list[int], eq: tuple[int, int]):
        """(the `low` lowest bit columns, and the bit columns [eq[0], eq[1]) as chunk values with their
        width) of the owners' (n, l) bit matrix, rows ordered by the bit columns `digit_cols` (least
        significant first): radix sort (runtime/secure/radix.py), stable. The chunks are what `chunks_equal_prev`
        compares afterwards: the packed value itself would not fit the radix design's field."""
        mpc = self.mpc
        phases = linkage_fast.Phases(mpc, node["id"])
        c = self.chunk_bits(type(bits).sectype, eq[1] - eq[0])
        chunks = chunk_columns(mpc, bits, eq[0], eq[1], c)
        rows = mpc.np_concatenate([bits[:, :low], chunks], axis=1)
        out = await radix_sort(mpc, node, [bits[:, j] for j in digit_cols], rows)
        await phases.done("radix sort", out)
        return out[:, :low], (out[:, low:], c)

    async def chunks_equal(self, chunks):
        """1 where a row's chunks (as `radix_sorted` cut them: values, bits each) equal the row before."""
        return await chunks_equal_prev(self.mpc, *chunks)

    async def sorted_concat(self, node: dict, vecs: list):
        """Shuffle, then sort the whole packed rows (ties broken by pre-shuffle position)."""
        x, where = await self.shuffled(node, vecs, tiebreak=True)
        return x[await self.sort_order(node, x, node["attrs"]["layout"]["bits"], where)]

    def field(self, bits, f: dict):
        """Value of a bit field from the (n, W) bit matrix: a linear combination of bits."""
        cols = bits[:, f["offset"]:f["offset"] + f["bits"]]
        if f["bits"] == 1:
            return cols[:, 0]
        return cols @ np.array([1 << j for j in range(f["bits"])], dtype=object)

    def bits_value(self, bits, cols: list[int]):
        """The number whose binary digits, most significant first, are the given bit columns."""
        return bits[:, cols] @ np.array([1 << j for j in reversed(range(len(cols)))], dtype=object)

    def one_hot(self, bit_rows: list, size: int, n: int, st):
        """(size, n) one-hot rows of a cell number given by its bits (least significant first),
        built by products from the most significant bit: 2**g products of n-vectors, no comparisons."""
        mpc = self.mpc
        t = st.array(np.ones((1, n), dtype=object))
        for b in reversed(bit_rows):
            hi = t * b.reshape(1, n)
            lo = t - hi
            t = mpc.np_stack([lo, hi], axis=1).reshape(2 * t.shape[0], n)
        return t[:size]

    async def adjacent_equal(self, x, l: int, st):
        """1 where x[i] == x[i-1] (0 at i = 0), for 0 <= x[i] - x[i-1] < 2**(l-1) after sorting: a zero
        test with input-based randomness (runtime/secure/radix.py `is_zero`; MPyC's own, with
        pseudorandom bits, was a third of a 3k x 3k join)."""
        mpc = self.mpc
        n = x.shape[0]
        if n < 2:
            return st.array(np.zeros(n, dtype=object))
        eq = await is_zero(mpc, x[1:] - x[:-1], l, list(range(mpc.threshold + 1)))
        return mpc.np_concatenate([st.array(np.zeros(1, dtype=object)), eq])

    def shift(self, x, d: int, fill, st):
        """x moved d positions along the last axis (towards higher indices), `fill` coming in."""
        mpc = self.mpc
        lead = st.array(np.full(x.shape[:-1] + (d,), fill, dtype=object))
        return mpc.np_concatenate([lead, x[..., :-d]], axis=-1)

    # -- COUNT(DISTINCT key) across owners ---------------------------------------------------
    async def distinct(self, node: dict, a: dict, vecs: list):
        lay = a["layout"]
        st = type(vecs[0]).sectype
        if self.sorter == "radix":
            bits, chunks = await self.radix_sorted(node, self.concat(vecs), lay["payload_bits"],
                                                   list(range(lay["bits"])), (0, lay["bits"]))
            first = 1 - await self.chunks_equal(chunks)
        else:
            s = await self.sorted_concat(node, vecs)
            bits = self.mpc.np_to_bits(s, l=lay["payload_bits"])
            first = 1 - await self.adjacent_equal(s, lay["bits"] + 1, st)
        present = self.field(bits, field_of(lay, 0, "present"))
        return self.cell_hot(bits, lay, a["cells"], st) @ (first * present)

    def cell_hot(self, bits, lay: dict, cells: int, st, side: int = 0):
        f = field_of(lay, side, "cell")
        return self.one_hot([bits[:, f["offset"] + j] for j in range(f["bits"])], cells, bits.shape[0], st)

    def high_part(self, x, bits, st):
        """x >> (number of bit columns): exact, x minus its low bits is a multiple of 2**w."""
        w = bits.shape[1]
        low = bits @ np.array([1 << j for j in range(w)], dtype=object)
        return (x - low) * pow(2, -w, st.field.modulus)


def spread_padding(vec: np.ndarray, layout: dict, index: int) -> np.ndarray:
    """An owner's packed rows with key' = 2**K (padding; keyless rows of a LEFT JOIN) given distinct
    keys 2**K + (index << 32) + row, still above every real key; they match nothing either way."""
    K, shift = layout["key_bits"], layout["side_bit"] + layout["payload_bits"]
    out = vec.copy()
    for i, v in enumerate(vec):
        if v >> shift == 1 << K:
            out[i] = v + (((index << 32) + i) << shift)
    return out



# -- the link ops, registered by op name (their plaintext meaning: compiler/plaintext/oracle.py) -----------
@register(LINK, "link_rows")
def _link_rows(lo: LinkOps, node: dict, values: dict, me: str, names: list[str], local: dict):
    return local.get(node["id"])  # packed by the owner before the status exchange (local_vectors)


@register(LINK, "link_share")
def _link_share(lo: LinkOps, node: dict, values: dict, me: str, names: list[str], local: dict):
    src, a = node["inputs"][0], node["attrs"]
    if lo.consumer(node)["attrs"].get("algorithm") == "fast":
        return lo.share_columns(node, me, names, local)
    # the quicksort compares packed rows with a tie-break of log2(rows) bits; the radix design
    # shares bits and needs a field only for positions and sums (LinkOps.radix_type)
    if lo.sorter == "quicksort":
        st = lo.stype(lo.nodes[src]["attrs"]["layout"]["bits"] + tiebreak_bits(lo.total_rows(node)))
    else:
        st = lo.radix_type(lo.consumer(node))
    size = int(lo.sizes[src])
    mine = a["party"] == me
    plain = np.array(local[src] if mine else [0] * size, dtype=object)
    link = lo.consumer(node)
    if mine and lo.sort_keys_distinct(link):
        plain = spread_padding(plain, link["attrs"]["layout"], link["inputs"].index(node["id"]))
    assert plain.shape == (size,)
    if lo.sorter == "radix":
        # the owner decomposes its own packed rows into bits in plaintext (least significant
        # first) and shares the (size, bits) 0/1 matrix: no secure bit decomposition afterwards
        # (it was a fifth of a 3k x 3k join); the packed value is their linear combination
        bits = lo.nodes[src]["attrs"]["layout"]["bits"]
        plain = (plain.reshape(size, 1) >> np.arange(bits, dtype=object).reshape(1, bits)) & 1
    return lo.mpc.input(st.array(plain), senders=names.index(a["party"]))


@register(LINK, "link_distinct")
def _link_distinct(lo: LinkOps, node: dict, values: dict, me: str, names: list[str], local: dict):
    vecs = [values[i] for i in node["inputs"]]
    if node["attrs"].get("algorithm") == "fast":
        return lo.finish(linkage_fast.distinct(lo.mpc, node, node["attrs"], lo.concat(vecs)))
    return lo.finish(lo.distinct(node, node["attrs"], vecs))


@register(LINK, "link_join")
def _link_join(lo: LinkOps, node: dict, values: dict, me: str, names: list[str], local: dict):
    u, m = (values[i] for i in node["inputs"])
    m_unique = lo.m_unique(node)
    if node["attrs"].get("algorithm") == "fast":
        return lo.finish(linkage_fast.join(lo.mpc, node, node["attrs"], lo.concat([u, m]), m_unique))
    return lo.finish(lo.join(node, node["attrs"], u, m, m_unique))


@register(LINK, "link_slot")
def _link_slot(lo: LinkOps, node: dict, values: dict, me: str, names: list[str], local: dict):
    return values[node["inputs"][0]][node["attrs"]["row"]]


__all__ = ["LINK", "LinkOps", "LinkageDataError", "local_vectors", "sizes_from_statuses"]
