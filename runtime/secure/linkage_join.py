"""The oblivious design's JOIN at one party (spec/linkage.md section 3, steps 2-7 for `link_join`):
sort by (key', side) -- plus M's cell, present and keyed bits when M repeats keys --, adjacent key
equality, the segmented scan that copies U's fields along each key's run, and the per-cell sums as one
secure matrix product. A mixin of `LinkOps` (runtime/secure/linkage_ops.py), whose sorts, bit fields
and one-hot encodings it uses; split from it by size (the distinct count needs none of this).
"""
from __future__ import annotations

import os

import numpy as np

from insightql.compiler.plaintext.linkage_local import field_of
from insightql.runtime.secure import linkage_fast
from insightql.runtime.secure.link_steps import segmented_scan


class JoinSteps:
    """JOIN with a unique key on side U (0): the `LinkOps` methods of the join (`link_join`)."""

    async def join(self, node: dict, a: dict, u, m, m_unique: bool):
        mpc = self.mpc
        lay = a["layout"]
        st = type(u).sectype
        K, W = lay["key_bits"], lay["payload_bits"]
        fm = {f["name"]: f for f in lay["sides"][1]}
        # the side bit, then M's cell, present and keyed bits: the fields that tell one person's
        # rows in one joint cell apart from the row before
        person_cols = [W] + [f["offset"] + j for name in ("cell", "present", "keyed") for f in [fm[name]]
                             for j in range(f["bits"])]
        # The sort orders by (key', side), U first in its key's run; when M repeats keys, also by
        # M's cell, present and keyed bits (most significant first), so the rows of one person and
        # joint cell are adjacent. The measures never take part: the sort key is narrower.
        by = [W] + ([] if m_unique else sorted(person_cols[1:], reverse=True))
        if self.sorter == "radix":
            bits, chunks = await self.radix_sorted(node, self.concat([u, m]), W + 1,
                                                   by[::-1] + [W + 1 + j for j in range(K + 1)],
                                                   (W + 1, W + 2 + K))  # key'
            phases = linkage_fast.Phases(mpc, node["id"])
            same_key = await self.chunks_equal(chunks)
        else:
            distinct = self.sort_keys_distinct(node)  # then the tie-break's bits are saved
            x, where = await self.shuffled(node, [u, m], tiebreak=not distinct)
            bits = mpc.np_to_bits(x, l=W + 1)  # before the sort: the bits follow their rows
            key = self.high_part(x, bits, st)  # key'
            sort_key = key * (1 << len(by)) + self.bits_value(bits, by)
            pos = await self.sort_order(node, sort_key, K + 1 + len(by), where)
            bits, key = bits[pos], key[pos]
            phases = linkage_fast.Phases(mpc, node["id"])
            same_key = await self.adjacent_equal(key, K + 2, st)
        n = bits.shape[0]
        await phases.done("adjacent equal", same_key)
        head = 1 - same_key
        side = bits[:, W]
        names, rows = self.carry_rows(a, bits)
        x = mpc.np_stack(rows) * (head * (1 - side)).reshape(1, n)  # U sorts first in its key's run
        z = mpc.np_concatenate([x, head.reshape(1, n)], axis=0)  # last row: "run head seen"
        if os.environ.get("IQ_LINK_SCAN") == "doubling":  # the earlier scan, kept for measurements
            d = 1
            while d < n:
                seen = z[-1]
                z = z + (1 - seen).reshape(1, n) * self.shift(z, d, 0, st)
                d *= 2
        else:
            z = segmented_scan(mpc, z)
        await phases.done("scan", z)
        first = (1 - same_key * self.bits_equal_prev(bits, person_cols, st)) * self.field(bits, fm["keyed"])
        return self.join_cells(a, bits, side, dict(zip(names, z)), lambda joint: joint @ first)

    def carry_rows(self, a: dict, bits) -> tuple[list[str], list]:
        """The U row's fields that its key's M rows need: match, cell bits, U-side measures."""
        fu = {f["name"]: f for f in a["layout"]["sides"][0]}
        names = ["match"] + [f"cell{j}" for j in range(fu["cell"]["bits"])] + \
            [x for w in a["weights"] if w.get("side") == 0 for x in (w["field"] + ".nn", w["field"] + ".val")]
        names = list(dict.fromkeys(names))
        rows = []
        for c in names:
            if c == "match":
                rows.append(self.field(bits, fu["present"]) * self.field(bits, fu["keyed"]))
            elif c.startswith("cell") and c[4:].isdigit():
                rows.append(bits[:, fu["cell"]["offset"] + int(c[4:])])
            else:
                rows.append(self.field(bits, fu[c]))
        return names, rows

    def join_cells(self, a: dict, bits, side, carried: dict, persons):
        """Per weight and cell, the sums over the joined rows (every M row that is present, and in an
        inner join matched), given the U fields carried to each M row; `persons(joint)` counts the
        distinct keys per joint cell."""
        mpc = self.mpc
        lay = a["layout"]
        st = type(bits).sectype
        n = bits.shape[0]
        fm = {f["name"]: f for f in lay["sides"][1]}
        fu_cell = field_of(lay, 0, "cell")
        match = carried["match"]
        joined = side * self.field(bits, fm["present"])
        hot_u = self.one_hot([carried[f"cell{j}"] for j in range(fu_cell["bits"])], a["cells_u"], n, st)
        if a["kind"] == "inner":
            joined = joined * match
            hot_u = hot_u * joined.reshape(1, n)
        else:
            nul = np.zeros((a["cells_u"], 1), dtype=object)
            nul[a["null_cell_u"], 0] = 1
            hot_u = (hot_u * match.reshape(1, n) + (1 - match).reshape(1, n) * st.array(nul)) * joined.reshape(1, n)
        hot_m = self.cell_hot(bits, lay, a["cells_m"], st, side=1)
        cu, cm = a["cells_u"], a["cells_m"]
        joint = (hot_u.reshape(cu, 1, n) * hot_m.reshape(1, cm, n)).reshape(cu * cm, n)
        weights = []
        for w in a["weights"]:
            if w["kind"] in ("rows", "persons"):
                weights.append(st.array(np.ones(n, dtype=object)))
            else:
                f = w["field"]
                nn, val = (carried[f + ".nn"], carried[f + ".val"]) if w["side"] == 0 else \
                    (self.field(bits, fm[f + ".nn"]), self.field(bits, fm[f + ".val"]))
                weights.append(nn if w["kind"] == "count" else val + w["lo"] * nn)
        out = joint @ mpc.np_transpose(mpc.np_stack(weights))  # (cells, weights): only this is communicated
        rows = [persons(joint) if w["kind"] == "persons" else out[:, r] for r, w in enumerate(a["weights"])]
        return mpc.np_stack(rows)[:, np.array(a["cell_perm"], dtype=int)]

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
