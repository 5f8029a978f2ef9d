"""Small hand-built worlds for the red-team suite (tests/test_redteam.py, tests/test_residuals.py).

A world is a list of blocks, each `block(dataset, n, col=value, ...)`: n rows of one dataset.
A value is a literal (str, int, float, bool), None for NULL, a list or range (cycled over the n
rows), or a function of the row's index in the block. Columns a block leaves out get a fixed
ordinary value (the first category, the minimum, false, the first date); a key column a fresh
person per row, unless given (`person_id=7`: every row of the block is person 7).

`write_world(folder, catalog, blocks)` writes one CSV per dataset of the catalog (datasets with
no block get a header only) and returns {dataset: path}, as `conftest.load_tables` wants it.
`releases(...)` compiles a sequence of queries, each against the releases before it (the ledger,
as `iq compile --ledger` does), and runs each on the plaintext oracle; `cells` and `view` are
what a receiver can compute with and everything it sees.
"""
from __future__ import annotations

import csv
import datetime as dt
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from insightql.compiler.plan.guard import signature_of_plan
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.results import Suppressed

from conftest import load_tables

HEAD = "@purpose research\n"


@dataclass(frozen=True)
class Block:
    dataset: str
    n: int
    values: dict = field(default_factory=dict)


def block(dataset: str, n: int, **values) -> Block:
    return Block(dataset, n, values)


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _default(col, fresh) -> str:
    t = col.type
    if t == "category":
        return col.domain[0]
    if t == "boolean":
        return "false"
    if t == "key":
        return str(next(fresh))
    if t == "date":
        return col.min.isoformat()
    if t == "integer":
        return str(col.min)
    if t == "decimal":
        return f"{col.min:.{col.scale}f}"
    raise ValueError(f"no default for column type {t}")


def world_rows(catalog, blocks: list[Block]) -> dict[str, list[dict]]:
    """{dataset: rows as CSV strings} for every dataset of the catalog."""
    fresh = itertools.count(100_001)
    rows: dict[str, list[dict]] = {d: [] for d in catalog.datasets}
    for b in blocks:
        ds = catalog.datasets[b.dataset]
        unknown = set(b.values) - set(ds.columns)
        if unknown:
            raise KeyError(f"{b.dataset} has no column(s) {sorted(unknown)}")
        for i in range(b.n):
            row = {}
            for name, col in ds.columns.items():
                if name not in b.values:
                    row[name] = _default(col, fresh)
                    continue
                v = b.values[name]
                if callable(v):
                    v = v(i)
                elif isinstance(v, (list, tuple, range)):
                    v = v[i % len(v)]
                row[name] = _text(v)
            rows[b.dataset].append(row)
    return rows


def write_world(folder: Path, catalog, blocks: list[Block], prefix: str = "") -> dict[str, str]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for d, rows in world_rows(catalog, blocks).items():
        path = folder / f"{prefix}{d}.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(catalog.datasets[d].columns))
            w.writeheader()
            w.writerows(rows)
        paths[d] = str(path)
    return paths


def count_rows(catalog, blocks: list[Block], dataset: str, **where) -> int:
    """Rows of `dataset` in the world whose columns equal the given values (as CSV text): what the
    owner knows of its own rows, and what a test uses to state the truth it must not leak."""
    return sum(1 for r in world_rows(catalog, blocks)[dataset]
               if all(r[c] == _text(v) for c, v in where.items()))


# -- releases on the plaintext oracle -----------------------------------------------------------------
def q(text: str) -> str:
    return HEAD + text


def compile_seq(queries: list[str], cat, guard: bool = True) -> list:
    """Compile each query against the releases before it (res.plan None where it is rejected)."""
    plans, sigs = [], []
    for i, text in enumerate(queries):
        res = compile_source(q(text), f"q{i}", cat, earlier=list(sigs) if guard else None)
        plans.append(res)
        if res.plan is not None:
            sigs.append(signature_of_plan(res.plan))
    return plans


def releases(queries: list[str], world: list[Block], cat, folder: Path, guard: bool = True) -> list:
    """[(plan, loaded tables, result table)] of each query of the sequence, on this world."""
    data = write_world(folder, cat, world)
    out = []
    for i, res in enumerate(compile_seq(queries, cat, guard)):
        assert res.plan is not None, f"query {i} does not compile:\n" + "\n".join(d.render() for d in res.diagnostics)
        loaded = load_tables(res.plan, cat, data)
        out.append((res.plan, loaded, run_plan_plaintext(res.plan, loaded)))
    return out


def key_columns(plan: dict) -> list[int]:
    table = next(n for n in plan["nodes"] if n["op"] == "table")
    return [i for i, o in enumerate(table["attrs"]["outputs"]) if o["kind"] == "key"]


def cells(plan: dict, table) -> dict:
    """{key tuple: {column: value or None}}: what the observer can compute with (None: suppressed or
    withheld). Every cell of the public domain is shown, never dropped (except by the analyst's HAVING)."""
    keys = key_columns(plan)
    out = {}
    for r in table.rows:
        key = tuple(r[i] for i in keys)
        out[key] = {c: (None if isinstance(v, Suppressed) else v) for i, (c, v) in enumerate(zip(table.columns, r))
                    if i not in keys}
    return out


def view(table) -> tuple:
    """Everything a receiver sees: columns, rows in order, values, suppression marks and reasons, notes."""
    rows = tuple(tuple(("suppressed", v.reason) if isinstance(v, Suppressed) else v for v in r) for r in table.rows)
    return tuple(table.columns), rows, tuple(table.notes)


NATIONS = ["NG", "RO", "VN", "OTHER"]  # catalog_strict.toml's nationalities


def stays_by_nationality(ng_long: list[int]) -> list[Block]:
    """catalog_strict.toml's shelter_stays: in the North, per nationality twenty short stays (10 days) of
    1000, so no nationality's cell is empty; NG's long stays (60 days) of `ng_long` each, the other
    nationalities' ten long stays of 10000 each. East: thirty short stays of 500 (NG). Three releases
    over it (by region; by region and nationality WHERE stay_days < 30; by region and nationality)
    withhold the third's North x NG for the second and give it back from the first (spec 6.14)."""
    s = "shelter_stays"
    return [*(block(s, 20, region="North", nationality=n, stay_days=10, support_eur=1000) for n in NATIONS),
            block(s, len(ng_long), region="North", nationality="NG", stay_days=60, support_eur=ng_long),
            *(block(s, 10, region="North", nationality=n, stay_days=60, support_eur=10000) for n in NATIONS[1:]),
            block(s, 30, region="East", stay_days=10, support_eur=500)]
