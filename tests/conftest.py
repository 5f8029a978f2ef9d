"""Shared fixtures and helpers of the runtime acceptance tests.

* the `mpc` marker: tests that start real MPyC party processes (CPU heavy; `-m "not mpc"` skips them);
* `corpus_data`: one session-wide folder of random CSVs, one per dataset of the corpus catalog;
* helpers to compile a query, run the plaintext oracle, run real parties (at most two runs at a
  time, whatever the threads) and compare the two result tables cell by cell.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from insightql.compiler.check.catalog import Catalog, load_catalog
from insightql.compiler.plaintext.oracle import run_plan_plaintext
from insightql.compiler.pipeline import compile_source
from insightql.compiler.plaintext.results import ResultTable, Suppressed
from insightql.runtime.data.loader import load_dataset

from randdata import random_rows, write_csv

TESTS = Path(__file__).resolve().parent
CATALOG = TESTS / "corpus" / "catalog.toml"
CATALOG5 = TESTS / "catalog5.toml"
CORPUS_ROWS = 250  # per dataset: small, so a run takes seconds, yet cells of size around k occur
MPC_TIMEOUT = 120  # seconds for one run of all parties (the parties' own watchdog)
AVG_REL = 1e-3  # averages and variances: fixed-point results within this relative error

_MPC_SLOTS = threading.BoundedSemaphore(2)  # never more than two runs of parties at once


def pytest_configure(config):
    config.addinivalue_line("markers", "mpc: starts real MPyC party processes (slow, CPU heavy)")


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def corpus_catalog() -> Catalog:
    return load_catalog(CATALOG)


@pytest.fixture(scope="session")
def corpus_data(tmp_path_factory, corpus_catalog) -> dict[str, str]:
    """{dataset: csv path} with CORPUS_ROWS random rows per dataset of the corpus catalog."""
    folder = tmp_path_factory.mktemp("corpus-data")
    rng = np.random.default_rng(20240611)
    return {name: str(write_csv(folder / f"{name}.csv", ds, random_rows(ds, CORPUS_ROWS, rng)))
            for name, ds in corpus_catalog.datasets.items()}


@pytest.fixture(scope="session")
def mpc_pool():
    """Runs of parties in the background, two at a time, so a module can queue all its runs."""
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mpc")
    yield pool
    pool.shutdown(wait=False, cancel_futures=True)


# -- helpers ----------------------------------------------------------------------------------
def compile_plan(text: str, catalog: Catalog, name: str = "q.iq") -> dict:
    res = compile_source(text, name, catalog)
    if res.plan is None:
        raise AssertionError("query does not compile:\n" + "\n".join(d.render() for d in res.diagnostics)
                             + "\n" + text)
    return res.plan


def load_tables(plan: dict, catalog: Catalog, data: dict[str, str]) -> dict:
    """{load node id: (table, rows)} and {dataset: the first of its loads}: the guard may read a
    dataset a second time with an earlier query's column types."""
    tables = {}
    for n in plan["nodes"]:
        if n["op"] == "load":
            d = n["attrs"]["dataset"]
            tables[n["id"]] = load_dataset(data[d], d, catalog.datasets[d], n["attrs"]["columns"])
            tables.setdefault(d, tables[n["id"]])
    return tables


def oracle_result(plan: dict, catalog: Catalog, data: dict[str, str]) -> ResultTable:
    return run_plan_plaintext(plan, load_tables(plan, catalog, data))


def run_mpc(plan: dict, data: dict[str, str], catalog_path: Path = CATALOG, **kw) -> ResultTable:
    """One real run of every party (one OS process each); retried once if a port was taken
    between choosing it and listening on it (another test's run)."""
    from insightql.runtime.launch.launcher import LaunchError, launch_local

    kw.setdefault("timeout", MPC_TIMEOUT)
    with _MPC_SLOTS:
        for attempt in range(2):
            try:
                table, _ = launch_local(plan, catalog_path, data, quiet=True, **kw)
                return table
            except LaunchError as e:
                if attempt == 0 and "is in use" in str(e):
                    continue
                raise
    raise AssertionError("unreachable")


def submit_mpc(pool: ThreadPoolExecutor, plan: dict, data: dict[str, str], **kw) -> Future:
    return pool.submit(run_mpc, plan, data, **kw)


def exact_outputs(plan: dict) -> dict[str, bool]:
    """Per value column: True when it is a count or sum (combine -> mask [-> round_down]),
    which MPC must reproduce exactly; False for quotients (AVG, VAR, ...), compared approximately."""
    nodes = {n["id"]: n for n in plan["nodes"]}
    table = next(n for n in plan["nodes"] if n["op"] == "table")
    out = {}
    for o in table["attrs"]["outputs"]:
        if o["kind"] != "value":
            continue
        nid = o["value"]
        while nodes[nid]["op"] in ("mask", "round_down"):
            nid = nodes[nid]["inputs"][0]
        out[o["name"]] = nodes[nid]["op"] == "combine"
    return out


def _cell_equal(got, want, exact: bool, rounded: int | None, rel: float = AVG_REL) -> bool:
    if isinstance(got, Suppressed) or isinstance(want, Suppressed):
        return isinstance(got, Suppressed) and isinstance(want, Suppressed) and got.reason == want.reason
    if got is None or want is None or isinstance(want, (str, bool)):
        return got == want
    if exact:
        return got == want
    slack = 10.0 ** -rounded if rounded is not None else 0.0  # ROUND() after a tiny error may flip a digit
    return math.isclose(got, want, rel_tol=rel, abs_tol=1e-6 + slack)


def assert_same_result(plan: dict, got: ResultTable, want: ResultTable, rel: float = AVG_REL) -> None:
    """MPC result == oracle result: same columns and rows, counts and sums exact, quotients within
    `rel` (relative), suppressed cells suppressed in both for the same reason."""
    assert got.columns == want.columns
    table = next(n for n in plan["nodes"] if n["op"] == "table")
    outputs = table["attrs"]["outputs"]
    exact = exact_outputs(plan)
    g_rows, w_rows = got.rows, want.rows
    approx_order = any(not exact.get(outputs[i]["name"], True) for i, _ in table["attrs"]["order_by"])
    if approx_order and table["attrs"]["limit"] is None:  # near-ties of quotients may swap: compare by keys
        keys = [i for i, o in enumerate(outputs) if o["kind"] == "key"]
        g_rows = sorted(g_rows, key=lambda r: [str(r[i]) for i in keys])
        w_rows = sorted(w_rows, key=lambda r: [str(r[i]) for i in keys])
    assert len(g_rows) == len(w_rows), f"{len(g_rows)} rows from MPC, {len(w_rows)} from the oracle"
    for r, (g, w) in enumerate(zip(g_rows, w_rows)):
        for o, gv, wv in zip(outputs, g, w):
            rounded = o["round"]["round"] if o.get("round") else None
            ok = _cell_equal(gv, wv, exact.get(o["name"], True), rounded, rel)
            assert ok, f"row {r} column {o['name']}: MPC {gv!r} != oracle {wv!r}\nMPC row {g}\noracle row {w}"
    assert got.notes == want.notes


# -- parties started one by one (`iq party` processes), for fault and bad-data tests ------------
class Parties:
    """`iq party` processes of one run, started by the test itself; stderr is read live."""

    def __init__(self, plan: dict, data: dict[str, str], workdir: Path, *, catalog_path: Path = CATALOG,
                 plans: dict[str, dict] | None = None, extra: list[str] = (), env: dict | None = None):
        from insightql.compiler.plan.plan_io import dump_plan
        from insightql.runtime.launch.parties import free_loopback_config

        self.plan, self.workdir = plan, Path(workdir)
        self.names = plan["parties"] + plan.get("output_parties", [])  # computing, then output-only receivers
        self.config = free_loopback_config(self.names)
        (self.workdir / "parties.toml").write_text(self.config.to_toml(), encoding="utf-8")
        self.procs: dict[str, subprocess.Popen] = {}
        self.err: dict[str, list[str]] = {}
        self.out: dict[str, str] = {}
        self._threads = []
        self._catalog_path, self._data, self._extra, self._env = catalog_path, data, list(extra), env or {}
        self._plans = plans or {}
        self._dump = dump_plan

    def cmd(self, name: str) -> list[str]:
        plan = self._plans.get(name, self.plan)
        plan_path = self.workdir / f"plan-{name}.json"
        plan_path.write_text(self._dump(plan), encoding="utf-8")
        cmd = [sys.executable, "-m", "insightql.runtime.cli", "party", "--plan", str(plan_path),
               "--party", name, "--parties", str(self.workdir / "parties.toml"),
               "--catalog", str(self._catalog_path), "--out", str(self.result_path(name)), *self._extra]
        for d, v in plan["datasets"].items():
            if v["owner"] == name and d in self._data:
                cmd += ["--data", f"{d}={self._data[d]}"]
        return cmd

    def result_path(self, name: str) -> Path:
        return self.workdir / f"result-{name}.json"

    def start(self, names: list[str] | None = None) -> "Parties":
        for name in names or self.names:
            p = subprocess.Popen(self.cmd(name), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, start_new_session=True, env={**os.environ, **self._env})
            self.procs[name], self.err[name] = p, []
            t = threading.Thread(target=self._pump, args=(name, p), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _pump(self, name, p):
        for line in p.stderr:
            self.err[name].append(line)

    def stderr(self, name: str) -> str:
        return "".join(self.err[name])

    def wait_for_line(self, name: str, text: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.stderr(name):
                return True
            if self.procs[name].poll() is not None:
                return text in self.stderr(name)
            time.sleep(0.02)
        return False

    def wait(self, timeout: float, names: list[str] | None = None) -> dict[str, int | None]:
        """Exit codes of the parties (None: still running after `timeout` s; it is then killed)."""
        end = time.monotonic() + timeout
        codes = {}
        for name in names or list(self.procs):
            p = self.procs[name]
            try:
                p.wait(timeout=max(0.1, end - time.monotonic()))
                codes[name] = p.returncode
            except subprocess.TimeoutExpired:
                codes[name] = None
            self.out[name] = p.stdout.read() if p.poll() is not None else ""
        for t in self._threads:
            t.join(timeout=1)
        return codes

    def kill(self, name: str, sig=None) -> None:
        os.kill(self.procs[name].pid, sig or signal.SIGKILL)

    def stop_all(self) -> None:
        """Kill what is still running (only the processes this object started)."""
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()

    def run_to_end(self, timeout: float) -> dict[str, int | None]:
        """Start every party, wait for all (up to `timeout`), stop what is left; the exit codes."""
        self.start()
        try:
            return self.wait(timeout=timeout)
        finally:
            self.stop_all()


MPYC_LOG_LINE = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ "


def printed_lines(stdout: str) -> list[str]:
    """What a party printed on stdout besides MPyC's own log lines (a result table would be here)."""
    import re
    return [line for line in stdout.splitlines() if line.strip() and not re.match(MPYC_LOG_LINE, line)]
