"""Benchmark runner (`make bench`): InsightQL end to end beside the plaintext floor, a
hand-written MPyC program and (optional) SecretFlow SPU's simulator, per scenario and size;
writes RESULTS.md and a log-log plot (benchmarks/report.py).

    .venv/bin/python benchmarks/run.py                       # the full run (about 10 minutes)
    .venv/bin/python benchmarks/run.py --sizes 1000 --baseline-sizes 30 --repeats 1 --out /tmp/b
    .venv/bin/python benchmarks/run.py --demo --repeats 3   # the shipped demo's first query, phase by phase

Every InsightQL run starts 4 real MPyC party processes on loopback (police, ngo, ngo2 hold data,
helper holds none; benchmarks/catalog.toml). Timings are wall-clock, the minimum of --repeats runs.
The hand-written baseline runs only at --baseline-sizes (SPU at --spu-sizes, when an interpreter
with `spu` is found: --spu-python, $IQ_SPU_PYTHON or this one); other sizes are extrapolated with
a least-squares line t = a + b*rows through the measured points, and marked so.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import baselines  # noqa: E402
import scenarios as sc  # noqa: E402
import spu_peer  # noqa: E402
from report import MPYC, SPU, fmt_mb, fmt_s, peer_at, plot, write_report  # noqa: E402

STAGES = ("loading and validating data", "local steps", "secure steps", "reveal")


# ------------------------------------------------------------------ peak memory of child processes
class PeakMemory:
    """Polls /proc for this process's children and keeps each one's peak RSS (VmHWM), by label."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peaks, self._stop = interval, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.available = Path("/proc/self/status").exists()
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.available:
            self._thread.join()

    def _run(self):
        me = str(os.getpid())
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    if stat[stat.rindex(")") + 2:].split()[1] != me:
                        continue
                    args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    hwm = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
                except (OSError, ValueError):
                    continue
                label = _label([a.decode(errors="replace") for a in args])
                if hwm and label:
                    self.peaks[label] = max(self.peaks.get(label, 0), int(hwm.group(1)) * 1024)
            self._stop.wait(self.interval)


def _label(args: list[str]) -> str | None:
    if any(a.endswith("spu_peer.py") for a in args):
        return "spu"
    for flag in ("--party", "--index"):
        if flag in args:
            return args[args.index(flag) + 1]
    return None


# ------------------------------------------------------------------ one run of each system
def run_insightql(plan: dict, data: dict[str, str]) -> dict:
    from insightql.runtime.launch.launcher import launch_local

    err = io.StringIO()
    with PeakMemory() as mem, contextlib.redirect_stderr(err):
        t0, c0 = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
        table, logs = launch_local(plan, sc.CATALOG, data, quiet=False)
        total, cpu = time.perf_counter() - t0, cpu_seconds(resource.RUSAGE_CHILDREN) - c0
    stages: dict[str, float] = {}
    sent = 0
    for name, text in logs.items():
        line = next((l for l in text.splitlines() if " timings:" in l), "")
        if name == sc.DATA_PARTIES[0]:
            # The first data party's split is exact: its local step runs before any share node.
            # (Another party's local step can fall under "secure steps": plan order puts the
            # first party's share before its own partials node.)
            stages = {k: float(v) for k, v in re.findall(r"([a-z][a-z ]+?) ([0-9.]+)s", line.split("timings:", 1)[-1])}
        m = re.search(r"bytes sent (\d+)", line)
        sent += int(m.group(1)) if m else 0
    out = {"total": total, "cpu": cpu, "bytes": sent, "peak": mem.peaks, "table": table}
    for s in STAGES:
        out[s] = stages.get(s, 0.0)
    out["reveal"] += stages.get("shutdown", 0.0)
    out["startup"] = total - sum(out[s] for s in STAGES)  # processes, imports, connecting, handshake
    return out


def run_plaintext(sql: str, data: dict[str, str]) -> dict:
    c0 = cpu_seconds(resource.RUSAGE_SELF)  # DuckDB runs in this process (its threads included)
    out = baselines.plaintext(sql, data)
    out["cpu"] = cpu_seconds(resource.RUSAGE_SELF) - c0
    return out


def cpu_seconds(who: int) -> float:
    """User + system CPU time of this process (RUSAGE_SELF) or of its waited-for children."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _free_ports(k: int) -> list[int]:
    socks = [socket.socket() for _ in range(k)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_baseline(scn: sc.Scenario, data: dict[str, str], timeout: float = 1800) -> dict:
    ports = ",".join(map(str, _free_ports(4)))
    files = [data[d] for d in sc.DATASETS] + ["-"]
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, str(HERE / "baselines.py"), "party", "--index", str(i),
                                   "--ports", ports, "--data", f, "--groups", ",".join(scn.group_cols),
                                   "--measure", scn.measure], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for i, f in enumerate(files)]
        errors = [p.communicate(timeout=timeout)[1] for p in procs]
        total = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        raise RuntimeError("hand-written MPyC baseline failed:\n" + "\n".join(e[-800:] for e in errors))
    return {"total": total, "peak": mem.peaks}


def _key(values) -> tuple:
    return tuple("" if v is None else str(v).lower() for v in values)


def check_result(table, plain_rows: list[tuple], ngroup: int) -> str | None:
    """Released cells must equal the plaintext result (count exactly, mean to 1e-6): None if so
    and some were released, "" if every cell was suppressed, else what differs."""
    plain = {_key(r[:ngroup]): r[ngroup:] for r in plain_rows}
    released = bad = 0
    for row in table.rows:
        n, mean = row[ngroup], row[ngroup + 1]
        if not isinstance(n, (int, float)):
            continue  # suppressed
        released += 1
        ref = plain.get(_key(row[:ngroup]))
        if ref is None or int(ref[0]) != n or abs(float(ref[1]) - float(mean)) > 1e-6 * max(1.0, abs(float(ref[1]))):
            bad += 1
    if bad:
        return f"{bad} of {released} released cells differ from the plaintext result"
    return None if released else ""


def record(problem: str | None, label: str, checked: list[str], notes: list[str], who: str = "") -> None:
    if problem:
        notes.append(f"{who}RESULT CHECK FAILED, scenario/rows per party {label}: {problem}")
    else:
        checked.append(label + (" (every cell suppressed)" if problem == "" else ""))


def busy_cores(seconds: float = 2.0) -> float | None:
    """Cores busy over the next `seconds` (from /proc/stat; None elsewhere): between runs, that is
    the other jobs on the machine."""
    def sample():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        (t0, i0), _, (t1, i1) = sample(), time.sleep(seconds), sample()
    except (OSError, ValueError, IndexError):
        return None
    return (os.cpu_count() or 1) * (1 - (i1 - i0) / max(t1 - t0, 1))


def wait_quiet(max_wait: float, below: float = 0.5) -> float | None:
    """Wait (at most max_wait s) until other jobs use fewer than `below` cores; their last use."""
    deadline, busy = time.monotonic() + max_wait, busy_cores()
    while busy is not None and busy >= below and time.monotonic() < deadline:
        busy = busy_cores()
    return busy


def best(runs: list[dict]) -> dict:
    """The run with the least wall time, with the least CPU time of all runs."""
    out = dict(min(runs, key=lambda r: r["total"]))
    out["cpu"] = min(r["cpu"] for r in runs)
    return out


# ------------------------------------------------------------------ main
# ------------------------------------------------------------------ the shipped demo (issue 19 item 4)
ROOT = HERE.parent
DEMO_ARGS = ["examples/victims_by_exploitation.iq", "--catalog", "examples/catalog.toml",
             "--data", "police=examples/data/police_victims.csv", "--data", "ngo=examples/data/ngo_clients.csv"]
DEMO_BEGIN, DEMO_END = "<!-- demo: benchmarks/run.py --demo -->", "<!-- /demo -->"
SPAWNS = {"fork": "forked from iq run (the default)", "exec": "a fresh interpreter each (IQ_SPAWN=exec)"}


def _demo_phases(stderr: str) -> dict:
    """Phases of one `iq run` from its stderr: the launcher's own start, and per party its timings line."""
    out: dict = {"parent": None, "parties": {}}
    m = re.search(r"this launcher: ([0-9.]+)s from its start", stderr)
    out["parent"] = float(m.group(1)) if m else None
    for name, rest in re.findall(r"\[(\w+)\] timings: (.*)", stderr):
        steps = {k.strip(): float(v) for k, v in re.findall(r"([a-z][a-z ()':,-]+?) ([0-9.]+)s", rest)}
        m = re.search(r"bytes sent (\d+)", rest)
        steps["bytes"] = int(m.group(1)) if m else 0
        out["parties"][name] = steps
    return out


def run_demo(repeats: int, out: Path) -> int:
    """The first query of `make demo` end to end, `iq run` as a user starts it, alternating the two
    ways of starting the parties in the same run so that their ratio is taken under the same load;
    writes the section between the demo markers of RESULTS.md."""
    iq = Path(sys.executable).with_name("iq")
    runs: list[dict] = []
    for i in range(repeats):
        for spawn in SPAWNS:
            load = os.getloadavg()[0]
            t0, c0 = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
            r = subprocess.run([str(iq), "run", *DEMO_ARGS], cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, "IQ_SPAWN": spawn})
            wall, cpu = time.perf_counter() - t0, cpu_seconds(resource.RUSAGE_CHILDREN) - c0
            if r.returncode != 0 or "SexualExploitation" not in r.stdout:
                raise SystemExit(f"the demo failed ({spawn}):\n{r.stderr[-2000:]}")
            ph = _demo_phases(r.stderr)
            comp = {n: p for n, p in ph["parties"].items() if "loading and validating data" in p}
            row = {"spawn": spawn, "wall": wall, "cpu": cpu, "load": (load, os.getloadavg()[0]), "parent": ph["parent"],
                   "start": max((p.get("process start", 0) for p in ph["parties"].values()), default=0),
                   "checks": max((p["loading and validating data"] for p in comp.values()), default=0),
                   # of the party that was ready last (the others wait for it in these two steps)
                   "connect": max(((p.get("process start", 0) + p["loading and validating data"],
                                    p.get("connecting", 0) + p.get("checking plan and data with all parties", 0))
                                   for p in comp.values()), default=(0, 0))[1],
                   "secure": max((p.get("local steps", 0) + p.get("secure steps", 0) + p.get("reveal", 0)
                                  + p.get("shutdown", 0) for p in comp.values()), default=0),
                   "bytes": sum(p["bytes"] for p in ph["parties"].values())}
            runs.append(row)
            log(f"demo {i + 1}/{repeats} {spawn}: {wall:.2f} s wall, {cpu:.2f} s CPU, load {load:.1f}")
    lines = [DEMO_BEGIN, "## The shipped demo (issue 19 item 4)", "",
             f"`iq run {' '.join(DEMO_ARGS)}` (the first query of `make demo`: 3 computing parties and an "
             "output-only receiver on this machine's 2 cores), started as a user does; "
             f"`benchmarks/run.py --demo --repeats {repeats}`, each run in turn with the parties "
             + " and ".join(f"{k}: {v}" for k, v in SPAWNS.items())
             + ". Phases: *iq run* = the launcher from its start to starting the parties (interpreter, imports, "
             "compile, time estimate); *party start* = from then to a party's first line (the slowest); "
             "*checks + data* = governance preflight (plan hash, recompiling the source with its own catalog and "
             "ledger, approvals) and loading its data (the slowest computing party; MPyC's import too); *connect* = "
             "connecting and the status handshake after that, at the computing party ready last (without TLS a "
             "party connects while it loads); *secure* = local and secure steps, reveal, shutdown. CPU = all processes "
             "(user + system). Load = 1-minute load average before / after the run.", "",
             "| run | parties started | wall | CPU | iq run | party start | checks + data | connect | secure | "
             "bytes sent | load |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k, r in enumerate(runs):
        lines.append(f"| {k // len(SPAWNS) + 1} | {r['spawn']} | {r['wall']:.2f} s | {r['cpu']:.2f} s | "
                     f"{r['parent'] or 0:.2f} s | {r['start']:.2f} s | {r['checks']:.2f} s | {r['connect']:.2f} s | "
                     f"{r['secure']:.2f} s | {r['bytes'] / 1e6:.2f} MB | {r['load'][0]:.1f} / {r['load'][1]:.1f} |")
    for spawn in SPAWNS:
        mine = [r for r in runs if r["spawn"] == spawn]
        lines.append(f"\n{spawn}: best wall {min(r['wall'] for r in mine):.2f} s, least CPU "
                     f"{min(r['cpu'] for r in mine):.2f} s over {len(mine)} run(s).")
    ratio = [a["wall"] / b["wall"] for a, b in zip(runs[::2], runs[1::2])]
    cpu_ratio = [a["cpu"] / b["cpu"] for a, b in zip(runs[::2], runs[1::2])]
    lines += ["", f"Same-run ratios fork / exec: wall {', '.join(f'{x:.2f}' for x in ratio)}; CPU "
              f"{', '.join(f'{x:.2f}' for x in cpu_ratio)}.", DEMO_END]
    _put_demo_section(out / "RESULTS.md", "\n".join(lines))
    log(f"wrote the demo section of {out / 'RESULTS.md'}")
    return 0


def _put_demo_section(path: Path, section: str | None) -> str | None:
    """Replace (or append) the demo section of RESULTS.md; with section None, return the current one."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    a, b = text.find(DEMO_BEGIN), text.find(DEMO_END)
    old = text[a:b + len(DEMO_END)] if a >= 0 and b > a else None
    if section is None:
        return old
    text = text.replace(old, section) if old else text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")
    return old


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000,1000000", help="rows per party, comma-separated")
    ap.add_argument("--baseline-sizes", default="100,300,1000",
                    help="rows per party at which the hand-written MPyC baseline is measured ('' for none)")
    ap.add_argument("--spu-sizes", default="1000,10000",
                    help="rows per party at which the SPU simulator peer runs, if spu is found ('' for none)")
    ap.add_argument("--spu-python", default=None, help="an interpreter with spu and jax (a separate venv)")
    ap.add_argument("--scenarios", default=",".join(s.key for s in sc.SCENARIOS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--repeats-1m", type=int, default=2, help="repeats at 1M rows per party and more")
    ap.add_argument("--out", type=Path, default=HERE, help="folder for RESULTS.md and the plot")
    ap.add_argument("--wait-quiet", type=float, default=0,
                    help="before each run (every system), wait up to this many seconds until other jobs use "
                         "less than half a core (the machine is shared)")
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "insightql-bench",
                    help="cache of generated CSVs")
    ap.add_argument("--demo", action="store_true",
                    help="only the shipped demo's first query end to end (its section of RESULTS.md), --repeats times")
    args = ap.parse_args(argv)
    if args.demo:
        return run_demo(args.repeats, args.out)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    bsizes = [int(s) for s in args.baseline_sizes.split(",") if s]
    spu_sizes = [int(s) for s in args.spu_sizes.split(",") if s]
    spu_python = spu_peer.find_python(args.spu_python) if spu_sizes else None
    chosen = [s for s in sc.SCENARIOS if s.key in args.scenarios.split(",")]
    sc.check_catalog()
    args.out.mkdir(parents=True, exist_ok=True)
    from insightql.compiler.check.catalog import load_catalog
    from insightql.compiler.pipeline import compile_source

    catalog = load_catalog(sc.CATALOG)
    t_start, load0 = time.perf_counter(), os.getloadavg()
    results, notes, checked, checked_spu, points = [], [], [], [], {}
    engine = spu_versions = None
    for scn in chosen:
        res = compile_source(scn.iq, f"bench_{scn.key}.iq", catalog)
        if not res.ok:
            raise SystemExit(f"scenario {scn.key} does not compile: {res.diagnostics}")
        peers = points.setdefault(scn.key, {})
        if scn.baseline:
            for n in bsizes:
                log(f"{scn.key}: hand-written MPyC baseline, {n:,} rows per party ...")
                others = wait_quiet(args.wait_quiet)
                b = run_baseline(scn, sc.make_data(n, args.data_dir))
                peers.setdefault(MPYC, []).append((n, b["total"], max(b["peak"].values(), default=0), others))
                log(f"   {fmt_s(b['total'])}")
        for n in spu_sizes if spu_python else []:
            log(f"{scn.key}: SPU simulator, {n:,} rows per party ...")
            data = sc.make_data(n, args.data_dir)
            others = wait_quiet(args.wait_quiet)
            with PeakMemory() as mem:
                s = spu_peer.run(spu_python, scn, data, sc.DATASETS)
            peers.setdefault(SPU, []).append((n, s["total"], mem.peaks.get("spu", 0), others))
            spu_versions = s["versions"]
            plain = baselines.plaintext(scn.sql, data)["rows"]
            record(check_result(SimpleNamespace(rows=s["rows"]), plain, len(scn.group_cols)), f"{scn.key}/{n:,}",
                   checked_spu, notes, "SPU ")
            log(f"   {fmt_s(s['total'])} (import {s['seconds']['import']:.1f} s, read {s['seconds']['read']:.1f} s, "
                f"MPC {s['seconds']['mpc']:.1f} s)")
        for n in sizes:
            data = sc.make_data(n, args.data_dir)
            reps = args.repeats_1m if n >= 1_000_000 else args.repeats
            log(f"{scn.key}: {n:,} rows per party, {reps} run(s) each ...")
            load_before, others = os.getloadavg()[0], []
            iq_runs, pt_runs = [], []
            for _ in range(reps):
                others.append(wait_quiet(args.wait_quiet))
                iq_runs.append(run_insightql(res.plan, data))
                others.append(wait_quiet(args.wait_quiet))
                pt_runs.append(run_plaintext(scn.sql, data))
            iq, pt = best(iq_runs), best(pt_runs)
            engine = pt["engine"]
            record(check_result(iq["table"], pt["rows"], len(scn.group_cols)), f"{scn.key}/{n:,}", checked, notes)
            row = {"scenario": scn.title, "rows": n, "insightql": iq, "plaintext": pt,
                   "load": (load_before, os.getloadavg()[0]), "peers": {},
                   "others": max((o for o in others if o is not None), default=None)}
            for name, pts in peers.items():
                row["peers"][name] = peer_at(pts, n)
            results.append(row)
            log(f"   InsightQL {fmt_s(iq['total'])} (load {fmt_s(iq['loading and validating data'])}, reveal "
                f"{fmt_s(iq['reveal'])}), plaintext {fmt_s(pt['total'])}, peak {fmt_mb(max(iq['peak'].values(), default=0))}"
                f", load average {load_before:.1f}")
    if spu_python is None:
        notes.append("SecretFlow SPU peer skipped: no interpreter with `spu` and `jax` found (--spu-python, "
                     "$IQ_SPU_PYTHON; see benchmarks/README.md).")
    elif checked_spu:
        notes.append("Every released cell of every SPU run equals the plaintext result "
                     f"({', '.join(checked_spu)}).")
    if checked:
        notes.insert(0, "Every released cell (count and mean) of every InsightQL run above equals the plaintext "
                        f"result ({', '.join(checked)}); suppressed cells are those with fewer than k=10 rows.")
    plot_name, fits = plot(args.out, results, points)
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}",
        "versions": _versions(engine),
        "load": f"{load0[0]:.1f} / {os.getloadavg()[0]:.1f}",
        "elapsed": time.perf_counter() - t_start,
        "argv": " ".join(["benchmarks/run.py"] + (argv if argv is not None else sys.argv[1:])),
        "repeats": args.repeats, "repeats_1m": args.repeats_1m, "engine": engine, "plot": plot_name,
        "fits": fits, "notes": notes, "spu": spu_versions, "wait_quiet": args.wait_quiet,
    }
    demo = _put_demo_section(args.out / "RESULTS.md", None)  # kept: measured by --demo, not by this run
    path = write_report(args.out, results, points, meta, sc.PLACEHOLDERS)
    if demo:
        _put_demo_section(path, demo)
    log(f"wrote {path}" + (f" and {args.out / plot_name}" if plot_name else ""))
    return 0


def _versions(engine: str | None) -> str:
    from importlib.metadata import version
    return f"Python {platform.python_version()}, MPyC {version('mpyc')}, numpy {np.__version__}, plaintext {engine}"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
