"""The owner's local pre-aggregation helpers (compiler/plaintext/partials.py) against direct references."""
from __future__ import annotations

import numpy as np
import pytest

from insightql.compiler.plaintext.partials import _distinct_per_cell


def reference(cells, keys, ncells):
    out = np.zeros(ncells, dtype=np.int64)
    for c, k in set(zip(cells.tolist(), keys.tolist())):
        out[c] += 1
    return out


@pytest.mark.parametrize("lo,hi", [(0, 5), (0, 2 ** 48), (-1000, 1000), (-2 ** 62, 2 ** 62), (-2 ** 63, 2 ** 63 - 1)])
@pytest.mark.parametrize("seed", range(3))
def test_distinct_per_cell(lo, hi, seed):
    rng = np.random.default_rng(seed)
    n, ncells = 2000, 37
    cells = rng.integers(0, ncells, n)
    keys = rng.integers(lo, hi, n, endpoint=True)
    keys[rng.integers(0, n, n // 2)] = keys[rng.integers(0, n, n // 2)]  # repeated keys, in and across cells
    keys[:3] = [lo, hi, lo]
    got = _distinct_per_cell(cells, keys, ncells)
    assert got.dtype == np.int64 and np.array_equal(got, reference(cells, keys, ncells))


def test_distinct_per_cell_edges():
    assert np.array_equal(_distinct_per_cell(np.zeros(0, np.int64), np.zeros(0, np.int64), 4), np.zeros(4))
    one = _distinct_per_cell(np.array([3]), np.array([7]), 4)
    assert one.tolist() == [0, 0, 0, 1]
    same = _distinct_per_cell(np.array([1, 1, 2, 2]), np.array([5, 5, 5, 5]), 3)
    assert same.tolist() == [0, 1, 1]
