"""Same-run comparison of the oblivious linkage's sort and adjacent-key equality (issue 16 levers).

3 MPyC parties as 3 processes on loopback: N rows of 52 shared bits (a third of the keys repeated),
the 50 key bits' radix sort carrying the low bits and the key's 17-bit chunks (as a join sorts
them, runtime/secure/linkage_ops.py `radix_sorted`), then `chunks_equal_prev`, checked against
numpy. Reports the CPU seconds of the three parties together for each step (time.process_time in
every party: other jobs on the 2 shared cores change it much less than the wall time) and the
wall time with the load. Each code version is a tree first on PYTHONPATH (e.g. `git archive HEAD`
extracted into DIR/insightql); `.` is the working tree. Versions alternate, `--reps` times.

    .venv/bin/python benchmarks/linkage_sort.py N [--reps R] [DIR ...]     e.g. 4096 --reps 3 /tmp/old .
"""
from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
import time


def run_version(n: int, tree: str, port: int) -> dict:
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "PYTHONPATH": empty if tree == "." else os.path.abspath(tree)}
        load, t0 = os.getloadavg()[0], time.perf_counter()
        procs = [subprocess.Popen([sys.executable, __file__, "party", str(n), "-M3", "-I", str(i), "-B", str(port),
                                   "--no-log"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                 for i in range(3)]
        outs = [p.communicate()[0] for p in procs]
    got = [re.search(r"sort cpu ([\d.]+) eq cpu ([\d.]+)", o) for o in outs]
    if not all(got):
        raise SystemExit(f"a party failed ({tree}): {outs}")
    return {"sort": sum(float(g.group(1)) for g in got), "eq": sum(float(g.group(2)) for g in got),
            "wall": time.perf_counter() - t0, "load": f"{load:.1f}-{os.getloadavg()[0]:.1f}"}


def party(n: int) -> None:
    import numpy as np
    from mpyc.runtime import mpc

    from insightql.runtime.secure import fast_random
    from insightql.runtime.secure.link_steps import chunk_columns, chunks_equal_prev
    from insightql.runtime.secure.radix import radix_sort

    fast_random.install()  # as runtime/launch/mpyc_setup.py does in a party

    async def main():
        await mpc.start()
        st = mpc.SecInt(26)  # the radix design's type at this size (LinkOps.radix_type): a ~58-bit field
        rng = np.random.default_rng(1)
        keys = rng.integers(0, 2 ** 49, size=n, dtype=np.int64)
        keys[: n // 3] = keys[n // 3: 2 * (n // 3)]
        bits = ((keys.reshape(n, 1) >> np.arange(52).reshape(1, 52)) & 1).astype(object)
        x = mpc.input(st.array(bits if mpc.pid == 0 else np.zeros((n, 52), dtype=object)), senders=0)
        await mpc.barrier()
        c0 = time.process_time()
        rows = mpc.np_concatenate([x[:, 50:52], chunk_columns(mpc, x, 0, 50, 17)], axis=1)
        out = await radix_sort(mpc, {"id": "bench"}, [x[:, j] for j in range(50)], rows)
        c1 = time.process_time()
        eq = await mpc.output(await chunks_equal_prev(mpc, out[:, 2:], 17))
        c2 = time.process_time()
        ks = np.sort(keys)
        assert [int(v) for v in eq] == [0] + [int(a == b) for a, b in zip(ks[1:], ks[:-1])], "wrong equalities"
        print(f"sort cpu {c1 - c0:.3f} eq cpu {c2 - c1:.3f}", flush=True)
        await mpc.shutdown()

    mpc.run(main())


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "party":
        n = int(sys.argv[2])
        sys.argv = [sys.argv[0]] + sys.argv[3:]  # MPyC's own options
        party(n)
        sys.exit()
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    reps = 1
    if "--reps" in args:
        i = args.index("--reps")
        reps = int(args[i + 1])
        del args[i:i + 2]
    n, trees = int(args[0]), args[1:] or ["."]
    totals: dict = {t: [] for t in trees}
    for r in range(reps):
        for j, tree in enumerate(trees):
            res = run_version(n, tree, 21000 + (os.getpid() % 500) * 8 + j)
            totals[tree].append(res)
            print(f"{tree}: n={n} sort CPU {res['sort']:.2f} s, equality CPU {res['eq']:.2f} s (3 parties), "
                  f"wall {res['wall']:.1f} s, load {res['load']}", flush=True)
    for tree, rs in totals.items():
        s, e = sum(x["sort"] for x in rs) / len(rs), sum(x["eq"] for x in rs) / len(rs)
        print(f"mean {tree}: sort CPU {s:.2f} s, equality CPU {e:.2f} s over {len(rs)} runs")
