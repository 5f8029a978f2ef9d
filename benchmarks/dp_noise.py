"""What differential privacy's noise costs (spec/privacy.md 3; results in benchmarks/DP.md).

    .venv/bin/python benchmarks/dp_noise.py demo [--repeats 3]   # the shipped demo query, with and without DP
    .venv/bin/python benchmarks/dp_noise.py inmpc N L B          # noise drawn inside MPC from random bits

`demo`: the shipped demo query (examples/victims_by_exploitation.iq) as shipped, and its DP form
(`@epsilon 1`, MEDIAN dropped: it has no DP mechanism), each run by real parties on examples/data with
IQ_PROFILE=1, which times every secure node at the police's party on its own (with a barrier, so
the sum is somewhat above the unprofiled secure time). Prints per run the secure time (sum over
secure nodes), the dp_noise nodes' time and the 1-minute load average before and after.

`inmpc`: the alternative of section 3.2: N one-sided geometrics, each the leading successes of L
Bernoulli(a/2^B) trials from B jointly random bits compared bitwise with the public threshold,
prefix products in log2(L) rounds; 3 parties (-M3). Prints seconds at party 0.
"""
from __future__ import annotations

import math
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = {"police_victims": str(ROOT / "examples" / "data" / "police_victims.csv"),
        "ngo_clients": str(ROOT / "examples" / "data" / "ngo_clients.csv")}
PROFILE = re.compile(r"\[police\] profile (n\d+) (\w+): ([0-9.]+)s")


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def demo(repeats: int) -> None:
    import os

    from insightql.compiler.check.catalog import load_catalog
    from insightql.compiler.pipeline import compile_source
    from insightql.runtime.launch.launcher import launch_local

    src = (ROOT / "examples" / "victims_by_exploitation.iq").read_text(encoding="utf-8")
    dp_src = src.replace("@purpose research", "@purpose research\n@epsilon 1").replace(
        "    MEDIAN(prs_Age) AS median_age,\n", "")
    # @epsilon needs a budget on every dataset read (IQ328): the demo catalog with one on the police's
    # dataset, which the NGO's inherits through `like`; both runs use it (the same catalog digest)
    text = (ROOT / "examples" / "catalog.toml").read_text(encoding="utf-8")
    anchor = "max_groups = 2000\n[datasets.police_victims.columns]"
    cat_path = Path(tempfile.mkdtemp()) / "catalog.toml"
    cat_path.write_text(text.replace(anchor, "max_groups = 2000\n[datasets.police_victims.policy.privacy]\n"
                                     "require = false\nepsilon_budget = 100\n[datasets.police_victims.columns]"),
                        encoding="utf-8")
    cat = load_catalog(cat_path)
    os.environ["IQ_PROFILE"] = "1"
    for label, text in (("demo as shipped", src), ("demo with @epsilon 1, no MEDIAN", dp_src)):
        plan = compile_source(text, "demo.iq", cat).plan
        for _ in range(repeats):
            before = _load()
            with tempfile.TemporaryDirectory() as work:
                t0 = time.perf_counter()
                _, errs = launch_local(plan, cat_path, DATA, quiet=True, workdir=Path(work), timeout=600)
                wall = time.perf_counter() - t0
            nodes = [(op, float(s)) for _, op, s in PROFILE.findall(errs.get("police", ""))]
            secure = sum(s for _, s in nodes)
            noise = sum(s for op, s in nodes if op == "dp_noise")
            print(f"{label}: wall {wall:.2f} s, secure nodes {secure:.3f} s, dp_noise {noise:.3f} s "
                  f"({100 * noise / secure if secure else 0:.1f}% of secure), load {before} -> {_load()}", flush=True)


INMPC = '''
import math, sys, time
from mpyc.runtime import mpc

async def main(N, L, b, a):
    await mpc.start()
    si = mpc.SecInt(32)
    t0 = time.time()
    n = N * L
    bits = mpc.np_random_bits(si, n * b).reshape(b, n)  # row 0: most significant
    abits = [(a >> (b - 1 - i)) & 1 for i in range(b)]
    lt = eq = None
    for i in range(b):  # r < a, bitwise from the top: sum over a_i = 1 of (1 - r_i) * prod_{j<i} [r_j = a_j]
        r = bits[i]
        if abits[i]:
            t = (1 - r) if eq is None else (1 - r) * eq
            lt = t if lt is None else lt + t
        e = r if abits[i] else 1 - r
        eq = e if eq is None else eq * e
    s = lt.reshape(N, L)
    step = 1
    while step < L:  # prefix products: trial j survives iff trials 0..j all succeeded
        s = mpc.np_hstack([s[:, :step], s[:, step:] * s[:, :-step]])
        step *= 2
    g = mpc.np_sum(s, axis=1)
    await mpc.output(g[: N // 2] - g[N // 2:])
    if mpc.pid == 0:
        print(f"inmpc N={N} L={L} b={b}: {time.time() - t0:.2f} s", flush=True)
    await mpc.shutdown()

N, L, b = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
mpc.run(main(N, L, b, math.floor(math.exp(-float(sys.argv[4])) * 2 ** b)))
'''


def inmpc(n: int, trials: int, b: int, eps: float = 0.25) -> None:
    import subprocess

    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "inmpc.py"
        script.write_text(INMPC, encoding="utf-8")
        before = _load()
        out = subprocess.run([sys.executable, str(script), str(n), str(trials), str(b), str(eps), "-M3",
                              "--output-file"], cwd=work, capture_output=True, text=True, timeout=3600)
        print(out.stdout.strip() or out.stderr[-2000:], f"(load {before} -> {_load()})", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["demo"]:
        demo(int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 1)
    elif sys.argv[1:2] == ["inmpc"]:
        inmpc(*map(int, sys.argv[2:5]))
    else:
        print(__doc__)
        sys.exit(2)
