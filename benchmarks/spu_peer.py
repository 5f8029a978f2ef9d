"""Optional peer: the benchmark query hand-written for SecretFlow SPU's 3-party ABY3 simulator.

Runs with an interpreter that has `spu` (and jax) installed, never the project's own venv:

    /tmp/spuvenv/bin/python benchmarks/spu_peer.py --data A.csv,B.csv,C.csv --groups C1,C2 --measure M \
        [--where COL:LOWER]

prints one JSON line {"groups": [[v1, v2, count, sum], ...], "seconds": {...}}. The program is the
one a SPU user would write: every row's category codes, measure (and filter column) are secret
inputs of the simulator (the three organisations' rows pooled); the group-by tests in-MPC
equality of each row's code against every category value (one-hot, n x values), COUNT and SUM
are secret x secret matrix products of the one-hot matrices, cells with fewer than k rows are
zeroed in MPC (`jnp.where`), and the receivers divide SUM by COUNT. **SPU's simulator runs the
3 parties as threads of one process with no network**, while InsightQL and the MPyC baseline
run separate processes over TCP: its figures are a lower bound for a deployed SPU.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from baselines import K, domains  # noqa: E402  (stdlib-only imports at module level)


def read(paths: list[str], group_cols: list[str], measure: str, where: str | None):
    """Category codes of the GROUP BY columns, the measure, the filter column (-1 when empty)."""
    import numpy as np

    codes = [{v: i for i, v in enumerate(d)} for d in domains(group_cols)]
    keys: list[list[int]] = [[] for _ in group_cols]
    vals: list[int] = []
    filt: list[int] = []
    for path in paths:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                for j, c in enumerate(group_cols):
                    keys[j].append(codes[j][row[c].strip()])
                vals.append(int(row[measure]))
                if where:
                    filt.append(int(row[where]) if row[where].strip() else -1)
    arrays = [np.array(k, dtype=np.int64) for k in keys] + [np.array(vals, dtype=np.int64)]
    if where:
        arrays.append(np.array(filt, dtype=np.int64))
    return arrays


# ------------------------------------------------------------------ runner side (the project's venv)
def find_python(given: str | None) -> str | None:
    """An interpreter that can import spu: `given` (--spu-python), $IQ_SPU_PYTHON, or this one."""
    for python in (given, os.environ.get("IQ_SPU_PYTHON"), sys.executable):
        if python and subprocess.run([python, "-c", "import spu.utils.simulation, jax"], capture_output=True,
                                     timeout=120).returncode == 0:
            return python
    return None


def run(python: str, scn, data: dict[str, str], datasets, timeout: float = 3600) -> dict:
    """One run as a child process: {"total" (wall s), "rows": [(g1, g2, count, mean)], "versions"}."""
    cmd = [python, str(Path(__file__).resolve()), "--data", ",".join(data[d] for d in datasets),
           "--groups", ",".join(scn.group_cols), "--measure", scn.measure]
    if scn.where:
        cmd += ["--where", f"{scn.where[0]}:{scn.where[1]}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    total = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError("SPU peer failed:\n" + proc.stderr[-1500:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = [(a, b, c if c else None, s / c if c else None) for a, b, c, s in out["groups"]]
    return {"total": total, "rows": rows, "versions": out["versions"], "seconds": out["seconds"]}


# ------------------------------------------------------------------ peer side (an interpreter with spu)
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="the three CSV files, comma-separated")
    ap.add_argument("--groups", required=True)
    ap.add_argument("--measure", required=True)
    ap.add_argument("--where", default="", help="COLUMN:LOWER for WHERE COLUMN >= LOWER")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    import jax.numpy as jnp
    import numpy as np
    import spu.libspu as libspu
    import spu.utils.simulation as spsim

    group_cols = args.groups.split(",")
    doms = domains(group_cols)
    where_col, lower = (args.where.split(":") + [""])[:2] if args.where else (None, "0")
    t1 = time.perf_counter()
    arrays = read(args.data.split(","), group_cols, args.measure, where_col)
    t2 = time.perf_counter()
    n1, n2, low = len(doms[0]), len(doms[1]), int(lower)

    def query(c1, c2, x, *filt):
        a = (c1[:, None] == jnp.arange(n1)[None, :]).astype(jnp.int64)  # secret ==, n x n1
        b = (c2[:, None] == jnp.arange(n2)[None, :]).astype(jnp.int64)
        if filt:
            b = b * (filt[0] >= low).astype(jnp.int64)[:, None]  # secret >=
        count = a.T @ b  # n1 x n2
        total = a.T @ (b * x[:, None])
        ok = count >= K  # suppression in MPC
        return jnp.where(ok, count, 0), jnp.where(ok, total, 0)

    sim = spsim.Simulator.simple(3, libspu.ProtocolKind.ABY3, libspu.FieldType.FM64)
    count, total = spsim.sim_jax(sim, query)(*arrays)
    t3 = time.perf_counter()
    count, total = np.asarray(count), np.asarray(total)
    groups = [[doms[0][i], doms[1][j], int(count[i, j]), int(total[i, j])] for i in range(n1) for j in range(n2)]
    from importlib.metadata import version
    versions = f"SPU {version('spu')} (ABY3, 3 parties, FM64), jax {version('jax')}"
    print(json.dumps({"groups": groups, "rows": int(arrays[0].size), "versions": versions,
                      "seconds": {"import": t1 - t0, "read": t2 - t1, "mpc": t3 - t2}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
