"""Secure ops of the plan, on MPyC secret-shared integer arrays (SecInt). Every op is one
vectorised call over all cells; nothing here awaits, so independent ops overlap their rounds.

Values are secret integers: counts, sums of scaled decimals, 0/1 flags, and quotients held as
round(value * 2**frac) (the plan gives each node's `frac`). Comparisons get the bit length the
plan's bounds allow (`l=`), which is what makes them cheap. Each op's implementation is
registered in `SECURE` under its name; its plaintext meaning is registered in
compiler/plaintext/oracle.py, and differential tests hold the two together. Link ops: runtime/secure/linkage_ops.py.
"""
from __future__ import annotations

import math

import numpy as np

from insightql.compiler.plan.ops import RECIPROCAL_NEWTON_STEPS, operands, rank_block, rank_weights, raw_range, \
    reciprocal_scales, register, sign_bits
from insightql.compiler.plaintext.partials import linear_matrix, slot_rows
from insightql.runtime.secure import dp_noise

SECURE: dict = {}  # op name -> its secure implementation (compiler/plan/ops.py declares the ops)


class SecureOps:
    def __init__(self, mpc, plan: dict):
        self.mpc = mpc
        st = plan["secure_type"]
        self.si = mpc.SecInt(st["l"])
        self.Q = st["frac_bits"]
        self.P = st["recip_bits"]
        self.cells = plan["cells"]
        self.nodes = {n["id"]: n for n in plan["nodes"]}

    # -- helpers --------------------------------------------------------------------------
    def raw_range(self, nid: str) -> tuple[int, int]:
        return raw_range(self.nodes[nid])

    def lt0(self, x, lo, hi, l: int | None = None):
        """1 where x < 0, else 0 (l: the plan's bit length for this test, if annotated)."""
        return self.mpc.np_sgn(x, l=l or sign_bits(lo, hi), LT=True)

    def eq0(self, x, lo, hi, l: int | None = None):
        return self.mpc.np_sgn(x, l=l or sign_bits(lo, hi), EQ=True)

    def run_batch(self, members: list[dict], values: dict) -> dict:
        """Threshold tests of one batch (compiler/plan/passes/batching.py) in one vectorised sign test:
        x >= c is 1 - [x - c < 0]; x outside [low, high] is [x - low < 0] + [high - x < 0]."""
        mpc = self.mpc
        rows, l = [], 1
        for n in members:
            x = values[n["inputs"][0]]
            a = n["attrs"]
            if n["op"] == "ge_const":
                rows.append((x - a["const"] * 2 ** self.nodes[n["inputs"][0]].get("frac", 0)).reshape(1, -1))
            else:
                rows += [(x - a["low"]).reshape(1, -1), (a["high"] - x).reshape(1, -1)]
            l = max(l, a["l"])
        below = mpc.np_sgn(mpc.np_vstack(rows), l=l, LT=True)
        out, r = {}, 0
        for n in members:
            if n["op"] == "ge_const":
                out[n["id"]], r = 1 - below[r], r + 1
            else:
                out[n["id"]], r = below[r] + below[r + 1], r + 2
        return out

    def const(self, value: int, shape=None):
        return self.si.array(np.full(shape or self.cells, int(value), dtype=object))

    def trunc(self, x, shift: int):
        """x / 2**shift rounded (MPyC's probabilistic truncation, error at most 1)."""
        if shift <= 0:
            return x * (2 ** -shift)
        return self.mpc.np_trunc(x, f=shift)

    def maximum(self, a, b, lo, hi):
        lt = self.lt0(a - b, lo - hi, hi - lo)  # a < b
        return a + lt * (b - a)

    def align(self, x, frac_from: int, frac_to: int):
        return x * (2 ** (frac_to - frac_from)) if frac_to > frac_from else x

    # -- inputs ---------------------------------------------------------------------------
    def share(self, node: dict, matrix: np.ndarray | None, sender: int):
        """Secret-share an owner's partials matrix; other parties pass a same-shaped placeholder."""
        shape = tuple(node["shape"])
        plain = matrix if matrix is not None else np.zeros(shape, dtype=np.int64)
        assert plain.shape == shape, (plain.shape, shape)
        return self.mpc.input(self.si.array(plain.astype(object)), senders=sender)

    # -- ops ------------------------------------------------------------------------------
    def run(self, node: dict, args: list, values: dict):
        part = SECURE.get(node["op"])
        if part is None:
            raise AssertionError(f"no secure implementation of op {node['op']!r} (runtime/secure/secure_ops.py SECURE)")
        return part(self, node, args, values)

    def fracs(self, node: dict) -> list[int]:
        return [self.nodes[i].get("frac", 0) for i in node["inputs"]]

    def combine(self, node: dict, values: dict):
        """A slot's rows summed over the given shares ("sum"), also over the slot's rows ("total":
        a histogram's count, the sum of each dataset's n largest), or their max/min."""
        a = node["attrs"]
        share0 = self.nodes[node["inputs"][0]]
        r0, r1 = slot_rows(self.nodes[share0["inputs"][0]]["attrs"]["slots"])[a["slot"]]
        blocks = [values[i][r0:r1] for i in node["inputs"]]
        lo, hi = node["bounds"]
        if a["how"] in ("sum", "total"):
            out = blocks[0]
            for b in blocks[1:]:
                out = out + b
            if a["how"] == "total":
                return self.mpc.np_sum(out, axis=0) if r1 - r0 > 1 else out[0]
            return out if r1 - r0 > 1 else out[0]
        out = blocks[0][0]
        for b in blocks[1:]:
            out = self.maximum(out, b[0], lo, hi) if a["how"] == "max" else -self.maximum(-out, -b[0], -hi, -lo)
        return out

    def reciprocal(self, b, b_hi: int):
        """round(2**P / b) for integer 1 <= b <= b_hi, within 2**-31 relative.

        The start is x0 = 2**(L-e) for b's bit length e (L: b_hi's), so that b*x0 lies in
        [2**(L-1), 2**L); each Newton step x <- x(2**(p+1) - bx) / 2**(2p - q) doubles the correct
        bits and takes x from scale p to scale q, so RECIPROCAL_NEWTON_STEPS = 5 steps reach the 32
        bits of precision beyond b's size. The scales (compiler/plan/ops.py reciprocal_scales) grow
        with the bits a step gets right, ending at P: a truncation costs one random bit per bit it
        drops, and steps at P throughout dropped 5P bits per element, more than twice as many.
        e comes from b's L bits (MPyC's bit decomposition: L random bits per element, where L - 1
        sign tests of L + 1 bits each took about L**2): s_j = [b < 2**j] = prod_{i >= j} (1 - bit_i),
        suffix products in log2(L) rounds of multiplications, and x0 = 1 + sum_j s_j 2**(L-j-1)
        for j = 1 .. L-1."""
        mpc = self.mpc
        L = max(1, math.ceil(math.log2(b_hi + 1)))
        if L > 1:
            s = 1 - mpc.np_to_bits(b, l=L)[:, 1:]  # column j-1: 1 - bit j, j = 1 .. L-1
            m, d = L - 1, 1
            while d < m:  # Hillis-Steele scan from the top: column j-1 becomes prod_{i >= j} (1 - bit_i)
                s = mpc.np_hstack((s[:, :m - d] * s[:, d:], s[:, m - d:]))
                d *= 2
            weights = np.array([2 ** (L - j - 1) for j in range(1, L)], dtype=object)
            x = s @ weights + 1
        else:
            x = self.const(1, b.shape[0])
        p = L
        for q in reciprocal_scales(L, self.P, RECIPROCAL_NEWTON_STEPS):
            x = self.trunc(x * (2 ** (p + 1) - b * x), 2 * p - q)
            p = q
        return self.trunc(x, p - self.P)  # no steps (tests): the start at scale P

    def safe_denominator(self, b, guard, lo: int, hi: int):
        """(|b| or 1 where the guard is off, sign flag) so the reciprocal is always defined."""
        b = b * guard + (1 - guard)
        if lo >= 0:
            return b, None
        neg = self.lt0(b, lo, hi)
        return b - 2 * neg * b, neg

    def divide(self, node: dict, args: list, fr: list[int]):
        num, den = args[0], args[1]
        guard = args[2] if len(args) > 2 else self.const(1)
        lo, hi = self.raw_range(node["inputs"][1])
        b, neg = self.safe_denominator(den, guard, lo, hi)
        r = self.reciprocal(b, max(abs(lo), abs(hi), 1))
        q = self.trunc(num * r, self.P + fr[0] - fr[1] - node["frac"])
        return q if neg is None else q - 2 * neg * q

    def divide_many(self, nodes: list[dict], values: dict) -> dict:
        """Several div nodes as one division: one reciprocal over all their cells (one vectorised
        bit decomposition and Newton iteration instead of one per node: half the messages for
        AVG's two divisions in the demo; each cell's start is still its own divisor's bit length,
        so every quotient is what divide() gives), then one product with the numerators and one
        truncation per distinct shift."""
        if len(nodes) == 1 or any(len(getattr(values[i], "shape", ())) != 1 for n in nodes for i in operands(n)):
            return {n["id"]: self.divide(n, [values[i] for i in operands(n)], self.fracs(n)) for n in nodes}
        mpc, parts = self.mpc, []
        for n in nodes:
            args = [values[i] for i in operands(n)]
            guard = args[2] if len(args) > 2 else self.const(1)
            lo, hi = self.raw_range(n["inputs"][1])
            b, neg = self.safe_denominator(args[1], guard, lo, hi)
            fr = self.fracs(n)
            parts.append((n, args[0], b, neg, max(abs(lo), abs(hi), 1), self.P + fr[0] - fr[1] - n["frac"]))
        r = self.reciprocal(mpc.np_concatenate([p[2] for p in parts]), max(p[4] for p in parts))
        products = mpc.np_concatenate([p[1] for p in parts]) * r
        out, at, shifts = {}, 0, [p[5] for p in parts]
        whole = self.trunc(products, shifts[0]) if len(set(shifts)) == 1 else None
        for n, num, b, neg, _, shift in parts:
            k = b.shape[0]
            q = whole[at:at + k] if whole is not None else self.trunc(products[at:at + k], shift)
            out[n["id"]] = q if neg is None else q - 2 * neg * q
            at += k
        return out

    def variance(self, node: dict, args: list):
        s, sq, n, guard = args
        n_hi = max(self.raw_range(node["inputs"][2])[1], 2)
        n_safe = n * guard + 2 * (1 - guard)
        mean = self.trunc(s * self.reciprocal(n_safe, n_hi), self.P - self.Q)  # frac Q
        num = sq * (2 ** self.Q) - s * mean  # frac Q
        return self.trunc(num * self.reciprocal(n_safe - 1, n_hi), self.P)


# -- secure ops, registered by op name ------------------------------------------------------------
register(SECURE, "dp_noise")(dp_noise.add_noise)  # differential privacy: runtime/secure/dp_noise.py


@register(SECURE, "combine")
def _combine(s: SecureOps, node: dict, args: list, values: dict):
    return s.combine(node, values)


@register(SECURE, "ge_const")
def _ge_const(s: SecureOps, node: dict, args: list, values: dict):
    lo, hi = s.raw_range(node["inputs"][0])
    c = node["attrs"]["const"] * 2 ** s.fracs(node)[0]
    return 1 - s.lt0(args[0] - c, lo - c, hi - c, node["attrs"].get("l"))


@register(SECURE, "outside_range")
def _outside_range(s: SecureOps, node: dict, args: list, values: dict):
    a = node["attrs"]
    lo, hi = s.raw_range(node["inputs"][0])
    below = s.lt0(args[0] - a["low"], lo - a["low"], hi - a["low"], a.get("l"))
    above = s.lt0(a["high"] - args[0], a["high"] - hi, a["high"] - lo, a.get("l"))
    return below + above


@register(SECURE, "and")
def _and(s: SecureOps, node: dict, args: list, values: dict):
    out = args[0]
    for x in args[1:]:
        out = out * x
    return out


@register(SECURE, "or")
def _or(s: SecureOps, node: dict, args: list, values: dict):
    return args[0] + args[1] - args[0] * args[1]


@register(SECURE, "not")
def _not(s: SecureOps, node: dict, args: list, values: dict):
    return 1 - args[0]


@register(SECURE, "add", "sub")
def _add_sub(s: SecureOps, node: dict, args: list, values: dict):
    fr = s.fracs(node)
    f = max(fr)
    x, y = s.align(args[0], fr[0], f), s.align(args[1], fr[1], f)
    return x + y if node["op"] == "add" else x - y


@register(SECURE, "neg")
def _neg(s: SecureOps, node: dict, args: list, values: dict):
    return -args[0]


@register(SECURE, "mul")
def _mul(s: SecureOps, node: dict, args: list, values: dict):
    return s.trunc(args[0] * args[1], sum(s.fracs(node)) - node["frac"])


@register(SECURE, "mask")
def _mask(s: SecureOps, node: dict, args: list, values: dict):
    return args[0] * args[1]


@register(SECURE, "linear")
def _linear(s: SecureOps, node: dict, args: list, values: dict):  # public 0/1 map: local, no communication
    return args[0] @ linear_matrix(node["attrs"], s.nodes[node["inputs"][0]]["shape"][0])


@register(SECURE, "mul_const")
def _mul_const(s: SecureOps, node: dict, args: list, values: dict):
    return args[0] * node["attrs"]["const"]


@register(SECURE, "const")
def _const(s: SecureOps, node: dict, args: list, values: dict):
    return s.const(node["attrs"]["value"], node["shape"][0])


@register(SECURE, "nonzero")
def _nonzero(s: SecureOps, node: dict, args: list, values: dict):
    lo, hi = s.raw_range(node["inputs"][0])
    return 1 - s.eq0(args[0], lo, hi)


@register(SECURE, "div")
def _div(s: SecureOps, node: dict, args: list, values: dict):
    return s.divide(node, args, s.fracs(node))


@register(SECURE, "variance")
def _variance(s: SecureOps, node: dict, args: list, values: dict):
    return s.variance(node, args)


@register(SECURE, "median", "percentile")
def _rank(s: SecureOps, node: dict, args: list, values: dict):
    """lo_value + the number K of histogram rows whose running count c has a*c < b*n. The flags
    [a*c < b*n] fall from 1 to 0 along the rows (counts are >= 0), so K is found in two levels
    (compiler/plan/ops.py rank_block): one sign test of every block's last row gives the number J
    of whole blocks below and, as differences of neighbouring flags, a secret one-hot of block J;
    one product selects that block's rows, and a second sign test counts them. Same K as testing
    every row, with about 2*sqrt(size) tested elements per cell instead of size."""
    mpc = s.mpc
    hist, cnt = args
    a, b = rank_weights(node)
    total = s.raw_range(node["inputs"][1])[1]
    l = node["attrs"].get("l")
    diff = a * mpc.np_cumsum(hist, axis=0) - b * cnt.reshape(1, -1)  # row i: below iff < 0
    size, cells = hist.shape[0], hist.shape[1]
    B = rank_block(size)
    if not B:
        return node["attrs"]["lo_value"] + mpc.np_sum(s.lt0(diff, -b * total, a * total, l), axis=0)
    nb = -(-size // B)
    ends = [min((j + 1) * B, size) - 1 for j in range(nb)]
    top = s.lt0(diff[ends], -b * total, a * total, l)  # row j: all of block j is below
    lengths = np.array([[e - j * B + 1] for j, e in enumerate(ends)], dtype=object)
    whole = mpc.np_sum(top * lengths, axis=0)
    onehot = mpc.np_vstack([1 - top[:1], top[:-1] - top[1:]])  # block J (none when every block is below)
    # rows 0..B-2 of each block (its last row is block J's top flag, 0): padded with 0, never below
    zero = s.const(0, (1, cells))
    rows = mpc.np_vstack([diff[j * B + r].reshape(1, -1) if j * B + r < ends[j] else zero
                          for j in range(nb) for r in range(B - 1)]).reshape(nb, B - 1, cells)
    picked = mpc.np_sum(onehot.reshape(nb, 1, cells) * rows, axis=0)  # block J's rows (B-1, cells)
    inside = s.lt0(picked, -b * total, a * total, l)
    return node["attrs"]["lo_value"] + whole + mpc.np_sum(inside, axis=0)


@register(SECURE, "dominance")
def _dominance(s: SecureOps, node: dict, args: list, values: dict):
    top, total = args
    k = int(round(node["attrs"]["k"] * 100))
    t_hi = s.raw_range(node["inputs"][1])[1]
    return 1 - s.lt0(k * total - 10000 * top, -10000 * t_hi, k * t_hi)


@register(SECURE, "round_down")
def _round_down(s: SecureOps, node: dict, args: list, values: dict):
    step = node["attrs"]["to"] * 2 ** s.fracs(node)[0]
    kept = [v - s.mpc.mod(v, s.si(step)) for v in args[0]]  # mod wants a secure-typed public divisor
    return s.mpc.np_fromlist(kept)


@register(SECURE, "compare")
def _compare(s: SecureOps, node: dict, args: list, values: dict):
    lo, hi = s.raw_range(node["inputs"][0])
    d, rel = args[0], node["attrs"]["relation"]
    if rel in ("=", "<>"):
        eq = s.eq0(d, lo, hi)
        return eq if rel == "=" else 1 - eq
    if rel in ("<", ">="):
        lt = s.lt0(d, lo, hi)
        return lt if rel == "<" else 1 - lt
    gt = s.lt0(-d, -hi, -lo)
    return gt if rel == ">" else 1 - gt
