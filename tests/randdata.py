"""Random datasets that satisfy a catalog, written as CSV: the inputs of differential tests."""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np

from insightql.compiler.check.catalog import Dataset


def random_rows(ds: Dataset, n: int, rng: np.random.Generator, null_rate: float = 0.1,
                key_pool: int | None = None) -> list[dict]:
    """n rows; few distinct values so that cells of size around k actually occur."""
    cols = {}
    for name, col in ds.columns.items():
        t = col.type
        if t == "category":
            weights = rng.dirichlet(np.ones(len(col.domain)) * 0.7)
            vals = [col.domain[i] for i in rng.choice(len(col.domain), n, p=weights)]
        elif t == "boolean":
            vals = ["true" if b else "false" for b in rng.random(n) < 0.3]
        elif t == "integer":
            vals = [str(v) for v in rng.integers(col.min, col.max + 1, n)]
        elif t == "decimal":
            vals = [f"{v:.{col.scale}f}" for v in rng.uniform(col.min, col.max, n)]
        elif t == "date":
            span = (col.max - col.min).days
            vals = [(col.min + dt.timedelta(days=int(d))).isoformat() for d in rng.integers(0, span + 1, n)]
        else:  # key: a pool of persons, some with several rows
            pool = key_pool or max(1, n * 3 // 4)
            drawn = rng.integers(1, pool + 1, n)
            if getattr(col, "unique", False):  # one row per key: distinct odd keys from the same draw,
                drawn = 2 * np.argsort(drawn, kind="stable") + 1  # so about half of other keys match
            vals = [str(v) for v in drawn]
        if col.nullable:
            vals = ["" if rng.random() < null_rate else v for v in vals]
        cols[name] = vals
    return [{c: cols[c][i] for c in cols} for i in range(n)]


def write_csv(path: Path, ds: Dataset, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ds.columns))
        w.writeheader()
        w.writerows(rows)
    return path
