"""What the disclosure rules cost: the shipped demo query's secure time, this tree against a baseline.

Issue 14's target: the observer-model rules (spec/disclosure.md) may make the demo query's secure
time at most 1.5x what it was before them. Both trees run the same query on the same data as 5
real MPyC parties on loopback, alternately, so both see the same load; the ratio is taken within
this one run. "Secure time" is police's `secure steps` + `reveal` (MPyC is lazy: the secure work
runs while the parties wait for the reveal). The machine's other jobs are reported beside every
figure (cores busy in the 2 s before each run, from /proc/stat).

    .venv/bin/python benchmarks/disclosure_cost.py --baseline-python /path/to/old/.venv/bin/python
    .venv/bin/python benchmarks/disclosure_cost.py --report-only     # rewrite DISCLOSURE.md

A baseline tree: `git worktree add /tmp/iq-base <commit> && python3 -m venv /tmp/iq-base/.venv &&
/tmp/iq-base/.venv/bin/pip install -e /tmp/iq-base`.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "disclosure_results.json"
REPORT = HERE / "DISCLOSURE.md"
QUERY = "examples/victims_by_exploitation.iq"
DATA = {"police_victims": "examples/data/police_victims.csv", "ngo_clients": "examples/data/ngo_clients.csv",
        "helpline_reports": "examples/data/helpline_reports.csv"}

CHILD = r"""
import json, re, sys, time
from pathlib import Path
root = Path(sys.argv[1])
from insightql.compiler.check.catalog import load_catalog
from insightql.compiler.pipeline import compile_source
from insightql.runtime.launch.launcher import launch_local
cat_path = root / "examples/catalog.toml"
text = (root / sys.argv[2]).read_text()
plan = compile_source(text, "q.iq", load_catalog(cat_path)).plan
data = {d: str(root / p) for d, p in json.loads(sys.argv[3]).items() if d in plan["datasets"]}
t0 = time.perf_counter()
table, logs = launch_local(plan, cat_path, data, quiet=False)
wall = time.perf_counter() - t0
line = next(l for l in logs["police"].splitlines() if " timings:" in l)
stages = {k.strip(): float(v) for k, v in re.findall(r"([a-z][a-z ]+?) ([0-9.]+)s", line.split("timings:", 1)[1])}
print(json.dumps({"wall": wall, "secure": stages.get("secure steps", 0) + stages.get("reveal", 0),
                  "stages": stages, "plan_hash": plan["hash"], "released": table.render()}))
"""


def busy_cores(seconds: float = 2.0) -> float:
    """Cores used by all processes over `seconds` (ours are idle between runs), from /proc/stat."""
    def read():
        parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        vals = [int(x) for x in parts]
        idle = vals[3] + vals[4]
        return sum(vals) - idle, sum(vals)
    b1, t1 = read()
    time.sleep(seconds)
    b2, t2 = read()
    ncpu = len([l for l in Path("/proc/stat").read_text().splitlines() if re.match(r"cpu[0-9]", l)])
    return round(ncpu * (b2 - b1) / max(1, t2 - t1), 2)


def run_once(python: str, root: Path) -> dict:
    load = busy_cores()
    out = subprocess.run([python, "-c", CHILD, str(root), QUERY, json.dumps(DATA)], capture_output=True,
                         text=True, cwd=root, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"run failed with {python}:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["other_cores_before"] = load
    res["loadavg"] = float(Path("/proc/loadavg").read_text().split()[0])
    return res


def measure(args) -> dict:
    variants = {"this tree": (sys.executable, ROOT)}
    if args.baseline_python:
        base_root = Path(args.baseline_root or Path(args.baseline_python).resolve().parents[2])
        variants = {"baseline": (args.baseline_python, base_root), **variants}
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for i in range(args.repeats):
        for name, (py, root) in variants.items():  # alternate, so both see the same load
            r = run_once(py, root)
            runs[name].append(r)
            print(f"[{i + 1}/{args.repeats}] {name}: secure {r['secure']:.2f} s, wall {r['wall']:.2f} s, "
                  f"other jobs {r['other_cores_before']} cores, load {r['loadavg']}", file=sys.stderr)
    return {"query": QUERY, "repeats": args.repeats, "runs": runs,
            "baseline_commit": args.baseline_commit, "date": time.strftime("%Y-%m-%d")}


def report(res: dict) -> str:
    rows = []
    mins = {}
    for name, runs in res["runs"].items():
        sec = [r["secure"] for r in runs]
        mins[name] = min(sec)
        rows.append(f"| {name} | {min(sec):.2f} | {statistics.median(sec):.2f} | "
                    f"{min(r['wall'] for r in runs):.2f} | {max(r['other_cores_before'] for r in runs)} | "
                    f"{min(r['loadavg'] for r in runs)}-{max(r['loadavg'] for r in runs)} | "
                    f"`{runs[0]['plan_hash'][7:19]}` |")
    ratio = ""
    if "baseline" in mins:
        ratio = (f"\nRatio of the minima (this tree / baseline): **{mins['this tree'] / mins['baseline']:.2f}x** "
                 f"(target: at most 1.5x).\n")
    same = ""
    if "baseline" in res["runs"]:
        a, b = res["runs"]["baseline"][0]["released"], res["runs"]["this tree"][0]["released"]
        same = ("\nReleased table: identical in both trees.\n" if a == b else
                "\nReleased table of the baseline:\n\n```\n" + a + "\n```\n\nand of this tree:\n\n```\n" + b + "\n```\n")
    return ("# Cost of the disclosure rules\n\nGenerated by `benchmarks/disclosure_cost.py` (do not edit). "
            f"Query `{res['query']}` on the shipped data, 5 MPyC parties as processes on loopback, "
            f"{res['repeats']} alternating runs per tree on {res['date']}"
            + (f", baseline commit {res['baseline_commit']}" if res.get("baseline_commit") else "") + ".\n"
            "Secure time = police's `secure steps` + `reveal`. Other jobs = cores busy before a run "
            "(at most, over the runs); load = 1-minute load average (our own 5 processes included).\n\n"
            "| tree | secure time, min (s) | median (s) | wall, min (s) | other jobs (cores) | load | plan hash |\n"
            "|---|---:|---:|---:|---:|---|---|\n" + "\n".join(rows) + "\n" + ratio + same)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline-python", help="python of a venv with the baseline tree installed")
    p.add_argument("--baseline-root", help="the baseline tree (default: the venv's parent folder)")
    p.add_argument("--baseline-commit", help="recorded in the report")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    if not args.report_only:
        RESULTS.write_text(json.dumps(measure(args), indent=1) + "\n")
    REPORT.write_text(report(json.loads(RESULTS.read_text())))
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
