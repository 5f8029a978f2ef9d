"""Load + validate one party's file: `load_dataset` on N rows of police_victims (examples/catalog.toml)
as CSV, Parquet with text columns, Parquet with typed columns, (smaller) .xlsx and, with --postgres,
a PostgreSQL table of typed columns (runtime/data/postgres.py).

    .venv/bin/python benchmarks/load_data.py                 # 1,000,000 rows, best of 3
    .venv/bin/python benchmarks/load_data.py --rows 100000 --repeats 5 --xlsx-rows 20000
    .venv/bin/python benchmarks/load_data.py --postgres      # + PostgreSQL: the server of IQ_PG_DSN,
                                                             #   else a throw-away one (tests/pg_server.py)
    .venv/bin/python benchmarks/load_data.py --file /tmp/bdata/rows10000000/police_victims.csv \
        --catalog benchmarks/catalog.toml --wanted prs_Nationality minor_at_recruitment prs_Age
                                    # one load of a given file in this process, with its peak memory

Prints one line per source: wall time and CPU time (both the least of the repeats), MB of the file,
and the 1-minute load average (`/proc/loadavg`, as `uptime` shows it) before and after: the machine
has 2 cores shared with other jobs, and CPU time is the steadier figure when the load is high.
The files are generated (vectorised, seeded) into --dir and reused. With --file, one load of that
file (as a party of scenario (a) loads it: --wanted are the columns its plan reads) prints wall, CPU
and the process's peak resident memory (ru_maxrss, which includes the interpreter and imports: about
110 MB); run it in a fresh process per figure.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from insightql.compiler.check.catalog import load_catalog
from insightql.runtime.data.loader import load_dataset

ROOT = Path(__file__).resolve().parents[1]
NAME = "police_victims"


def columns(ds, n: int, rng: np.random.Generator) -> dict[str, pa.Array]:
    """n valid rows, typed (about 10% nulls in the nullable columns)."""
    out = {}
    for name, col in ds.columns.items():
        t = col.type
        if t == "category":
            arr = pa.array(np.asarray(col.domain, dtype=object)[rng.integers(0, len(col.domain), n)], pa.string())
        elif t == "boolean":
            arr = pa.array(rng.random(n) < 0.3)
        elif t == "date":
            days = (col.min - dt.date(1970, 1, 1)).days + rng.integers(0, (col.max - col.min).days + 1, n)
            arr = pa.array(days.astype(np.int32), pa.int32()).cast(pa.date32())
        elif t == "decimal":
            arr = pa.array(np.round(rng.uniform(col.min, col.max, n), col.scale))
        elif t == "key":
            arr = pa.array(rng.integers(1, 2 ** min(col.bits, 48), n))
        else:
            arr = pa.array(rng.integers(col.min, col.max + 1, n))
        if col.nullable:
            arr = pc.if_else(pa.array(rng.random(n) < 0.1), pa.nulls(n, arr.type), arr)
        out[name] = arr
    return out


def write_files(ds, n: int, folder: Path, xlsx_rows: int) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"csv": folder / f"{NAME}-{n}.csv", "parquet (typed)": folder / f"{NAME}-{n}.parquet",
             "parquet (text)": folder / f"{NAME}-{n}-text.parquet", "xlsx": folder / f"{NAME}-{xlsx_rows}.xlsx"}
    if all(p.exists() for p in paths.values()):
        return paths
    table = pa.table(columns(ds, n, np.random.default_rng(7)))
    text = pa.table({c: table[c].cast(pa.string()) for c in table.column_names})
    text = pa.table({c: text[c].fill_null("") for c in text.column_names})
    pcsv.write_csv(text, paths["csv"], pcsv.WriteOptions(quoting_style="none"))
    pq.write_table(table, paths["parquet (typed)"])
    pq.write_table(text, paths["parquet (text)"])
    import openpyxl
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(NAME)
    sheet.append(table.column_names)
    for row in table.slice(0, xlsx_rows).to_pylist():
        sheet.append(list(row.values()))
    book.save(paths["xlsx"])
    return paths


PG_TYPES = {"key": "bigint", "integer": "integer", "decimal": "numeric", "date": "date", "boolean": "boolean",
            "category": "text"}


def postgres_table(ds, csv_path: Path, n: int) -> tuple[str, object]:
    """The CSV's rows as a typed table (made once); the source name and the server we started (or None)."""
    import sys
    import psycopg
    from psycopg import sql
    server = None
    if not os.environ.get("IQ_PG_DSN"):
        sys.path.insert(0, str(ROOT / "tests"))
        from pg_server import start_server
        server = start_server()
        if isinstance(server, str):
            raise SystemExit(f"--postgres: {server}")
        os.environ["IQ_PG_DSN"] = server.socket_dsn
    table = f"{NAME}_{n}"
    with psycopg.connect(os.environ["IQ_PG_DSN"], autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone()[0] is None:
            cols = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(PG_TYPES[col.type]))
                                      for c, col in ds.columns.items())
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier("public", table), cols))
            copy = sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv, HEADER)").format(sql.Identifier("public", table))
            with conn.cursor().copy(copy) as cp, open(csv_path, "rb") as fh:
                while block := fh.read(1 << 20):
                    cp.write(block)
            conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier("public", table)))
    return f"postgresql:public.{table}", server


def load_avg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0]) if Path("/proc/loadavg").exists() else float("nan")


def measure(path: Path | str, ds, repeats: int) -> tuple[float, float, int]:
    wall = cpu = float("inf")
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        _, n = load_dataset(path, NAME, ds)
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return wall, cpu, n


def one_load(path: Path, name: str, ds, wanted: list[str] | None) -> None:
    """One load of `path` in this process: wall, CPU, peak RSS (ru_maxrss), load average."""
    want = None if wanted is None else {c: {"domain": list(getattr(ds.columns[c], "domain", None) or [])} for c in wanted}
    before = load_avg()
    w0, c0 = time.perf_counter(), time.process_time()
    _, n = load_dataset(path, name, ds, want)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{path.name} {n:,} rows {path.stat().st_size / 1e6:.0f} MB  wall {wall:.2f} s  cpu {cpu:.2f} s  "
          f"peak RSS {peak:,.0f} MiB  load average {before:.2f} -> {load_avg():.2f}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--xlsx-rows", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--postgres", action="store_true", help="also a PostgreSQL table (IQ_PG_DSN, or a throw-away "
                    "server)")
    ap.add_argument("--only", nargs="+", metavar="SOURCE", help="measure only these (csv, postgresql, ...)")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "insightql-bench" / "load")
    ap.add_argument("--file", type=Path, help="load this file once (peak memory: one file per process)")
    ap.add_argument("--catalog", type=Path, default=ROOT / "examples" / "catalog.toml")
    ap.add_argument("--dataset", default=NAME)
    ap.add_argument("--wanted", nargs="+", metavar="COLUMN", help="with --file: the columns the plan reads "
                    "(default: every declared column)")
    args = ap.parse_args(argv)
    ds = load_catalog(args.catalog).datasets[args.dataset]
    if args.file:
        return one_load(args.file, args.dataset, ds, args.wanted)
    paths = write_files(ds, args.rows, args.dir, args.xlsx_rows)
    print(f"load + validate, {NAME} ({len(ds.columns)} columns), best of {args.repeats}; {os.cpu_count()} cores")
    server = None
    if args.postgres:
        paths["postgresql"], server = postgres_table(ds, paths["csv"], args.rows)
    try:
        for kind, path in paths.items():
            if args.only and kind not in args.only:
                continue
            before = load_avg()
            wall, cpu, n = measure(path, ds, args.repeats)
            size = f"{path.stat().st_size / 1e6:7.1f} MB" if isinstance(path, Path) else "  (table)"
            print(f"{kind:16} {n:>9,} rows {size}  wall {wall:6.3f} s  cpu {cpu:6.3f} s  "
                  f"load average {before:.2f} -> {load_avg():.2f}", flush=True)
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
