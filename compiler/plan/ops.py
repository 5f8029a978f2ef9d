"""Every plan operation, declared once: what it is, where it runs, its attributes, its output's
fractional bits and, for a sign test, the range of the value it compares.

The parts of an op that belong to a stage are registered by name, next to the stage's code:
`PLAIN` (its meaning on plaintext, compiler/plaintext/oracle.py), `COST` (rounds and bytes,
compiler/review/cost.py), `DESCRIBE` (its line in `iq explain`, compiler/review/explain.py), and its secure
implementation (runtime/secure/secure_ops.py `SECURE`; the compiler never imports the runtime).
`register` refuses a name that is not declared here, `CircuitBuilder.add` refuses to build one,
and tests/test_ops_registry.py fails when a declared op lacks a part. To add an op:
declare it below, then write its four parts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

FRAC_BITS = 24  # fractional bits of averages, variances and other quotients
RECIPROCAL_NEWTON_STEPS = 5  # a secret reciprocal's Newton iterations (runtime/secure/secure_ops.py, compiler/review/cost.py)
RECIPROCAL_GUARD_BITS = 6  # bits a Newton step keeps beyond those it gets right (reciprocal_scales)


# -- JSON Schema atoms of the attributes (compiler/plan/plan_schema.py builds the node schema from them) --
def _ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
POS = {"type": "integer", "minimum": 1}
NAT = {"type": "integer", "minimum": 0}
BOOL = {"type": "boolean"}
ID = {"type": "string", "pattern": "^n[0-9]{3,}$"}
L = {"type": "integer", "minimum": 1, "description": "bit length of the compared value (passes/bitwidth.py)"}
RULE = {"type": "string", "pattern": "^[a-z_]+\\.[a-z_]+$",
        "description": "the release rule this node tests (compiler/check/rules.py, spec/disclosure.md)"}
WHO = {"type": "array", "items": STR, "description": "the organisations whose rows an observer holds and removes"}
WHAT = {"anyOf": [STR, {"type": "array", "items": STR}], "description": "the counted column(s) of the rule"}
RULE_ATTRS = {"rule": RULE, "who": WHO, "what": WHAT, "dataset": STR, "strict": {"const": True},
              "count": {"enum": ["linked", "join_keys"], "description": "how cell.persons counts"}}
SIDE = {"enum": [0, 1], "description": "0: the unique side U of a join (sorts first within a key), 1: the other side M"}
SIZE_RULE = {"enum": ["pow2"], "description": "public vector length: the row count rounded up to a power of two, "
                                             "at least min_size (linkage.sizes)"}
ALGORITHM = {"enum": ["oblivious", "fast"],
             "description": "oblivious: shuffle + radix sort, opens only uniformly random permutations (leakage "
                            "item sort_comparisons); fast: shuffle + keyed PRF tags opened (leakage "
                            "item match_pattern), only when every linked dataset's policy sets linkage = \"fast\""}
FRACTION = {"type": "string", "pattern": "^[0-9]+(/[0-9]+)?$", "description": "an exact rational, p/q"}
GUARD = {"guard": {"anyOf": [ID, {"type": "null"}]}}


# -- fractional bits of the output, from the inputs' ----------------------------------------------
def _zero(fr: list[int]) -> int:
    return 0


def _first(fr: list[int]) -> int:
    return fr[0]


def _largest(fr: list[int]) -> int:
    return max(fr)


def _product(fr: list[int]) -> int:
    return min(sum(fr), FRAC_BITS)


def _quotient(fr: list[int]) -> int:
    return FRAC_BITS


# -- the range a sign test compares, from the plan's bounds (raw: scaled by 2**frac) ---------------
def sign_bits(lo: float, hi: float) -> int:
    """`l` for a secure sign or zero test of an integer in [lo, hi] (MPyC's cost grows with it)."""
    return math.ceil(math.log2(max(abs(lo), abs(hi), 1) + 1)) + 2


def reciprocal_scales(L: int, P: int, steps: int = RECIPROCAL_NEWTON_STEPS) -> list[int]:
    """The scale (bits) at which each Newton step of a secret reciprocal of a divisor of L bits holds
    its result x ~ 2**scale / b (runtime/secure/secure_ops.py; its cost in compiler/review/cost.py).
    The start is 2**(L - e), off by at most a factor 2, and step k gets about 2**k bits right, so
    it keeps L + 2**k + RECIPROCAL_GUARD_BITS bits and the last step the plan's P: the truncation
    after step k drops 2 * (previous scale) - scale bits, one random bit each, 126 instead of
    5 * P = 270 for the demo's divisors (L = 21, P = 54). Precision: tests/test_division.py."""
    return [min(P, L + 2 ** k + RECIPROCAL_GUARD_BITS) for k in range(1, steps)] + ([P] if steps else [])


def raw_range(node: dict) -> tuple[int, int]:
    """A node's range as the secret integers hold it: bounds scaled by 2**frac."""
    lo, hi = node["bounds"]
    s = 2 ** node.get("frac", 0)
    return math.floor(lo * s), math.ceil(hi * s)


def _same(node: dict, inputs: list[dict]) -> tuple[int, int]:
    return raw_range(inputs[0])


def _minus_const(node: dict, inputs: list[dict]) -> tuple[int, int]:
    lo, hi = raw_range(inputs[0])
    c = node["attrs"]["const"] * 2 ** inputs[0].get("frac", 0)
    return lo - c, hi - c


def _outside(node: dict, inputs: list[dict]) -> tuple[int, int]:
    lo, hi = raw_range(inputs[0])
    a = node["attrs"]
    return min(lo - a["low"], a["high"] - hi), max(hi - a["low"], a["high"] - lo)


def _dominance(node: dict, inputs: list[dict]) -> tuple[int, int]:
    t_hi = raw_range(inputs[1])[1]
    return -10000 * t_hi, 10000 * t_hi


def rank_weights(node: dict) -> tuple[int, int]:
    """(a, b) of a rank op: the answer is the first histogram row whose running count c has
    a*c >= b*n (n values in all). MEDIAN: 2c >= n; PERCENTILE p: 100c >= p*n."""
    return (2, 1) if node["op"] == "median" else (100, node["attrs"]["percent"])


def rank_block(size: int) -> int:
    """Block length of a rank op's two-level search over a histogram of `size` rows (0: one flat
    test of every row). The running counts are tested at each block's last row, then the rows of
    the one block where the answer lies: ceil(size / B) + B - 1 elements per cell instead of size."""
    b = math.isqrt(size - 1) + 1 if size > 1 else 1
    return b if size >= 9 else 0


def _rank(node: dict, inputs: list[dict]) -> tuple[int, int]:
    a, b = rank_weights(node)
    total = raw_range(inputs[1])[1]
    return -b * total, a * total


@dataclass(frozen=True)
class OpSpec:
    name: str
    placement: str  # "local" | "input" | "secure" | "reveal" | "public"
    doc: str
    attrs: dict
    required: list[str] | None = None  # None: every attribute
    frac: Callable[[list[int]], int] = _zero
    compared: Callable[[dict, list[dict]], tuple[int, int]] | None = None  # a sign test: what it compares


OPS: dict[str, OpSpec] = {o.name: o for o in [
    OpSpec("load", "local", "data owner reads and validates its dataset; only these columns leave the file reader",
           {"dataset": STR, "columns": {"type": "object", "additionalProperties": _ref("type")}}),
    OpSpec("partials", "local", "owner filters its rows, finds each row's cell and pre-aggregates per slot and "
           "cell; earlier: the cells of an earlier release (differencing guard)",
           {"dataset": STR, "where": _ref("expr_or_null"), "cells": POS, "earlier": BOOL,
            "keys": {"type": "array", "items": _ref("group_key")},
            "slots": {"type": "array", "items": _ref("slot"), "minItems": 1},
            "bound": {"type": "object", "additionalProperties": False, "required": ["column", "rows"],
                      "properties": {"column": STR, "rows": POS},
                      "description": "differential privacy: keep at most `rows` rows per value of the person "
                                     "key `column` after WHERE (spec/privacy.md 1)"}},
           ["cells", "dataset", "keys", "slots", "where"]),
    OpSpec("share", "input", "owner secret-shares its partials matrix (fixed shape: slot rows x cells)",
           {"party": STR}),
    OpSpec("combine", "secure", "per slot, combine the parties' partial aggregates",
           {"slot": STR, "how": {"enum": ["sum", "total", "max", "min"]}}, ["how", "slot"]),
    OpSpec("ge_const", "secure", "1 where the input is at least const; batch: first member of a group of tests "
           "run as one call", {"const": NUM, **RULE_ATTRS, "l": L, "batch": ID}, ["const", "rule"],
           compared=_minus_const),
    OpSpec("outside_range", "secure", "1 where the input is below low or above high",
           {"low": NUM, "high": NUM, **RULE_ATTRS, "l": L, "batch": ID}, ["high", "low", "rule"], compared=_outside),
    OpSpec("compare", "secure", "1 where (input relation 0) holds",
           {"relation": {"enum": ["=", "<>", "<", "<=", ">", ">="]}, "l": L}, ["relation"], compared=_same),
    OpSpec("nonzero", "secure", "1 where the input is not 0", {"l": L, **RULE_ATTRS}, [], compared=_same),
    OpSpec("and", "secure", "product of 0/1 flags; with a rule: a flag that stands for that rule (const: its k)",
           {**RULE_ATTRS, "const": NUM}, []),
    OpSpec("or", "secure", "a + b - ab of two flags", {}),
    OpSpec("not", "secure", "1 - flag", {}),
    OpSpec("add", "secure", "sum (fractional bits aligned)", {}, frac=_largest),
    OpSpec("sub", "secure", "difference (fractional bits aligned)", {}, frac=_largest),
    OpSpec("neg", "secure", "negation", {}, frac=_first),
    OpSpec("mul", "secure", "product of two secret values, truncated to the node's frac", {}, frac=_product),
    OpSpec("mul_const", "secure", "product with a public integer", {"const": NUM}, frac=_first),
    OpSpec("const", "secure", "a public constant in every cell", {"value": NUM}),
    OpSpec("div", "secure", "quotient with frac bits; guard: the flag that makes the divisor safe", GUARD, [],
           frac=_quotient),
    OpSpec("variance", "secure", "sample variance from sum, sum of squares and count", GUARD, [], frac=_quotient),
    OpSpec("median", "secure", "lower median from a secret histogram (rows lo_value, lo_value+1, ...)",
           {"lo_value": INT, "l": L}, ["lo_value"], compared=_rank),
    OpSpec("percentile", "secure", "the smallest value with at least percent% of the histogram's values at or "
           "below it (rows lo_value, lo_value+1, ...)",
           {"lo_value": INT, "percent": {"type": "integer", "minimum": 1, "maximum": 99}, "l": L},
           ["lo_value", "percent"], compared=_rank),
    OpSpec("dominance", "secure", "1 where the n largest contributions are at most k% of the total",
           {"k": NUM, "n": POS, **RULE_ATTRS, "l": L}, ["k", "n", "rule"], compared=_dominance),
    OpSpec("mask", "secure", "value times its release flag: 0 in suppressed cells", {}, frac=_first),
    OpSpec("linear", "secure", "public 0/1 linear map, local: out[j] = sum of x[i] over the pairs (i, j); sums "
           "cells into parts, copies parts to cells, or keeps some entries",
           {"pairs": {"type": "array", "items": {"type": "array", "items": NAT, "minItems": 2, "maxItems": 2}},
            "size": POS}, ["pairs", "size"]),
    OpSpec("round_down", "secure", "round released counts down to a multiple of `to`", {"to": POS}, frac=_first),
    OpSpec("dp_noise", "secure", "differential privacy: adds to each cell the sum of one exact discrete Laplace "
           "sample of `scale` per computing party, each secret-shared by the party that drew it (spec/privacy.md)",
           {"mechanism": {"enum": ["discrete_laplace"]}, "epsilon": FRACTION, "delta": FRACTION,
            "sensitivity": POS, "scale": FRACTION, "what": STR}, frac=_first),
    OpSpec("reveal", "reveal", "the only exit from MPC: opens its inputs (one row each) to the receivers",
           {"to": {"type": "array", "items": STR, "minItems": 1, "uniqueItems": True}}),
    # record linkage (compiler/plan/linkage.py, spec/linkage.md): per-row vectors, length known at run time
    OpSpec("link_rows", "local", "owner filters its rows, finds each row's cell over its own GROUP BY keys and "
           "packs one integer per row (key, side, payload fields of `layout`), padded to a length set by size_rule",
           {"dataset": STR, "side": SIDE, "layout": _ref("link_layout"), "where": _ref("expr_or_null"),
            "keys": {"type": "array", "items": _ref("group_key")}, "key_column": STR,
            "measures": {"type": "array", "items": _ref("link_measure")}, "unique": BOOL,
            "keep_unkeyed": BOOL, "size_rule": SIZE_RULE, "min_size": POS}),
    OpSpec("link_share", "input", "owner secret-shares its packed rows (one value per row: the length is learnt "
           "by every party)", {"party": STR}),
    OpSpec("link_join", "secure", "JOIN on a unique key: per-cell sums of `weights` over the joined rows (one row "
           "per weight, columns in plan cell order via cell_perm)",
           {"algorithm": ALGORITHM, "kind": {"enum": ["inner", "left"]}, "layout": _ref("link_layout"),
            "cells_u": POS, "cells_m": POS, "null_cell_u": NAT,
            "weights": {"type": "array", "items": _ref("link_weight"), "minItems": 1},
            "cell_perm": {"type": "array", "items": NAT, "minItems": 1}}),
    OpSpec("link_distinct", "secure", "COUNT(DISTINCT column) across every owner's rows, per cell",
           {"algorithm": ALGORITHM, "layout": _ref("link_layout"), "cells": POS, "column": STR}),
    OpSpec("link_slot", "secure", "one row of a link_join result: the slot's per-cell sums, as if combined",
           {"slot": {"type": "string", "pattern": "^s[0-9]+$"}, "row": NAT}),
    OpSpec("table", "public", "public post-processing: assemble the result table, mark suppressed cells, "
           "ORDER BY / LIMIT",
           {"outputs": {"type": "array", "items": _ref("output")},
            "keep": {"anyOf": [ID, {"type": "null"}]}, "released": ID,
            "keys": {"type": "array", "items": _ref("result_key")},
            "order_by": {"type": "array", "items": {"type": "array"}},
            "limit": {"anyOf": [NAT, {"type": "null"}]}},
           ["keep", "keys", "limit", "order_by", "outputs", "released"]),
]}

SIGN_TESTS = tuple(n for n, o in OPS.items() if o.compared is not None)


def operands(node: dict) -> list[str]:
    """The node ids an op reads: its inputs, then its guard (the flag that makes a divisor safe)."""
    ins = list(node["inputs"])
    if "guard" in OPS[node["op"]].attrs and node["attrs"].get("guard"):
        ins.append(node["attrs"]["guard"])
    return ins

# -- the stages' parts, registered by name -----------------------------------------------------------
PLAIN: dict[str, Callable] = {}  # secure ops: plaintext meaning (compiler/plaintext/oracle.py)
COST: dict[str, Callable] = {}  # every op: communication tally (compiler/review/cost.py)
DESCRIBE: dict[str, Callable] = {}  # every op: its line in `iq explain` (compiler/review/explain.py)


def register(table: dict, *names: str):
    """Decorator: the part of the named ops for one stage; a name that is not declared is an error."""
    def deco(fn):
        for n in names:
            if n not in OPS:
                raise KeyError(f"{n!r} is not a declared plan op (compiler/plan/ops.py)")
            table[n] = fn
        return fn
    return deco
