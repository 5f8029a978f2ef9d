"""Benchmark scenarios: the query in InsightQL, the same query in plain SQL, and the data.

Three data holders (police, ngo, ngo2) with the same victim-record columns and one neutral
helper: benchmarks/catalog.toml. Their CSVs come from examples/generate_data.py (fixed seed):
police_victims and ngo_clients from one call, ngo2_clients is the NGO table of a second call
with other seeds (a second NGO whose clients partly overlap with the police's own universe).
"""
from __future__ import annotations

import importlib.util
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CATALOG = HERE / "catalog.toml"
DATASETS = ("police_victims", "ngo_clients", "ngo2_clients")
DATA_PARTIES = ("police", "ngo", "ngo2")


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    iq: str  # InsightQL source
    sql: str  # the same query for DuckDB / sqlite3 over a view `pooled` (UNION ALL of the three tables)
    group_cols: tuple[str, ...]  # the GROUP BY columns (for the hand-written MPyC baseline)
    measure: str  # the AVG column
    where: tuple[str, int] | None = None  # (column, lower bound): WHERE column >= bound
    baseline: bool = True  # also run the hand-written MPyC baseline


FROM = "police_victims UNION ALL ngo_clients UNION ALL ngo2_clients"

SCENARIOS = [
    Scenario(
        key="a",
        title="(a) UNION ALL of 3 parties, GROUP BY 2 dims (90 groups), COUNT + AVG",
        iq=f"""@name bench_union_groupby
@purpose research
SELECT prs_Nationality, minor_at_recruitment, COUNT(*) AS n, AVG(prs_Age) AS mean_age
FROM {FROM}
GROUP BY prs_Nationality, minor_at_recruitment
""",
        sql="""SELECT prs_Nationality, minor_at_recruitment, COUNT(*) AS n, AVG(prs_Age) AS mean_age
FROM pooled GROUP BY prs_Nationality, minor_at_recruitment""",
        group_cols=("prs_Nationality", "minor_at_recruitment"),
        measure="prs_Age",
    ),
    Scenario(
        key="b",
        title="(b) filter on a measure (hours >= 60), GROUP BY 2 dims (44 groups), COUNT + AVG",
        iq=f"""@name bench_filter_groupby
@purpose research
SELECT exp_Type, exp_Region, COUNT(*) AS n, AVG(prs_Age) AS mean_age
FROM {FROM}
WHERE hours_worked_week >= 60
GROUP BY exp_Type, exp_Region
""",
        sql="""SELECT exp_Type, exp_Region, COUNT(*) AS n, AVG(prs_Age) AS mean_age
FROM pooled WHERE hours_worked_week >= 60 GROUP BY exp_Type, exp_Region""",
        group_cols=("exp_Type", "exp_Region"),
        measure="prs_Age",
        where=("hours_worked_week", 60),
        baseline=False,
    ),
]
# (c) joins and distinct counts: benchmarks/linkage.py (record-linkage issue), a placeholder row here.
PLACEHOLDERS = ["(c) join / distinct count across parties: see benchmarks/linkage.py (record linkage)"]


def _generator():
    spec = importlib.util.spec_from_file_location("iq_generate_data", ROOT / "examples" / "generate_data.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("iq_generate_data", mod)
    spec.loader.exec_module(mod)
    return mod


def check_catalog() -> None:
    """The benchmark datasets must keep the demo catalog's columns (the generator follows those)."""
    def cols(ds: dict) -> dict:
        return {c: {k: v for k, v in spec.items() if k != "description"} for c, spec in ds["columns"].items()}

    bench = tomllib.loads(CATALOG.read_text(encoding="utf-8"))["datasets"]
    demo = tomllib.loads((ROOT / "examples" / "catalog.toml").read_text(encoding="utf-8"))["datasets"]
    for d in DATASETS:
        if cols(bench[d]) != cols(demo["police_victims"]):
            raise SystemExit(f"benchmarks/catalog.toml: {d} no longer has the columns of examples/catalog.toml")


def make_data(rows: int, folder: Path) -> dict[str, str]:
    """CSV files for the three datasets with `rows` rows each (cached in `folder`)."""
    folder = Path(folder) / f"rows{rows}"
    paths = {d: folder / f"{d}.csv" for d in DATASETS}
    if not all(p.is_file() for p in paths.values()):
        gd = _generator()
        import numpy as np
        schema = gd.load_schema()
        folder.mkdir(parents=True, exist_ok=True)
        order = list(schema["police_victims"])
        seeds = np.random.SeedSequence(gd.SEED).spawn(5)[0].spawn(3)
        police, ngo, _ = gd.police_and_ngo(schema, rows, rows, seeds)
        gd.write_csv(paths["police_victims"], police, order)
        gd.write_csv(paths["ngo_clients"], ngo, order)
        del police, ngo
        seeds2 = np.random.SeedSequence(gd.SEED + 1).spawn(3)
        _, ngo2, _ = gd.police_and_ngo(schema, rows, rows, seeds2)
        gd.write_csv(paths["ngo2_clients"], ngo2, order)
    return {d: str(p) for d, p in paths.items()}


if __name__ == "__main__":  # python benchmarks/scenarios.py ROWS OUTDIR
    t0 = time.perf_counter()
    print(make_data(int(sys.argv[1]), Path(sys.argv[2])), f"{time.perf_counter() - t0:.1f}s")
