"""Plaintext, vectorised evaluation of plan expressions over one party's own rows.

Used by a data owner for its local steps (before anything is shared) and by the test oracle.
SQL three-valued logic: a null operand gives null; WHERE keeps rows whose predicate is true.
"""
from __future__ import annotations

import numpy as np

from insightql.stdlib.functions import FUNCTIONS, Vec
from insightql.stdlib.types import IQType

Table = dict[str, Vec]


def ir_type(d: dict | None) -> IQType:
    if d is None:
        return IQType("null", nullable=True)
    return IQType(d["kind"], d.get("lo"), d.get("hi"), d.get("scale", 0), tuple(d.get("domain", ())),
                  d.get("nullable", False))


def _num(v: Vec) -> np.ndarray:
    return v.values.astype(float) if v.values.dtype.kind == "f" else v.values


def evaluate(ir: dict, table: Table, n: int) -> Vec:
    if "col" in ir:
        return table[ir["col"]]
    if "lit" in ir:
        value = ir["lit"]
        if value is None:
            return Vec(np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool))
        if isinstance(value, bool):
            return Vec(np.full(n, value, dtype=bool), np.zeros(n, dtype=bool))
        if isinstance(value, float):
            return Vec(np.full(n, value, dtype=float), np.zeros(n, dtype=bool))
        if isinstance(value, int):
            return Vec(np.full(n, value, dtype=np.int64), np.zeros(n, dtype=bool))
        return Vec(np.full(n, value, dtype=object), np.zeros(n, dtype=bool))
    if "fn" in ir:
        spec = FUNCTIONS[ir["fn"]]
        args = [evaluate(a, table, n) if a is not None else None for a in ir["args"]]
        types = [ir_type(t) if t is not None else IQType("list") for t in ir["arg_types"]]
        return spec.kernel(args, types, ir_type(ir["type"]), ir["consts"])
    op = ir["op"]
    if op == "case":
        return _case(ir, table, n)
    args = [evaluate(a, table, n) for a in ir["args"]]
    if op == "not":
        return Vec(~args[0].values.astype(bool), args[0].null.copy())
    if op == "neg":
        return Vec(-args[0].values, args[0].null.copy())
    if op == "is_null":
        return Vec(args[0].null.copy(), np.zeros(n, dtype=bool))
    if op == "and":
        a, b = args
        av, bv = a.values.astype(bool), b.values.astype(bool)
        false = (~av & ~a.null) | (~bv & ~b.null)
        null = (a.null | b.null) & ~false
        return Vec(av & bv & ~null & ~false, null)
    if op == "or":
        a, b = args
        av, bv = a.values.astype(bool), b.values.astype(bool)
        true = (av & ~a.null) | (bv & ~b.null)
        null = (a.null | b.null) & ~true
        return Vec(true, null)
    if op == "in":
        x = args[0]
        hit = np.zeros(n, dtype=bool)
        for item in args[1:]:
            hit |= (_num(x) == _num(item)) & ~item.null
        return Vec(hit, x.null.copy())
    a, b = args
    null = a.null | b.null
    x, y = _num(a), _num(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        if op in ("=", "<>", "<", "<=", ">", ">="):
            res = {"=": np.equal, "<>": np.not_equal, "<": np.less, "<=": np.less_equal,
                   ">": np.greater, ">=": np.greater_equal}[op](x, y)
            return Vec(res, null)
        if op == "+":
            return Vec(x + y, null)
        if op == "-":
            return Vec(x - y, null)
        if op == "*":
            return Vec(x * y, null)
        if op == "/":
            zero = y == 0
            return Vec(np.where(zero, 0.0, x / np.where(zero, 1, y)), null | zero)
        if op == "%":
            zero = y == 0
            safe = np.where(zero, 1, y)
            res = np.fmod(x, safe)
            return Vec(res.astype(np.int64) if ir_type(ir["type"]).kind == "int" else res, null | zero)
    raise AssertionError(f"unknown op {op}")


def _case(ir: dict, table: Table, n: int) -> Vec:
    rt = ir_type(ir["type"])
    dtype = float if rt.kind == "decimal" else (bool if rt.kind == "bool" else np.int64)
    if ir["else"] is not None:
        e = evaluate(ir["else"], table, n)
        out, null = e.values.astype(dtype), e.null.copy()
    else:
        out, null = np.zeros(n, dtype=dtype), np.ones(n, dtype=bool)
    decided = np.zeros(n, dtype=bool)
    for cond, val in ir["whens"]:
        c = evaluate(cond, table, n)
        take = c.values.astype(bool) & ~c.null & ~decided
        v = evaluate(val, table, n)
        out = np.where(take, v.values.astype(dtype), out)
        null = np.where(take, v.null, null)
        decided |= take
    return Vec(out, null)


def predicate_mask(ir: dict | None, table: Table, n: int) -> np.ndarray:
    """Rows for which a WHERE predicate is true (null counts as false)."""
    if ir is None:
        return np.ones(n, dtype=bool)
    v = evaluate(ir, table, n)
    return v.values.astype(bool) & ~v.null
