"""Secure ops of the plan, on MPyC secret-shared arrays. Every op is one vectorised call over
all cells; nothing here awaits, so independent ops overlap their communication rounds.

The plaintext meaning of each op is `insightql.compiler.oracle.secure_op_plain`; the
differential tests hold the two to the same results.
"""
from __future__ import annotations

import math

import numpy as np

from insightql.compiler.partials import slot_rows


class SecureOps:
    def __init__(self, mpc, plan: dict):
        self.mpc = mpc
        st = plan["secure_type"]
        self.f = st["f"]
        self.sf = mpc.SecFxp(st["l"], st["f"])
        self.si = mpc.SecInt(st["int_bits"] + 2)
        self.cells = plan["cells"]
        self.nodes = {n["id"]: n for n in plan["nodes"]}

    # -- helpers --------------------------------------------------------------------------
    def bits(self, lo: float, hi: float) -> int:
        """MPyC's `l` for a sign test of a value in [lo, hi] (raw fixed-point encoding)."""
        m = max(abs(lo), abs(hi), 1)
        return math.ceil(math.log2(m + 1)) + self.f + 2

    def lt0(self, x, lo, hi):
        """1 where x < 0, else 0."""
        return self.mpc.np_sgn(x, l=self.bits(lo, hi), LT=True)

    def eq0(self, x, lo, hi):
        return self.mpc.np_sgn(x, l=self.bits(lo, hi), EQ=True)

    def const(self, value, shape=None):
        return self.sf.array(np.full(shape or self.cells, value, dtype=object))

    def maximum(self, a, b, lo, hi):
        lt = self.lt0(a - b, lo - hi, hi - lo)  # a < b
        return a + lt * (b - a)

    def minimum(self, a, b, lo, hi):
        lt = self.lt0(a - b, lo - hi, hi - lo)
        return b + lt * (a - b)

    # -- inputs ---------------------------------------------------------------------------
    def share(self, node: dict, matrix: np.ndarray | None, sender: int):
        """Secret-share an owner's partials matrix; other parties pass a same-shaped placeholder."""
        shape = tuple(node["shape"])
        plain = matrix if matrix is not None else np.zeros(shape, dtype=np.int64)
        assert plain.shape == shape, (plain.shape, shape)
        return self.mpc.input(self.sf.array(plain.astype(object)), senders=sender)

    # -- ops ------------------------------------------------------------------------------
    def run(self, node: dict, args: list, values: dict):
        op, a = node["op"], node["attrs"]
        lo, hi = node["bounds"]
        mpc = self.mpc
        if op == "combine":
            share0 = self.nodes[node["inputs"][0]]
            r0, r1 = slot_rows(self.nodes[share0["inputs"][0]]["attrs"]["slots"])[a["slot"]]
            blocks = [values[i][r0:r1] for i in node["inputs"]]
            if a["how"] == "sum":
                out = blocks[0]
                for b in blocks[1:]:
                    out = out + b
                return out if r1 - r0 > 1 else out[0]
            rows = [b[0] for b in blocks]
            if a["how"] in ("max", "min"):
                out = rows[0]
                pick = self.maximum if a["how"] == "max" else self.minimum
                for r in rows[1:]:
                    out = pick(out, r, lo, hi)
                return out
            return self.top_sum(blocks, a["n"], hi)
        if op == "ge_const":
            src = self.nodes[node["inputs"][0]]["bounds"]
            return 1 - self.lt0(args[0] - a["const"], src[0] - a["const"], src[1] - a["const"])
        if op == "outside_range":
            s_lo, s_hi = self.nodes[node["inputs"][0]]["bounds"]
            below = self.lt0(args[0] - a["low"], s_lo - a["low"], s_hi - a["low"])
            above = self.lt0(a["high"] - args[0], a["high"] - s_hi, a["high"] - s_lo)
            return below + above
        if op == "and":
            out = args[0]
            for x in args[1:]:
                out = out * x
            return out
        if op == "or":
            return args[0] + args[1] - args[0] * args[1]
        if op == "not":
            return 1 - args[0]
        if op == "add":
            return args[0] + args[1]
        if op == "sub":
            return args[0] - args[1]
        if op == "neg":
            return -args[0]
        if op in ("mul", "mask"):
            return args[0] * args[1]
        if op == "mul_const":
            return args[0] * a["const"]
        if op == "const":
            return self.const(a["value"])
        if op == "nonzero":
            s_lo, s_hi = self.nodes[node["inputs"][0]]["bounds"]
            return 1 - self.eq0(args[0], s_lo, s_hi)
        if op == "div":
            guard = args[2]
            safe = args[1] * guard + (1 - guard)
            return mpc.np_divide(args[0], safe)
        if op == "variance":
            s, sq, n, guard = args
            n_safe = n * guard + 2 * (1 - guard)
            mean = mpc.np_divide(s, n_safe)
            return mpc.np_divide(sq - s * mean, n_safe - 1)
        if op == "median":
            hist, cnt = args
            cum = mpc.np_cumsum(hist, axis=0)
            size = hist.shape[0]
            total = self.nodes[node["inputs"][1]]["bounds"][1]
            below = self.lt0(2 * cum - mpc.np_vstack([cnt] * size) if size > 1 else 2 * cum - cnt,
                             -total, 2 * total)
            return a["lo_value"] + mpc.np_sum(below, axis=0)
        if op == "dominance":
            top, total = args
            k = int(round(a["k"] * 100))
            t_hi = self.nodes[node["inputs"][1]]["bounds"][1]
            over = self.lt0(k * total - 10000 * top, -10000 * t_hi, k * t_hi)
            return 1 - over
        if op == "round_down":
            return self.round_down(args[0], a["to"])
        if op == "compare":
            s_lo, s_hi = self.nodes[node["inputs"][0]]["bounds"]
            d = args[0]
            rel = a["relation"]
            if rel in ("=", "<>"):
                eq = self.eq0(d, s_lo, s_hi)
                return eq if rel == "=" else 1 - eq
            if rel in ("<", ">="):
                lt = self.lt0(d, s_lo, s_hi)
                return lt if rel == "<" else 1 - lt
            gt = self.lt0(-d, -s_hi, -s_lo)
            return gt if rel == ">" else 1 - gt
        raise AssertionError(f"unknown secure op {op}")

    def top_sum(self, blocks: list, n: int, hi: float):
        """Sum of the n largest of all parties' top-n candidates per cell (insertion network)."""
        top = [blocks[0][j] for j in range(n)]
        for b in blocks[1:]:
            for j in range(n):
                c = b[j]
                for i in range(n):
                    hi_v = self.maximum(top[i], c, 0, hi)
                    c = top[i] + c - hi_v
                    top[i] = hi_v
        out = top[0]
        for t in top[1:]:
            out = out + t
        return out

    def round_down(self, x, to: int):
        """x - (x mod to) for integral x, via secure integers (MPyC's mod needs a field modulus)."""
        mpc = self.mpc
        ints = mpc.convert(list(x), self.si)
        kept = [v - mpc.mod(v, self.si.field(to)) for v in ints]
        return mpc.np_fromlist(mpc.convert(kept, self.sf))
