"""Record-linkage benchmarks (issue 6): writes benchmarks/LINKAGE.md.

3 parties as 3 OS processes over loopback TCP (police, ngo, shelter; benchmarks/linkage_catalog.toml),
keys unique per party, about 30% overlap:
* JOIN + GROUP BY (5 genders x 4 regions = 20 groups) + COUNT and AVG, n x n rows, growing n;
* COUNT(DISTINCT person_id) over the UNION ALL of three datasets of n rows each;
* an all-pairs equality baseline written directly in MPyC (every left key against every right key,
  one vectorised zero test of l = 50 bits, COUNT of matches), small sizes, extrapolated.
Times are wall clock of the whole run (start of the party processes to the result), one run each.
Growth exponents are least-squares slopes of log(time) against log(n).

    .venv/bin/python benchmarks/linkage.py [--budget SECONDS]
    .venv/bin/python benchmarks/linkage.py --report-only        (LINKAGE.md from linkage_results.json)
    .venv/bin/python benchmarks/linkage.py baseline N -M3      (one baseline run; used internally)
"""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CATALOG = HERE / "linkage_catalog.toml"
GENDERS = ["Feminine", "Masculine", "TransgenderFeminine", "TransgenderMasculine", "Other"]
REGIONS = ["North", "East", "South", "West"]

JOIN = """SELECT p.exp_Region, n.prs_Gender, COUNT(*) AS rows_, AVG(n.prs_Age) AS age
FROM police_victims p JOIN ngo_clients n ON p.person_id = n.person_id
GROUP BY p.exp_Region, n.prs_Gender;"""
DISTINCT = """SELECT COUNT(DISTINCT person_id) AS persons
FROM police_victims UNION ALL ngo_clients UNION ALL shelter_stays;"""


def write_data(folder: Path, n: int, seed: int = 7) -> dict[str, str]:
    import numpy as np
    rng = np.random.default_rng(seed)
    universe = rng.choice(2 ** 48, size=3 * n, replace=False)
    shared = universe[: int(0.3 * n)]  # about 30% of each dataset's keys are also in the others
    own = universe[int(0.3 * n):]
    out = {}
    for i, name in enumerate(("police_victims", "ngo_clients", "shelter_stays")):
        rest = own[i * (n - shared.size):(i + 1) * (n - shared.size)]
        keys = rng.permutation(np.concatenate([shared, rest]))[:n]
        path = folder / f"{name}.csv"
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["person_id", "case_id", "prs_Gender", "exp_Region", "prs_Age", "hours_worked_week", "debt_eur"])
            for j, k in enumerate(keys):
                w.writerow([int(k), j + 1, GENDERS[rng.integers(5)], REGIONS[rng.integers(4)], rng.integers(0, 100),
                            rng.integers(0, 121), f"{rng.uniform(0, 1000):.2f}"])
        out[name] = str(path)
    return out


def run_query(text: str, n: int) -> float:
    from insightql.compiler.catalog import load_catalog
    from insightql.compiler.pipeline import compile_source
    from insightql.runtime.launcher import launch_local

    cat = load_catalog(CATALOG)
    plan = compile_source(text, "bench.iq", cat).plan
    with tempfile.TemporaryDirectory() as tmp:
        data = write_data(Path(tmp), n)
        t0 = time.perf_counter()
        table, _ = launch_local(plan, CATALOG, data, quiet=True, timeout=1800)
        dt = time.perf_counter() - t0
    assert table is not None
    return dt


# -- the all-pairs baseline, written directly in MPyC ---------------------------------------------
def baseline_party(n: int) -> None:
    import numpy as np
    from mpyc.runtime import mpc

    async def main():
        await mpc.start()
        secint = mpc.SecInt(52)
        rng = np.random.default_rng(3)
        keys = rng.choice(2 ** 48, size=2 * n, replace=False)
        left = keys[:n]
        right = np.concatenate([left[: int(0.3 * n)], keys[n: 2 * n - int(0.3 * n)]])
        a = mpc.input(secint.array(np.array(left, dtype=object)), senders=0)
        b = mpc.input(secint.array(np.array(right, dtype=object)), senders=1)
        t0 = time.perf_counter()
        diff = a.reshape(n, 1) - b.reshape(1, n)
        eq = mpc.np_sgn(diff.reshape(n * n), l=50, EQ=True)
        count = await mpc.output(mpc.np_sum(eq))
        assert int(count) == int(0.3 * n), count
        if mpc.pid == 0:
            print(f"BASELINE {n} {time.perf_counter() - t0:.3f}", flush=True)
        await mpc.shutdown()

    mpc.run(main())


def run_baseline(n: int) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "baseline", str(n), "-M3", "--no-log"], capture_output=True,
                         text=True, timeout=1800)
    if "BASELINE" not in out.stdout:
        raise RuntimeError(out.stdout + out.stderr)
    return time.perf_counter() - t0


NOTES = [
    "* Where the time goes (measured separately, same machine, quieter moment): `mpc.np_sort` of 1,000 "
    "packed rows of 72 bits took 50.5 s (34-bit values: 21.5 s); in a 500 x 500 join the sort took 44.8 s "
    "and everything after it (bit extraction, key equality, segmented scan, one-hot, matrix product) 4.0 s. "
    "The sort is the whole cost; its comparisons are as wide as the packed rows (48-bit keys + payload).",
    "* The runs above shared the 2 cores with other developers' jobs (load average 10-40 during the join "
    "runs), so the fitted exponent over-states the growth; Batcher's network is n log^2 n by construction "
    "(from the sort-only figure: 20,000 rows ~ 50 s x 20 x (log 20000 / log 1000)^2 ~ 35 min).",
    "* Targets of issue 6 not met: the oblivious design at 10k x 10k is estimated at 35 min (quiet) to hours "
    "(loaded), not 10 min. Levers, not done: narrower sort keys (sort by a 20-bit rank after a shuffle), a "
    "radix/quick sort after a shuffle (ORQ), fewer rounds per layer, and the fast design (spec/linkage.md "
    "section 6) behind a policy opt-in.",
]


def slope(points: list[tuple[int, float]]) -> float:
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main(budget: float) -> None:
    start = time.perf_counter()
    res: dict[str, list[tuple[int, float]]] = {"join": [], "distinct": [], "baseline": []}

    def left() -> float:
        return budget - (time.perf_counter() - start)

    for n in (50, 100, 200):
        res["baseline"].append((n, run_baseline(n)))
        print("baseline", res["baseline"][-1], flush=True)
    for n in (250, 500, 1000, 2000, 4000):
        if res["join"] and res["join"][-1][1] * 2.6 > left():
            break
        res["join"].append((n, run_query(JOIN, n)))
        print("join", res["join"][-1], flush=True)
    for n in (250, 500, 1000, 2000):
        if res["distinct"] and res["distinct"][-1][1] * 2.6 > left():
            break
        res["distinct"].append((n, run_query(DISTINCT, n)))
        print("distinct", res["distinct"][-1], flush=True)
    (HERE / "linkage_results.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    write_report(res)


def write_report(res: dict) -> None:
    ej, ed, eb = (slope(res[k]) if len(res[k]) > 1 else float("nan") for k in ("join", "distinct", "baseline"))
    fitted = (lambda e: f"e = {e:.2f}" if e == e else "not fitted (one size within the time budget)")
    nb, tb = res["baseline"][-1]
    base_10k = tb * (10000 / nb) ** 2  # all pairs: quadratic by construction
    nj, tj = res["join"][-1]
    join_10k = tj * (10000 / nj) ** ej
    lines = [
        "# Record linkage: measured costs",
        "",
        "Made by `benchmarks/linkage.py` (one run per size; runs vary up to 2x). 3 parties as 3 OS processes "
        "over loopback TCP on this 2-core machine (the processes share the cores), MPyC 0.11, keys unique per "
        "party, about 30% overlap. Times are wall clock from starting the parties to the result, including "
        "start-up (about 1 s), data loading and the handshake. Design: spec/linkage.md (oblivious, sort-based).",
        "",
        "## JOIN + GROUP BY 20 groups + COUNT(*) and AVG, n x n rows",
        "| n (each side) | time (s) |", "|---|---|",
        *[f"| {n:,} | {t:.1f} |" for n, t in res["join"]],
        "",
        f"Fitted growth exponent (time ~ n^e): e = {ej:.2f}. Extrapolated to 10,000 x 10,000: "
        f"about {join_10k / 60:.0f} min (the sort dominates: Batcher's network, (log n)^2/2 rounds).",
        "",
        "## COUNT(DISTINCT person_id) over UNION ALL of three datasets of n rows",
        "| n (each dataset) | time (s) |", "|---|---|",
        *[f"| {n:,} | {t:.1f} |" for n, t in res["distinct"]],
        "",
        f"Fitted growth exponent: {fitted(ed)}.",
        "",
        "## Baseline: all-pairs equality written directly in MPyC",
        "Every left key against every right key (n^2 zero tests of 48-bit differences, l = 50, vectorised), "
        "then the number of matches; no grouping, so it is a lower bound for the same join with GROUP BY.",
        "| n x n | time (s) |", "|---|---|",
        *[f"| {n} x {n} | {t:.1f} |" for n, t in res["baseline"]],
        "",
        f"Fitted exponent: {eb:.2f} (quadratic plus start-up). Extrapolated quadratically from {nb} x {nb}: "
        f"10,000 x 10,000 about {base_10k / 3600:.1f} h (and memory: about n^2 x 50 random bits held at once, "
        "far beyond this machine; it would have to be chunked).",
        f"Speed-up of the sort-based join over the baseline at 10,000 x 10,000 (both extrapolated): "
        f"about {base_10k / join_10k:.0f}x.",
        "",
        "## Notes",
        *NOTES,
        "",
    ]
    (HERE / "LINKAGE.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "baseline":
        baseline_party(int(sys.argv[2]))  # MPyC re-runs this argv for the other parties (-M3)
    else:
        if "--report-only" in sys.argv:  # rewrite LINKAGE.md from the last measured results
            write_report({k: [tuple(x) for x in v] for k, v in
                          json.loads((HERE / "linkage_results.json").read_text()).items()})
        else:
            budget = float(sys.argv[sys.argv.index("--budget") + 1]) if "--budget" in sys.argv else 600
            main(budget)
