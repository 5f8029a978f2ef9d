"""Cost model of a plan: what each secure node costs on MPyC, computed from the plan alone.

For every node: secure multiplications (elements reshared), comparisons (elements and the bit
length `l` the runtime passes to `np_sgn`), truncations, communication rounds, and the bytes
each party sends. It mirrors, call by call, what `runtime/secure/secure_ops.py` asks of MPyC 0.11 with
Shamir sharing among m parties at threshold t = (m-1)//2:

* `input` from P: P sends its share vector to the m-1 others;
* `output` at threshold t (opening c in a comparison, a truncation, the reveal): every party
  sends its share to its t successors (the reveal: to the receivers among them);
* opening at threshold 2t (squares of random bits, the public zero test): to 2t successors;
* reshare after a secure x secure product: 2t+1 of the m parties, chosen by a hash of MPyC's
  program counter, send to the m-1 others. Which ones is not predictable from the plan, so a
  party's figure is the expectation (2t+1)/m of it; `spread` gives the range.

A message is a pickled numpy object array: 12 bytes of frame, about 147 bytes of pickle header
and, per element, the pickled size of a uniform field element (2 + its byte length). The
constants were calibrated against `bytes sent` of real runs (spec/plan.md, "Cost model").
The compiler never imports MPyC, so the field size is MPyC's rule for SecInt(l): l + 32 bits.
"""
from __future__ import annotations

import math
import pickle
from collections import defaultdict

from insightql.compiler.plan.ops import COST, RECIPROCAL_NEWTON_STEPS, rank_block, rank_weights, raw_range, \
    reciprocal_scales, register, sign_bits as bits

FRAME = 12                  # MPyC message frame: program counter (8) + length (4)
PICKLE_HEADER = 145         # pickled 1-D numpy object array without shape and elements
SHUTDOWN_PAYLOAD = 5        # mpc.shutdown(): every party transfers its pid to every other
FIELD_EXTRA_BITS = 32       # MPyC SecInt(l) works in a prime field of l + 32 bits (k = 30)


# -- primitive costs ---------------------------------------------------------------------
class Tally:
    """Communication events of one node: lists of element counts per kind of call."""

    def __init__(self):
        self.open_t: list[int] = []     # output at threshold t to all parties
        self.open_2t: list[int] = []    # output at threshold 2t to all parties
        self.reshare: list[int] = []    # products of two secret vectors
        self.inputs: list[tuple[str, int]] = []
        self.reveal: list[tuple[list[str], int]] = []
        self.scalar_open_t: list[int] = []  # MPyC's scalar (list) protocols: fixed-width ints
        self.scalar_open_2t: list[int] = []
        self.scalar_reshare: list[int] = []
        self.expected: list[tuple[str, float, float]] = []  # (kind, calls, elements): random counts
        self.comparisons: list[dict] = []
        self.truncations: list[dict] = []
        self.rounds = 0

    def lt0(self, n: int, l: int):
        """np_sgn(LT=True): l+1 random bits, open c, product tree over l+1 rows, zero test."""
        self.comparisons.append({"kind": "lt", "elements": n, "l": l})
        self.open_2t.append((l + 1) * n)
        self.open_t.append(n)
        self._tree(l + 1, n)
        self.open_2t.append(n)
        self.rounds += 3 + math.ceil(math.log2(l + 1))

    def eq0(self, n: int, l: int):
        """np_sgn(EQ=True): l random bits, open c, product tree over l rows."""
        self.comparisons.append({"kind": "eq", "elements": n, "l": l})
        self.open_2t.append(l * n)
        self.open_t.append(n)
        self._tree(l, n)
        self.rounds += 2 + math.ceil(math.log2(max(l, 1)))

    def to_bits(self, n: int, l: int):
        """np_to_bits(l) of a SecInt: l random bits per element, open c, then np_add_bits of the
        random bits and c's public bits (a carry tree: products with a public bit are local)."""
        self.open_2t.append(l * n)
        self.open_t.append(n)
        self.rounds += 2

        def carries(width: int, high: bool) -> None:  # one product call (one message) per step of the tree
            if width == 1:
                return
            h = width // 2
            carries(h, high)
            carries(width - h, True)
            self.reshare.extend([(width - h) * n] * (2 if high else 1))
        carries(l, False)
        self.rounds += math.ceil(math.log2(max(l, 1)))

    def _tree(self, rows: int, n: int):
        while rows > 1:
            k = rows // 2
            self.reshare.append(k * n)
            rows -= k

    def mul(self, n: int):
        self.reshare.append(n)
        self.rounds += 1

    def trunc(self, n: int, f: int):
        """np_trunc(f): f random bits per element, one opening."""
        if f <= 0:
            return
        self.truncations.append({"elements": n, "f": f})
        self.open_2t.append(f * n)
        self.open_t.append(n)
        self.rounds += 2

    @property
    def mults(self) -> int:
        extra = sum(e for kind, _, e in self.expected if kind == "scalar_reshare")
        return sum(self.reshare) + sum(self.scalar_reshare) + round(extra)


def element_bytes(field_bits: int) -> float:
    """Expected pickled size of a uniform element of a prime field just below 2**field_bits."""
    return 2 + sum(2.0 ** -j * (((field_bits - j + 1) >> 3) + 1) for j in range(1, 64))


def message_bytes(n: int, eb: float) -> float:
    """One pickled numpy object array of n field elements, with MPyC's frame."""
    shape = 2 if n < 256 else 3 if n < 65536 else 5
    body = PICKLE_HEADER + shape + n * eb + 2 * math.ceil(n / 1000)
    return FRAME + body + 9 * (body // 65536)


# -- per-op tallies (mirror of runtime/secure/secure_ops.py) --------------------------------------
class _Model:
    def __init__(self, plan: dict):
        self.plan = plan
        self.nodes = {n["id"]: n for n in plan["nodes"]}
        st = plan["secure_type"]
        self.P = st.get("recip_bits", 0)
        self.Q = st.get("frac_bits", 0)
        self.batches: dict[str, list[dict]] = {}  # threshold tests run as one call (passes/batching.py)
        for n in plan["nodes"]:
            if "batch" in n["attrs"]:
                self.batches.setdefault(n["attrs"]["batch"], []).append(n)

    def ge_bits(self, node: dict) -> int:
        lo, hi = self.raw_range(node["inputs"][0])
        k = node["attrs"]["const"] * 2 ** self.nodes[node["inputs"][0]].get("frac", 0)
        return node["attrs"].get("l") or bits(lo - k, hi - k)

    def raw_range(self, nid: str) -> tuple[int, int]:
        return raw_range(self.nodes[nid])

    def maximum(self, t: Tally, n: int, lo: float, hi: float):
        t.lt0(n, bits(lo - hi, hi - lo))
        t.mul(n)

    def reciprocal(self, t: Tally, n: int, b_hi: float):
        L = max(1, math.ceil(math.log2(b_hi + 1)))
        if L > 1:  # b's bits, then suffix products of (1 - bit) over L - 1 columns in log2 rounds
            t.to_bits(n, L)
            m, d = L - 1, 1
            while d < m:
                t.mul((m - d) * n)
                d *= 2
        p = L
        for q in reciprocal_scales(L, self.P, RECIPROCAL_NEWTON_STEPS):  # each step at its own scale
            t.mul(n)
            t.mul(n)
            t.trunc(n, 2 * p - q)
            p = q

    def tally(self, node: dict) -> Tally:
        part = COST.get(node["op"])
        if part is None:
            raise AssertionError(f"the cost model has no entry for op {node['op']!r} (compiler/plan/ops.py COST)")
        t = Tally()
        part(self, t, node)
        return t

    def fracs(self, node: dict) -> list[int]:
        return [self.nodes[i].get("frac", 0) for i in node["inputs"] if i in self.nodes]

    def round_down(self, t: Tally, node: dict, frac: int):
        """Per cell, MPyC's scalar `mod` by a public step (a la GMS10): k random bits by
        rejection sampling (`random._randbelow`), one opening, a sign test by the product of
        k+1 elements and a public zero test. Expected counts; rejections are random."""
        step = node["attrs"]["to"] * 2 ** frac
        draw = _randbelow_cost(step)
        k = (step - 1).bit_length()
        c = _elements(node)
        t.expected.append(("scalar_open_2t", c * draw["bit_calls"], c * draw["bit_elems"]))
        t.expected.append(("scalar_reshare", c * draw["mults"], c * draw["mults"]))
        t.expected.append(("scalar_open_t", c * draw["checks"], c * draw["checks"]))
        t.scalar_open_t += [1] * c      # a + r, opened
        t.scalar_open_2t += [1] * c     # signed random bit
        rows = k + 1
        while rows > 1:                 # mpc.prod of k+1 elements
            t.scalar_reshare += [rows // 2] * c
            rows -= rows // 2
        t.scalar_open_2t += [1] * c     # public zero test
        t.rounds += 2 * k + 6 + math.ceil(math.log2(k + 1))


# -- per-op tallies, registered by op name (mirror of runtime/secure/secure_ops.py) ------------------------
def _elements(node: dict) -> int:
    """Elements of a node's vector (or matrix): the cells of its own grouping, not the plan's."""
    return math.prod(node["shape"])


@register(COST, "load", "partials", "link_rows", "table")
def _local(m: _Model, t: Tally, node: dict) -> None:
    """Runs at one owner on its own rows, or on revealed values: no communication."""


@register(COST, "add", "sub", "neg", "not", "mul_const", "const", "linear", "link_slot")
def _free(m: _Model, t: Tally, node: dict) -> None:
    """Linear in the shares: every party computes it on its own shares."""


@register(COST, "link_share", "link_join", "link_distinct")
def _run_time_sized(m: _Model, t: Tally, node: dict) -> None:
    """Vector lengths are known only at run time: explain_link.link_cost states the cost in words."""


@register(COST, "share")
def _share(m: _Model, t: Tally, node: dict) -> None:
    t.inputs.append((node["attrs"]["party"], _elements(node)))
    t.rounds = 1


@register(COST, "dp_noise")
def _dp_noise(m: _Model, t: Tally, node: dict) -> None:
    """Every computing party secret-shares one noise sample per cell (runtime/secure/dp_noise.py)."""
    for p in m.plan.get("parties", []):
        t.inputs.append((p, _elements(node)))
    t.rounds = 1


@register(COST, "reveal")
def _reveal(m: _Model, t: Tally, node: dict) -> None:
    t.reveal.append((list(node["attrs"]["to"]), _elements(node)))
    t.rounds = 1


@register(COST, "combine")
def _combine(m: _Model, t: Tally, node: dict) -> None:
    lo, hi = node["bounds"]
    if node["attrs"]["how"] in ("max", "min"):
        for _ in node["inputs"][1:]:
            m.maximum(t, _elements(node), lo, hi)


@register(COST, "ge_const", "outside_range")
def _threshold(m: _Model, t: Tally, node: dict) -> None:
    a, c = node["attrs"], _elements(node)
    if "batch" in a:
        if a["batch"] == node["id"]:  # the batch's first member runs every member's test
            members = m.batches.get(node["id"], [node])
            rows = sum(1 if x["op"] == "ge_const" else 2 for x in members)
            t.lt0(c * rows, max(x["attrs"]["l"] for x in members))
    elif node["op"] == "ge_const":
        t.lt0(c, m.ge_bits(node))
    else:
        lo, hi = m.raw_range(node["inputs"][0])
        t.lt0(c, a.get("l") or bits(lo - a["low"], hi - a["low"]))
        t.lt0(c, a.get("l") or bits(a["high"] - hi, a["high"] - lo))
        t.rounds //= 2  # the two tests run side by side


@register(COST, "and")
def _and(m: _Model, t: Tally, node: dict) -> None:
    for _ in node["inputs"][1:]:
        t.mul(_elements(node))


@register(COST, "or", "mask")
def _product(m: _Model, t: Tally, node: dict) -> None:
    t.mul(_elements(node))


@register(COST, "mul")
def _mul(m: _Model, t: Tally, node: dict) -> None:
    t.mul(_elements(node))
    t.trunc(_elements(node), sum(m.fracs(node)) - node.get("frac", 0))


@register(COST, "nonzero")
def _nonzero(m: _Model, t: Tally, node: dict) -> None:
    t.eq0(_elements(node), bits(*m.raw_range(node["inputs"][0])))


@register(COST, "compare")
def _compare(m: _Model, t: Tally, node: dict) -> None:
    lo, hi = m.raw_range(node["inputs"][0])
    (t.eq0 if node["attrs"]["relation"] in ("=", "<>") else t.lt0)(_elements(node), bits(lo, hi))


@register(COST, "dominance")
def _dominance(m: _Model, t: Tally, node: dict) -> None:
    k = int(round(node["attrs"]["k"] * 100))
    t_hi = m.raw_range(node["inputs"][1])[1]
    t.lt0(_elements(node), bits(-10000 * t_hi, k * t_hi))


@register(COST, "median", "percentile")
def _rank(m: _Model, t: Tally, node: dict) -> None:
    size = m.nodes[node["inputs"][0]]["shape"][0]
    a, b = rank_weights(node)
    total = m.raw_range(node["inputs"][1])[1]
    c, l = _elements(node), node["attrs"].get("l") or bits(-b * total, a * total)
    B = rank_block(size)
    if not B:
        t.lt0(size * c, l)
        return
    nb = -(-size // B)
    t.lt0(nb * c, l)  # every block's last row
    t.mul(nb * (B - 1) * c)  # one-hot of the block x its rows
    t.lt0((B - 1) * c, l)  # the rows of that block


@register(COST, "div")
def _div(m: _Model, t: Tally, node: dict) -> None:
    c, fr = _elements(node), m.fracs(node)
    lo, hi = m.raw_range(node["inputs"][1])
    t.mul(c)  # denominator * guard
    if lo < 0:
        t.lt0(c, bits(lo, hi))
        t.mul(c)
    m.reciprocal(t, c, max(abs(lo), abs(hi), 1))
    t.mul(c)
    t.trunc(c, m.P + fr[0] - fr[1] - node.get("frac", 0))
    if lo < 0:
        t.mul(c)


@register(COST, "variance")
def _variance(m: _Model, t: Tally, node: dict) -> None:
    c = _elements(node)
    n_hi = max(m.raw_range(node["inputs"][2])[1], 2)
    t.mul(c)  # n * guard
    m.reciprocal(t, c, n_hi)
    t.mul(c)
    t.trunc(c, m.P - m.Q)
    t.mul(c)  # s * mean
    m.reciprocal(t, c, n_hi)
    t.mul(c)
    t.trunc(c, m.P)


@register(COST, "round_down")
def _round_down(m: _Model, t: Tally, node: dict) -> None:
    m.round_down(t, node, m.fracs(node)[0])


def _randbelow_cost(n: int) -> dict:
    """Expected calls of MPyC's `_randbelow(n, bits=True)` for one value (Wald's identity)."""
    b, k = n - 1, (n - 1).bit_length()
    if not n & b:
        return {"bit_calls": 1, "bit_elems": k, "mults": 0, "checks": 0}
    t_stop = (n & -n).bit_length()
    first = {"mults": 0.0, "checks": 0.0, "bit_calls": 0.0, "bit_elems": 0.0}
    later = dict(first)
    for x in range(2 ** k):
        for acc, h_is_secret in ((first, False), (later, True)):
            h, secret, i = 1, h_is_secret, k
            while i >= t_stop:
                i -= 1
                bit = (x >> i) & 1
                if (b >> i) & 1:
                    acc["mults"] += secret
                    h, secret = h * bit, True
                else:
                    acc["mults"] += 1
                    acc["checks"] += 1
                    if h * bit:
                        acc["bit_calls"] += 1
                        acc["bit_elems"] += k - i
                        break
    attempts = 2 ** k / n
    per = {key: v / 2 ** k for key, v in later.items()}
    out = {key: attempts * per[key] for key in per}
    out["mults"] -= per["mults"] - first["mults"] / 2 ** k  # the first attempt's h starts public
    out["bit_calls"] += 1
    out["bit_elems"] += k
    return out


# -- per party bytes ----------------------------------------------------------------------
def _successors(pid: int, m: int, threshold: int) -> list[int]:
    return [q for q in range(m) if 0 < (q - pid) % m <= threshold]


def party_bytes(t: Tally, parties: list[str], field_bits: int) -> tuple[dict[str, float], dict[str, float]]:
    """Expected bytes each party sends for one node's calls, and the reshare part of it."""
    m = len(parties)
    th = (m - 1) // 2
    eb = element_bytes(field_bits)
    width = (field_bits + 7) // 8
    out, resh = {}, {}
    for pid, p in enumerate(parties):
        b = sum(min(th, m - 1) * message_bytes(n, eb) for n in t.open_t)
        b += sum(min(2 * th, m - 1) * message_bytes(n, eb) for n in t.open_2t)
        b += sum(min(th, m - 1) * (FRAME + width * n) for n in t.scalar_open_t)
        b += sum(min(2 * th, m - 1) * (FRAME + width * n) for n in t.scalar_open_2t)
        share = (2 * th + 1) / m * (m - 1) if th else 0
        r = sum(share * message_bytes(n, eb) for n in t.reshare)
        r += sum(share * (FRAME + width * n) for n in t.scalar_reshare)
        for kind, calls, elems in t.expected:
            msgs = {"scalar_open_t": min(th, m - 1), "scalar_open_2t": min(2 * th, m - 1),
                    "scalar_reshare": share}[kind]
            x = msgs * (FRAME * calls + width * elems)
            if kind == "scalar_reshare":
                r += x
            else:
                b += x
        b += r
        for sender, n in t.inputs:
            if sender == p:
                b += (m - 1) * message_bytes(n, eb)
        for to, n in t.reveal:
            idx = [parties.index(x) for x in to if x in parties]
            b += sum(1 for q in _successors(pid, m, th) if q in idx) * message_bytes(n, eb)
        out[p], resh[p] = b, r
    return out, resh


def fixed_bytes(plan: dict) -> dict[str, int]:
    """Bytes outside the plan's nodes: the status exchange before sharing and the shutdown."""
    m = len(plan["parties"])
    out = {}
    for p in plan["parties"]:
        status = pickle.dumps({"party": p, "plan_hash": plan["hash"], "ok": True, "problem": None})
        out[p] = (m - 1) * (FRAME + len(status)) + (m - 1) * (FRAME + SHUTDOWN_PAYLOAD)
    return out


# -- the estimate -------------------------------------------------------------------------
def estimate(plan: dict) -> dict:
    """Per node and total cost of a plan; see the module docstring for the model."""
    model = _Model(plan)
    parties = list(plan["parties"])
    st = plan["secure_type"]
    field_bits = st.get("l", 64) + FIELD_EXTRA_BITS
    nodes, depth = {}, {}
    totals = defaultdict(float)
    per_party = defaultdict(float, {p: float(b) for p, b in fixed_bytes(plan).items()})
    reshare_part = defaultdict(float)
    for n in plan["nodes"]:
        t = model.tally(n)
        by_party, resh = party_bytes(t, parties, field_bits)
        start = max((depth[i] for i in n["inputs"] if i in depth), default=1)  # 1: status exchange
        depth[n["id"]] = start + t.rounds
        nodes[n["id"]] = {
            "op": n["op"],
            "placement": n["placement"],
            "mults": t.mults,
            "comparisons": t.comparisons,
            "comparison_elements": sum(x["elements"] for x in t.comparisons),
            "comparison_bits": sum(x["elements"] * x["l"] for x in t.comparisons),
            "truncations": sum(x["elements"] for x in t.truncations),
            "inputs": sum(x[1] for x in t.inputs),
            "opened": round(sum(t.open_t) + sum(t.open_2t) + sum(t.scalar_open_t) + sum(t.scalar_open_2t)
                            + sum(e for kind, _, e in t.expected if kind != "scalar_reshare")),
            "revealed": sum(x[1] for x in t.reveal),
            "rounds": t.rounds,
            "bytes": {p: round(b) for p, b in by_party.items()},
        }
        if n["attrs"].get("batch") not in (None, n["id"]):
            nodes[n["id"]]["batched_with"] = n["attrs"]["batch"]
        for k in ("mults", "comparison_elements", "comparison_bits", "truncations", "inputs", "revealed"):
            totals[k] += nodes[n["id"]][k]
        for p in parties:
            per_party[p] += by_party[p]
            reshare_part[p] += resh[p]
    m = len(parties)
    th = (m - 1) // 2
    frac = (2 * th + 1) / m if th else 1
    spread = {p: [round(per_party[p] - reshare_part[p]), round(per_party[p] - reshare_part[p] + reshare_part[p] / frac)]
              for p in parties}
    return {
        "parties": m,
        "threshold": th,
        "field_bits": field_bits,
        "nodes": nodes,
        "totals": {
            "mults": int(totals["mults"]),
            "comparisons": int(totals["comparison_elements"]),
            "comparison_bits": int(totals["comparison_bits"]),
            "truncations": int(totals["truncations"]),
            "inputs": int(totals["inputs"]),
            "revealed": int(totals["revealed"]),
            "rounds": max(depth.values(), default=0) + 1,  # + shutdown
            "bytes_per_party": {p: round(per_party[p]) for p in parties},
            "bytes_spread": spread,
            "bytes_total": round(sum(per_party.values())),
        },
    }


def cost_line(c: dict) -> str:
    """One line for a node's cost in `iq explain`."""
    parts = []
    if c["inputs"]:
        parts.append(f"shares {c['inputs']}")
    if c["comparisons"]:
        parts.append("cmp " + ", ".join(f"{x['elements']}x{x['kind']}(l={x['l']})" for x in c["comparisons"]))
    if c["mults"]:
        parts.append(f"mult {c['mults']}")
    if c["truncations"]:
        parts.append(f"trunc {c['truncations']}")
    if c["revealed"]:
        parts.append(f"reveals {c['revealed']}")
    if c["rounds"]:
        parts.append(f"{c['rounds']} round{'s' if c['rounds'] > 1 else ''}")
    senders = {p: b for p, b in c["bytes"].items() if b}
    if len(senders) == 1:
        (p, b), = senders.items()
        parts.append(f"~{_kb(b)} sent by {p}")
    elif senders:
        parts.append(f"~{_kb(max(senders.values()))} sent per party")
    if c.get("batched_with"):
        return f"computed in one call with {c['batched_with']} (cost counted there)"
    return "; ".join(parts) if parts else "no communication"


def _kb(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB" if n >= 1e3 else f"{n:.0f} B"
