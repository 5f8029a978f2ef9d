"""What InsightQL is compared with: the plaintext floor and a hand-written MPyC program.

* plaintext(): the same query on the pooled CSVs in DuckDB (if installed; else sqlite3), timed
  from reading the files to the result, and the query alone on tables already in memory.
* The hand-written MPyC baseline is this file run as a party (`python benchmarks/baselines.py
  party ...`), one OS process per party over loopback TCP like InsightQL: it is the program a
  user of MPyC would write without a compiler. Every data party secret-shares its raw rows (the
  category codes of both GROUP BY columns and the measure; row counts are public); the group-by
  tests secure equality of every row against every category value (vectorised `==` on secure
  arrays, as MPyC's documentation shows) and multiplies the two indicator vectors per group;
  COUNT and SUM are vectorised sums; small cells (< k rows) are suppressed in a scalar Python
  loop over the groups, the way one writes it first; AVG = SUM / COUNT is computed by the
  receivers after the reveal. It does not pre-aggregate locally: that is what the compiler adds.
"""
from __future__ import annotations

import csv
import sqlite3
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
K = 10  # min_group_size of the benchmark catalog's datasets


# ------------------------------------------------------------------ plaintext floor
def plaintext(sql: str, data: dict[str, str]) -> dict:
    """{'engine', 'total' (CSV to result, s), 'query' (in-memory query alone, s), 'rows' (the result)}."""
    try:
        import duckdb
    except ImportError:
        return _sqlite(sql, data)
    t0 = time.perf_counter()
    con = duckdb.connect()
    for name, path in data.items():
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv('{path}', header = true)")
    con.execute("CREATE VIEW pooled AS " + " UNION ALL ".join(f"SELECT * FROM {n}" for n in data))
    t1 = time.perf_counter()
    rows = con.execute(sql).fetchall()
    t2 = time.perf_counter()
    con.close()
    return {"engine": f"DuckDB {duckdb.__version__}", "total": t2 - t0, "query": t2 - t1, "rows": rows}


def _sqlite(sql: str, data: dict[str, str]) -> dict:
    t0 = time.perf_counter()
    con = sqlite3.connect(":memory:")
    for name, path in data.items():
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            con.execute(f"CREATE TABLE {name} ({', '.join(h + ' NUMERIC' for h in header)})")
            con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(header))})",
                            ([v if v != "" else None for v in r] for r in reader))
    con.execute("CREATE VIEW pooled AS " + " UNION ALL ".join(f"SELECT * FROM {n}" for n in data))
    t1 = time.perf_counter()
    rows = con.execute(sql).fetchall()
    t2 = time.perf_counter()
    return {"engine": f"sqlite3 {sqlite3.sqlite_version}", "total": t2 - t0, "query": t2 - t1, "rows": rows}


# ------------------------------------------------------------------ hand-written MPyC baseline
def domains(group_cols: list[str]) -> list[list[str]]:
    """Category values of each GROUP BY column, with '' (unknown) last for nullable columns."""
    cols = tomllib.loads((HERE / "catalog.toml").read_text(encoding="utf-8"))["datasets"]["police_victims"]["columns"]
    out = []
    for c in group_cols:
        spec = cols[c]
        values = ["false", "true"] if spec["type"] == "boolean" else list(spec["domain"])
        out.append(values + ([""] if spec.get("nullable") else []))
    return out


def read_rows(path: str, group_cols: list[str], measure: str) -> tuple[list[list[int]], list[int]]:
    doms = domains(group_cols)
    codes = [{v: i for i, v in enumerate(d)} for d in doms]
    keys: list[list[int]] = [[] for _ in group_cols]
    values: list[int] = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            for j, c in enumerate(group_cols):
                keys[j].append(codes[j][row[c].strip()])
            values.append(int(row[measure]))
    return keys, values


async def party_main(mpc, data: str | None, n_data_parties: int, group_cols: list[str], measure: str):
    import numpy as np

    secint = mpc.SecInt(32)
    await mpc.start()
    keys, values = read_rows(data, group_cols, measure) if data else ([[] for _ in group_cols], [])
    counts = await mpc.transfer(len(values))  # every party learns every row count
    shared_keys = [[] for _ in group_cols]
    shared_vals = []
    for p in range(n_data_parties):
        mine = mpc.pid == p
        for j in range(len(group_cols)):
            x = np.array(keys[j] if mine else [0] * counts[p], dtype=np.int64)
            shared_keys[j].append(mpc.input(secint.array(x), senders=p))
        x = np.array(values if mine else [0] * counts[p], dtype=np.int64)
        shared_vals.append(mpc.input(secint.array(x), senders=p))
    cols = [mpc.np_concatenate(k) for k in shared_keys]
    vals = mpc.np_concatenate(shared_vals)
    doms = domains(group_cols)
    is_value = [[col == i for i in range(len(dom))] for col, dom in zip(cols, doms)]  # secure ==
    groups, n, s = [], [], []
    for a in range(len(doms[0])):
        for b in range(len(doms[1])):
            member = is_value[0][a] * is_value[1][b]
            groups.append((doms[0][a], doms[1][b]))
            n.append(mpc.np_sum(member))
            s.append(mpc.np_sum(member * vals))
    released = []
    for count, total in zip(n, s):  # suppression of small cells, one group at a time
        ok = count >= K
        released += [ok * count, ok * total]
    out = await mpc.output(released)
    await mpc.shutdown()
    return [(g, c, t / c if c else None) for g, c, t in zip(groups, out[0::2], out[1::2])]


def run_party(argv: list[str]) -> int:
    """party --index I --ports P0,P1,.. --data FILE|- --groups C1,C2 --measure M"""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=int, required=True)
    ap.add_argument("--ports", required=True)
    ap.add_argument("--data", default="-")
    ap.add_argument("--data-parties", type=int, default=3)
    ap.add_argument("--groups", required=True)
    ap.add_argument("--measure", required=True)
    args = ap.parse_args(argv)
    ports = args.ports.split(",")
    sys.argv = [sys.argv[0], "-I", str(args.index), "--no-log"] + [a for p in ports for a in ("-P", f"127.0.0.1:{p}")]
    from mpyc.runtime import mpc
    result = mpc.run(party_main(mpc, None if args.data == "-" else args.data, args.data_parties,
                                args.groups.split(","), args.measure))
    if args.index == 0:
        released = [r for r in result if r[1]]
        print(f"baseline: {len(released)} of {len(result)} groups released", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["party"]:
        raise SystemExit("usage: baselines.py party --index I --ports P0,P1,... [--data FILE] --groups C1,C2 --measure M")
    sys.exit(run_party(sys.argv[2:]))
