"""Record linkage, the data owner's local step: its rows packed into one integer each.

A data owner turns its rows into ONE integer per row (spec/linkage.md, "row packing"):

    v = key' * 2**(s + W) + side * 2**W + payload          (s = 1 in a join, 0 for distinct counts)

key' is the pseudonymous key (< 2**K), or 2**K for padding rows and, in a LEFT JOIN, for left rows
without a key. The payload holds bit fields, highest first: the row's cell (its group over the
owner's own GROUP BY keys), `present` (a real row, not padding), `keyed` (the key is not NULL), then
per measure a not-NULL bit and the clamped, scaled value minus its lower bound. Rows that fail the
WHERE, or have no key where a key is needed, are dropped locally; for COUNT(DISTINCT) the owner also
drops duplicate (cell, key) pairs. The vector is then padded with dummy rows to a length that
depends only on the dataset's row count (exact when the policy allows row counts, else the next
power of two), so it reveals nothing about the filter or the keys.

Shared by the runtime (at each owner) and the test oracle (compiler/plaintext/oracle.py gives the plaintext
meaning of the secure ops `link_distinct` and `link_join`; runtime/secure/linkage_ops.py the secure one).
"""
from __future__ import annotations

import numpy as np

from insightql.stdlib.functions import Vec

from insightql.compiler.plaintext.local_eval import Table, evaluate, predicate_mask
from insightql.compiler.plaintext.partials import _scaled, cell_index


class LinkageDataError(ValueError):
    """The owner's data contradicts the catalog (a key declared unique is repeated)."""


# -- layout -----------------------------------------------------------------------------------
def make_layout(mode: str, key_bits: int, sides: list[list[tuple[str, int]]]) -> dict:
    """Bit layout of packed rows: per side, its fields (name, bits) from high to low."""
    width = max(sum(b for _, b in f) for f in sides)
    out = []
    for fields in sides:
        at, placed = width, []
        for name, bits in fields:
            at -= bits
            placed.append({"name": name, "bits": bits, "offset": at})
        out.append(placed)
    side_bit = 1 if mode == "join" else 0
    return {"mode": mode, "key_bits": key_bits, "side_bit": side_bit, "payload_bits": width, "sides": out,
            "bits": key_bits + 1 + side_bit + width}


def field_of(layout: dict, side: int, name: str) -> dict:
    return next(f for f in layout["sides"][side] if f["name"] == name)


def padded_size(n: int, min_size: int = 1) -> int:
    """Public vector length for a dataset of n rows: the next power of two >= max(n, min_size).
    With min_size >= 2k no nonempty group of 1..k-1 rows follows from the lengths and the released
    cells (spec/disclosure.md, linkage.sizes)."""
    n = max(n, min_size, 1)
    return 1 << (n - 1).bit_length()


def dummy(layout: dict, side: int) -> int:
    return (2 ** layout["key_bits"] << (layout["side_bit"] + layout["payload_bits"])) \
        + (side << layout["payload_bits"] if layout["side_bit"] else 0)


# -- the owner's step -------------------------------------------------------------------------
def link_rows(step: dict, table: Table, n: int) -> list[int]:
    """Evaluate a `link_rows` plan node at its owner: the padded vector of packed rows."""
    lay, side = step["layout"], step["side"]
    K, W = lay["key_bits"], lay["payload_bits"]
    keep = predicate_mask(step.get("where"), table, n)
    key = table[step["key_column"]]
    keyed = ~key.null
    if step.get("unique"):
        k = key.values[keyed]
        if np.unique(k).size < k.size:
            raise LinkageDataError(f"dataset {step['dataset']} declares `{step['key_column']}` unique, but "
                                   f"{k.size - np.unique(k).size} key value(s) occur more than once")
    if not step.get("keep_unkeyed"):
        keep &= keyed
    cells = cell_index(step["keys"], table, n)
    idx = np.flatnonzero(keep)
    values = {"cell": cells[idx], "present": np.ones(idx.size, dtype=np.int64),
              "keyed": keyed[idx].astype(np.int64)}
    for m in step.get("measures", []):
        sub = {c: Vec(v.values[idx], v.null[idx]) for c, v in table.items()}
        x, ok = _scaled(evaluate(m["arg"], sub, idx.size), m)
        values[m["name"] + ".nn"] = ok.astype(np.int64)
        values[m["name"] + ".val"] = np.where(ok, x - m["lo"], 0)
    keys = [int(x) for x in key.values[idx]]
    keys = [k if kd else 2 ** K for k, kd in zip(keys, values["keyed"])]
    if lay["mode"] == "distinct":  # one row per (cell, key): duplicates within the owner go now
        pairs = sorted(set(zip(keys, (int(c) for c in values["cell"]))))
        keys = [k for k, _ in pairs]
        values = {"cell": np.array([c for _, c in pairs], dtype=np.int64),
                  "present": np.ones(len(pairs), dtype=np.int64)}
    out = []
    head = side << W if lay["side_bit"] else 0
    for i, k in enumerate(keys):
        v = (k << (lay["side_bit"] + W)) + head
        for f in lay["sides"][side]:
            v += int(values[f["name"]][i]) << f["offset"]
        out.append(v)
    size = padded_size(n, step.get("min_size", 1))
    assert len(out) <= size
    return out + [dummy(lay, side)] * (size - len(out))


# -- decoding, and the plaintext meaning of the secure ops -------------------------------------
def decode(layout: dict, v: int) -> tuple[int, int, dict]:
    """(key', side, {field: value}) of one packed row; the side's own fields are read."""
    W, sb = layout["payload_bits"], layout["side_bit"]
    key = v >> (W + sb)
    side = (v >> W) & 1 if sb else 0
    payload = v & ((1 << W) - 1)
    fields = {f["name"]: (payload >> f["offset"]) & ((1 << f["bits"]) - 1) for f in layout["sides"][side]}
    return key, side, fields
