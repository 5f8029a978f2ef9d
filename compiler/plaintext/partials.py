"""A data owner's local step: filter its rows, find each row's cell, pre-aggregate per cell.

The result is a fixed-size matrix (slots x cells) over the public group domain, so what a party
secret-shares has the same shape whatever its data: it reveals neither its row count nor which
cells it has rows in. Shared by the runtime (at each party) and the plaintext oracle.
"""
from __future__ import annotations

import numpy as np

from insightql.stdlib.functions import Vec

from insightql.compiler.plaintext.local_eval import Table, evaluate, predicate_mask


def cell_index(keys: list[dict], table: Table, n: int) -> np.ndarray:
    """Mixed-radix cell number of every row; a null key value takes the extra last slot."""
    cell = np.zeros(n, dtype=np.int64)
    for key in keys:
        v = evaluate(key["expr"], table, n)
        kind, size = key["type"]["kind"], key["size"]
        if kind == "bool":
            pos = v.values.astype(np.int64)
        elif kind in ("int", "date"):
            pos = v.values.astype(np.int64) - int(key["type"]["lo"])
        else:
            pos = v.values.astype(np.int64)
        pos = np.where(v.null, size - 1, pos)
        cell = cell * size + pos
    return cell


def _scaled(v: Vec, slot: dict) -> tuple[np.ndarray, np.ndarray]:
    """Clamp to the owner's declared contribution bounds, scale decimals to integers."""
    vals = v.values.astype(float)
    lo, hi = slot.get("clamp", (None, None))
    if lo is not None:
        vals = np.clip(vals, lo, hi)
    scaled = np.rint(vals * 10 ** slot.get("scale", 0)).astype(np.int64)
    return scaled, ~v.null


def _group_reduce(cells: np.ndarray, values: np.ndarray, ncells: int, how: str, fill: int) -> np.ndarray:
    out = np.full(ncells, fill, dtype=np.int64)
    if how == "max":
        np.maximum.at(out, cells, values)
    else:
        np.minimum.at(out, cells, values)
    return out


def _distinct_per_cell(cells: np.ndarray, keys: np.ndarray, ncells: int) -> np.ndarray:
    """Number of distinct keys per cell. Each (cell, key) pair becomes one int64 code
    cell * span + (key - min), sorted 1-D (much faster than np.unique(axis=1) on pairs); keys
    whose range does not fit beside the cell number are first renumbered densely."""
    if cells.size == 0:
        return np.zeros(ncells, dtype=np.int64)
    keys = keys.astype(np.int64, copy=False)
    lo = int(keys.min())
    span = int(keys.max()) - lo + 1
    if span * ncells < 2 ** 63:
        rel = keys - np.int64(lo)
    else:
        _, rel = np.unique(keys, return_inverse=True)
        rel, span = rel.ravel().astype(np.int64), int(rel.max()) + 1
    code = cells.astype(np.int64) * np.int64(span) + rel
    code.sort()
    first = np.empty(code.size, dtype=bool)
    first[0] = True
    np.not_equal(code[1:], code[:-1], out=first[1:])
    return np.bincount(code[first] // np.int64(span), minlength=ncells).astype(np.int64)


def _repeaters_per_cell(cells: np.ndarray, keys: np.ndarray, ncells: int) -> np.ndarray:
    """Number of keys with at least two rows, per cell."""
    if cells.size == 0:
        return np.zeros(ncells, dtype=np.int64)
    pairs, counts = np.unique(np.stack([cells.astype(np.int64), keys.astype(np.int64)]), axis=1, return_counts=True)
    return np.bincount(pairs[0][counts >= 2], minlength=ncells).astype(np.int64)


def _top_n(cells: np.ndarray, values: np.ndarray, ncells: int, n: int) -> np.ndarray:
    """The n largest contributions per cell (zeros where a cell has fewer), shape (n, cells)."""
    out = np.zeros((n, ncells), dtype=np.int64)
    if cells.size == 0:
        return out
    order = np.lexsort((-values, cells))
    c, v = cells[order], values[order]
    first = np.r_[0, np.flatnonzero(np.diff(c)) + 1]
    rank = np.arange(c.size) - np.repeat(first, np.diff(np.r_[first, c.size]))
    keep = rank < n
    out[rank[keep], c[keep]] = v[keep]
    return out


def first_rows_per_person(mask: np.ndarray, key: Vec, rows: int) -> np.ndarray:
    """`mask` keeping, of the rows it selects, each person's first `rows` (in the data's order);
    a row without a key is nobody else's and stays."""
    idx = np.flatnonzero(mask & ~key.null)
    keys = key.values[idx]
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    first = np.r_[True, sk[1:] != sk[:-1]] if len(sk) else np.zeros(0, dtype=bool)
    start = np.maximum.accumulate(np.where(first, np.arange(len(sk)), 0)) if len(sk) else sk
    drop = idx[order][np.arange(len(sk)) - start >= rows]
    out = mask.copy()
    out[drop] = False
    return out


def compute_partials(step: dict, table: Table, n: int) -> np.ndarray:
    """Evaluate a `partials` plan node at its owner: returns an int64 matrix (rows x cells)."""
    ncells = step["cells"]
    mask = predicate_mask(step.get("where"), table, n)
    if step.get("bound"):  # differential privacy: at most R rows per person (spec/privacy.md 1)
        mask = first_rows_per_person(mask, table[step["bound"]["column"]], step["bound"]["rows"])
    cells_all = cell_index(step["keys"], table, n)
    cells = cells_all[mask]
    sub = {k: Vec(v.values[mask], v.null[mask]) for k, v in table.items()}
    m = int(mask.sum())
    blocks = []
    for slot in step["slots"]:
        kind = slot["kind"]
        if kind == "rows":
            blocks.append(np.bincount(cells, minlength=ncells)[None, :])
            continue
        if kind == "symdiff":
            blocks.append(symdiff_row(slot, step, table, n, mask, cells_all)[None, :])
            continue
        if kind in ("persons", "persons_where"):
            key = sub[slot["column"]]
            ok = ~key.null
            if kind == "persons_where":  # the persons of the rows where a predicate holds
                pred = evaluate(slot["arg"], sub, m)
                ok &= pred.values.astype(bool) & ~pred.null
            blocks.append(_distinct_per_cell(cells[ok], key.values[ok], ncells)[None, :])
            continue
        if kind == "repeaters":  # persons with two or more rows in the cell
            key = sub[slot["column"]]
            ok = ~key.null
            blocks.append(_repeaters_per_cell(cells[ok], key.values[ok], ncells)[None, :])
            continue
        v = evaluate(slot["arg"], sub, m)
        if kind == "distinct":
            ok = ~v.null
            blocks.append(_distinct_per_cell(cells[ok], v.values[ok].astype(np.int64), ncells)[None, :])
            continue
        scaled, ok = _scaled(v, slot)
        c, x = cells[ok], scaled[ok]
        if kind == "count":
            row = np.bincount(c, minlength=ncells)
        elif kind == "sum":
            row = _exact_sum(c, x, ncells)
        elif kind == "sumsq":
            row = _exact_sum(c, x * x, ncells)
        elif kind == "abssum":
            row = _exact_sum(c, np.abs(x), ncells)
        elif kind in ("max", "min"):
            row = _group_reduce(c, x, ncells, kind, slot["empty"])
        elif kind == "top":
            c_top, x_top = (c, np.abs(x)) if "person" not in slot else \
                _per_person(c, np.abs(x), sub[slot["person"]], ok, "sum")
            blocks.append(_top_n(c_top, x_top, ncells, slot["n"]))
            continue
        elif kind == "hist":
            lo, size = slot["lo"], slot["size"]
            if "person" in slot:
                c, x = _per_person(c, x, sub[slot["person"]], ok, "median")
            hist = np.zeros((size, ncells), dtype=np.int64)
            np.add.at(hist, (x - lo, c), 1)
            blocks.append(hist)
            continue
        else:
            raise AssertionError(kind)
        blocks.append(np.asarray(row, dtype=np.int64)[None, :])
    return np.concatenate(blocks, axis=0) if blocks else np.zeros((0, ncells), dtype=np.int64)


def symdiff_row(slot: dict, step: dict, table: Table, n: int, mask: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Differencing guard (compiler/plan/guard.py): this owner's rows that satisfy exactly one of the
    query's WHERE (`mask`) and an earlier release's WHERE (`arg`; false on a dataset the earlier
    release did not read), per cell ("cell") or in total, copied to every cell ("all")."""
    ncells = step["cells"]
    earlier = predicate_mask(slot.get("arg"), table, n) if step["dataset"] in slot["datasets"] \
        else np.zeros(n, dtype=bool)
    differ = mask ^ earlier
    if slot["scope"] == "all":
        return np.full(ncells, int(differ.sum()), dtype=np.int64)
    return np.bincount(cells[differ], minlength=ncells).astype(np.int64)


def _per_person(cells: np.ndarray, values: np.ndarray, person: Vec, ok: np.ndarray, how: str):
    """One value per (cell, person): the sum or the lower median of the person's values in the cell.
    Rows without a person key stay one contributor each (they cannot be tied to anyone)."""
    keys, no_key = person.values[ok].astype(np.int64), person.null[ok]
    if cells.size == 0:
        return cells, values
    keyed = ~no_key
    kc, kk, kv = cells[keyed], keys[keyed], values[keyed]
    order = np.lexsort((kv, kk, kc))
    kc, kk, kv = kc[order], kk[order], kv[order]
    start = np.r_[0, np.flatnonzero((np.diff(kc) != 0) | (np.diff(kk) != 0)) + 1] if kc.size else np.zeros(0, int)
    sizes = np.diff(np.r_[start, kc.size])
    if how == "sum":
        out = np.add.reduceat(kv, start) if kc.size else kv
    else:
        out = kv[start + (sizes - 1) // 2]
    return np.r_[kc[start], cells[no_key]], np.r_[out, values[no_key]].astype(np.int64)


def _exact_sum(cells: np.ndarray, values: np.ndarray, ncells: int) -> np.ndarray:
    out = np.zeros(ncells, dtype=np.int64)
    np.add.at(out, cells, values)
    return out


def linear_matrix(attrs: dict, n_in: int) -> np.ndarray:
    """0/1 matrix of a `linear` node: out[j] = sum of x[i] over its pairs (i, j)."""
    m = np.zeros((n_in, attrs["size"]), dtype=np.int64)
    if attrs["pairs"]:
        i, j = np.asarray(attrs["pairs"], dtype=np.int64).T
        m[i, j] = 1
    return m


def slot_rows(slots: list[dict]) -> dict[str, tuple[int, int]]:
    """Row range [start, stop) of each named slot in the partials matrix."""
    out, at = {}, 0
    for s in slots:
        height = s.get("n", 1) if s["kind"] == "top" else s.get("size", 1) if s["kind"] == "hist" else 1
        out[s["name"]] = (at, at + height)
        at += height
    return out
