"""Record linkage on MPyC secret-shared arrays: oblivious, sort-based (spec/linkage.md).

Each owner's vector of packed rows (compiler/linkage_local.py) is secret-shared; the parties
concatenate the vectors, sort them (`mpc.np_sort`, Batcher's network), and from then on touch
every position the same way: adjacent key equality (one vectorised zero test, `l` = key bits + 2),
the payload's bit fields (`mpc.np_to_bits` of the low bits only; each field is a linear combination
of bits), one-hot cell encodings from bits by products (no comparisons), a segmented scan that
copies the unique side's fields along each key's run (log2 n rounds of products), and per-cell sums
as one secure matrix product (which communicates only its result). The sort works in its own
SecInt sized to the packed rows; the small per-cell results are converted to the plan's type.

Nothing is opened here: the per-cell vectors feed the plan's threshold/mask/reveal nodes like
`combine` outputs. The plaintext meaning of every op is in compiler/linkage_local.py.
"""
from __future__ import annotations

import numpy as np

from insightql.compiler.linkage_local import LinkageDataError, link_rows

LINK_OPS = ("link_rows", "link_share", "link_distinct", "link_join", "link_slot")


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


class LinkOps:
    def __init__(self, mpc, plan: dict, sizes: dict[str, int], main_type):
        self.mpc = mpc
        self.nodes = {n["id"]: n for n in plan["nodes"]}
        self.sizes = sizes
        self.main = main_type
        self._types = {}

    def stype(self, bits: int):
        if bits not in self._types:
            self._types[bits] = self.mpc.SecInt(bits + 2)
        return self._types[bits]

    def run(self, node: dict, values: dict, me: str, names: list[str], local: dict):
        op, a = node["op"], node["attrs"]
        if op == "link_rows":
            return local.get(node["id"])
        if op == "link_share":
            src = node["inputs"][0]
            st = self.stype(self.nodes[src]["attrs"]["layout"]["bits"])
            size = int(self.sizes[src])
            mine = a["party"] == me
            plain = np.array(local[src] if mine else [0] * size, dtype=object)
            assert plain.shape == (size,)
            return self.mpc.input(st.array(plain), senders=names.index(a["party"]))
        if op == "link_distinct":
            return self.to_main(self.distinct(a, [values[i] for i in node["inputs"]]))
        if op == "link_join":
            return self.to_main(self.join(a, values[node["inputs"][0]], values[node["inputs"][1]]))
        if op == "link_slot":
            return values[node["inputs"][0]][a["row"]]
        raise AssertionError(op)

    # -- helpers --------------------------------------------------------------------------
    def to_main(self, x):
        """Small per-cell results into the plan's secure integer type."""
        mpc = self.mpc
        shape = x.shape
        flat = mpc.np_tolist(mpc.np_flatten(x)) if len(shape) > 1 else mpc.np_tolist(x)
        return mpc.np_fromlist(mpc.convert(flat, self.main)).reshape(shape)

    def sorted_concat(self, vecs: list):
        mpc = self.mpc
        x = vecs[0] if len(vecs) == 1 else mpc.np_concatenate(vecs)
        return mpc.np_sort(x)

    def field(self, bits, f: dict):
        """Value of a bit field from the (n, W) bit matrix: a linear combination of bits."""
        cols = bits[:, f["offset"]:f["offset"] + f["bits"]]
        if f["bits"] == 1:
            return cols[:, 0]
        return cols @ np.array([1 << j for j in range(f["bits"])], dtype=object)

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

    def adjacent_equal(self, x, l: int, st):
        """1 where x[i] == x[i-1] (0 at i = 0), for 0 <= x[i] - x[i-1] < 2**(l-1) after sorting."""
        mpc = self.mpc
        n = x.shape[0]
        if n < 2:
            return st.array(np.zeros(n, dtype=object))
        eq = mpc.np_sgn(x[1:] - x[:-1], l=l, EQ=True)
        return mpc.np_concatenate([st.array(np.zeros(1, dtype=object)), eq])

    def shift(self, x, d: int, fill, st):
        """x moved d positions along the last axis (towards higher indices), `fill` coming in."""
        mpc = self.mpc
        lead = st.array(np.full(x.shape[:-1] + (d,), fill, dtype=object))
        return mpc.np_concatenate([lead, x[..., :-d]], axis=-1)

    # -- COUNT(DISTINCT key) across owners ---------------------------------------------------
    def distinct(self, a: dict, vecs: list):
        lay = a["layout"]
        st = type(vecs[0]).sectype
        mpc = self.mpc
        s = self.sorted_concat(vecs)
        n = s.shape[0]
        W = lay["payload_bits"]
        bits = mpc.np_to_bits(s, l=W)
        cell_f = next(f for f in lay["sides"][0] if f["name"] == "cell")
        present = self.field(bits, next(f for f in lay["sides"][0] if f["name"] == "present"))
        first = 1 - self.adjacent_equal(s, lay["bits"] + 1, st)
        hot = self.one_hot([bits[:, cell_f["offset"] + j] for j in range(cell_f["bits"])], a["cells"], n, st)
        return hot @ (first * present)

    # -- JOIN with a unique key on side U (0) -------------------------------------------------
    def join(self, a: dict, u, m):
        mpc = self.mpc
        lay = a["layout"]
        st = type(u).sectype
        K, W = lay["key_bits"], lay["payload_bits"]
        s = self.sorted_concat([u, m])
        n = s.shape[0]
        bits = mpc.np_to_bits(s, l=W + 1)
        low = bits @ np.array([1 << j for j in range(W + 1)], dtype=object)
        inv = pow(2, -(W + 1), st.field.modulus)
        key = (s - low) * inv  # exact: s - low is a multiple of 2**(W+1)
        same_key = self.adjacent_equal(key, K + 2, st)
        head = 1 - same_key
        side = bits[:, W]
        fu = {f["name"]: f for f in lay["sides"][0]}
        fm = {f["name"]: f for f in lay["sides"][1]}
        # fields of the U row, copied along its key's run (U sorts first in the run)
        carry_names = ["match"] + [f"cell{j}" for j in range(fu["cell"]["bits"])] + \
            [x for w in a["weights"] if w.get("side") == 0 for x in (w["field"] + ".nn", w["field"] + ".val")]
        carry_names = list(dict.fromkeys(carry_names))
        rows = []
        for c in carry_names:
            if c == "match":
                rows.append(self.field(bits, fu["present"]) * self.field(bits, fu["keyed"]))
            elif c.startswith("cell") and c[4:].isdigit():
                rows.append(bits[:, fu["cell"]["offset"] + int(c[4:])])
            else:
                rows.append(self.field(bits, fu[c]))
        hu = head * (1 - side)
        x = mpc.np_stack(rows) * hu.reshape(1, n)
        z = mpc.np_concatenate([x, head.reshape(1, n)], axis=0)  # last row: "run head seen"
        d = 1
        while d < n:
            seen = z[-1]
            z = z + (1 - seen).reshape(1, n) * self.shift(z, d, 0, st)
            d *= 2
        carried = {c: z[i] for i, c in enumerate(carry_names)}
        match = carried["match"]
        joined = side * self.field(bits, fm["present"])
        hot_u = self.one_hot([carried[f"cell{j}"] for j in range(fu["cell"]["bits"])], a["cells_u"], n, st)
        if a["kind"] == "inner":
            joined = joined * match
            hot_u = hot_u * joined.reshape(1, n)
        else:
            nul = np.zeros((a["cells_u"], 1), dtype=object)
            nul[a["null_cell_u"], 0] = 1
            hot_u = (hot_u * match.reshape(1, n) + (1 - match).reshape(1, n) * st.array(nul)) * joined.reshape(1, n)
        hot_m = self.one_hot([bits[:, fm["cell"]["offset"] + j] for j in range(fm["cell"]["bits"])],
                             a["cells_m"], n, st)
        cu, cm = a["cells_u"], a["cells_m"]
        joint = (hot_u.reshape(cu, 1, n) * hot_m.reshape(1, cm, n)).reshape(cu * cm, n)
        weights = []
        for w in a["weights"]:
            if w["kind"] == "rows":
                weights.append(st.array(np.ones(n, dtype=object)))
            elif w["kind"] == "persons":
                prefix = [W] + [f["offset"] + j for name in ("cell", "present", "keyed")
                                for f in [fm[name]] for j in range(f["bits"])]
                weights.append((1 - same_key * self.bits_equal_prev(bits, prefix, st)) * self.field(bits, fm["keyed"]))
            else:
                f = w["field"]
                nn, val = (carried[f + ".nn"], carried[f + ".val"]) if w["side"] == 0 else \
                    (self.field(bits, fm[f + ".nn"]), self.field(bits, fm[f + ".val"]))
                weights.append(nn if w["kind"] == "count" else val + w["lo"] * nn)
        out = joint @ mpc.np_transpose(mpc.np_stack(weights))  # (cells, weights): only this is communicated
        out = mpc.np_transpose(out)
        return out[:, np.array(a["cell_perm"], dtype=int)]

    def bits_equal_prev(self, bits, cols: list[int], st):
        """1 where the given bit columns of row i equal those of row i-1 (0 at i = 0): XNOR by one
        product per bit, then a product tree."""
        mpc = self.mpc
        n = bits.shape[0]
        if n < 2:
            return st.array(np.zeros(n, dtype=object))
        cur = mpc.np_stack([bits[1:, c] for c in cols])
        prev = mpc.np_stack([bits[:-1, c] for c in cols])
        e = 1 - cur - prev + 2 * cur * prev
        while e.shape[0] > 1:
            h = e.shape[0] // 2
            rest = e[2 * h:]
            e = e[:h] * e[h:2 * h]
            if rest.shape[0]:
                e = mpc.np_concatenate([e, rest], axis=0)
        return mpc.np_concatenate([st.array(np.zeros(1, dtype=object)), e[0]])


__all__ = ["LINK_OPS", "LinkOps", "LinkageDataError", "local_vectors", "sizes_from_statuses"]
