"""Faults during a run of real parties (`iq party` processes started here, one per party).

* a party killed mid-run: the others stop within 30 s (exit 5), nothing is printed or written;
* a party that hangs: the others' watchdog stops them after --timeout (exit 6);
* a party that never starts: the others give up after --connect-timeout, naming it;
* two parties with different plans: all stop at the handshake, before any data is shared;
* a port already in use: that party says so at once; the others time out naming it.
"""
from __future__ import annotations

import signal
import socket
import time

import pytest

from insightql.compiler.check.catalog import load_catalog

from conftest import CATALOG, Parties, compile_plan, printed_lines

pytestmark = pytest.mark.mpc

CAT = load_catalog(CATALOG)
HEAVY = """@purpose research
SELECT exp_Type, prs_Gender, COUNT(*) AS n, AVG(prs_Age) AS age, VAR(prs_Age) AS spread,
       MEDIAN(prs_Age) AS mid, AVG(debt_eur) AS debt
FROM police_victims UNION ALL ngo_clients
GROUP BY exp_Type, prs_Gender;"""
LIGHT = """@purpose research
SELECT exp_Region, COUNT(*) AS n
FROM police_victims UNION ALL ngo_clients
GROUP BY exp_Region;"""


def assert_nothing_released(parties: Parties, names) -> None:
    for name in names:
        assert printed_lines(parties.out.get(name, "")) == [], parties.out[name]
        assert not parties.result_path(name).exists()


@pytest.fixture
def heavy_plan():
    return compile_plan(HEAVY, CAT)


def test_party_killed_mid_run(tmp_path, corpus_data, heavy_plan):
    parties = Parties(heavy_plan, corpus_data, tmp_path).start()
    try:
        assert parties.wait_for_line("helper", "secure steps", timeout=60), parties.stderr("helper")
        parties.kill("helper", signal.SIGKILL)
        t0 = time.monotonic()
        others = ["police", "ngo"]  # computing; helpline receives without computing
        codes = parties.wait(timeout=30, names=others + ["helpline"])
        elapsed = time.monotonic() - t0
    finally:
        parties.stop_all()
    assert all(codes[n] is not None for n in others), f"still running after 30 s: {codes}"
    assert elapsed < 30
    errs = {name: parties.stderr(name) for name in others}
    for name, err in errs.items():
        assert codes[name] == 5, err
        assert "lost the connection to party " in err, err
    # A party stops as soon as it loses any peer, so a busy party may see another survivor
    # leave before it sees the helper go; the first survivor to stop can only have seen the helper.
    assert any("lost the connection to party helper" in err for err in errs.values()), errs
    out_only = parties.stderr("helpline")
    assert codes["helpline"] == 5 and "before it delivered its shares" in out_only, out_only
    assert_nothing_released(parties, others + ["helpline"])


def test_party_that_hangs_stops_at_the_watchdog(tmp_path, corpus_data, heavy_plan):
    parties = Parties(heavy_plan, corpus_data, tmp_path, extra=["--timeout", "8"]).start()
    try:
        assert parties.wait_for_line("helper", "secure steps", timeout=60), parties.stderr("helper")
        parties.kill("helper", signal.SIGSTOP)
        others = ["police", "ngo"]
        codes = parties.wait(timeout=30, names=others + ["helpline"])
    finally:
        parties.kill("helper", signal.SIGCONT)
        parties.stop_all()
    # each stops at its own watchdog (6), or first sees a peer stopped by its watchdog (5)
    assert all(codes[n] in (5, 6) for n in others), {n: parties.stderr(n) for n in others}
    assert any(codes[n] == 6 and "did not finish within 8 s" in parties.stderr(n) for n in others)
    assert codes["helpline"] in (5, 6), parties.stderr("helpline")  # its own watchdog, or the links closed
    assert_nothing_released(parties, others + ["helpline"])


def test_party_that_never_starts(tmp_path, corpus_data):
    plan = compile_plan(LIGHT, CAT)
    parties = Parties(plan, corpus_data, tmp_path, extra=["--connect-timeout", "4"])
    others = ["police", "ngo"]
    t0 = time.monotonic()
    parties.start(others + ["helpline"])  # helper never starts
    try:
        codes = parties.wait(timeout=40)
    finally:
        parties.stop_all()
    assert time.monotonic() - t0 < 4 + 20
    for name in others:
        err = parties.stderr(name)
        assert codes[name] not in (0, None), err
        # the first to time out names helper; a peer that sees it leave first also names helper
        assert ("not connected within 4 s to helper at 127.0.0.1:" in err
                or "left while the parties were connecting; not connected to helper" in err), err
        assert "Traceback" not in err
    out_only = parties.stderr("helpline")  # told by the computing parties that gave up, not left waiting
    assert codes["helpline"] == 4 and "stopped before the handshake" in out_only, out_only
    assert_nothing_released(parties, others + ["helpline"])


def test_parties_with_different_plans_stop_before_sharing(tmp_path, corpus_data):
    plan = compile_plan(LIGHT, CAT)
    other = compile_plan(LIGHT.replace("exp_Region", "exp_Type"), CAT)
    assert other["hash"] != plan["hash"]
    parties = Parties(plan, corpus_data, tmp_path, plans={"ngo": other})
    codes = parties.run_to_end(timeout=60)
    for name in plan["parties"]:
        err = parties.stderr(name)
        assert codes[name] == 4, err
        assert "parties run different plans" in err and "no data was shared" in err, err
        assert "secure steps" not in err
    assert "(ngo differ from police's plan hash)" in parties.stderr("police")
    assert codes["helpline"] == 4 and "ngo runs a different plan" in parties.stderr("helpline")
    assert_nothing_released(parties, parties.names)


def test_port_in_use(tmp_path, corpus_data):
    plan = compile_plan(LIGHT, CAT)
    parties = Parties(plan, corpus_data, tmp_path, extra=["--connect-timeout", "4"])
    port = parties.config.party[1].port  # ngo listens (party 0 only dials out)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind(("0.0.0.0", port))
        blocker.listen(1)
        parties.start()
        codes = parties.wait(timeout=40)
    finally:
        blocker.close()
        parties.stop_all()
    err = parties.stderr("ngo")
    assert codes["ngo"] == 1, err
    assert f"port {port} is in use" in err and "Traceback" not in err
    # the others stop too: those that ngo should have dialled time out naming it; police, whose
    # dial was answered by the program on the port, loses its peers as they stop
    others = ("police", "helpline", "helper")
    for name in others:
        assert codes[name] not in (0, None), parties.stderr(name)
    named = [n for n in others if "not connected within 4 s to ngo" in parties.stderr(n)]
    assert named, {n: parties.stderr(n) for n in others}
    assert_nothing_released(parties, plan["parties"])


def _party_processes(marker: str) -> list[str]:
    """Command lines of live party processes whose arguments contain `marker`: `iq party` started as
    a fresh interpreter, or forked from `iq run` (its command line is iq run's, its name iq-party)."""
    import subprocess as sp
    from insightql.runtime.launch.launcher import PARTY_PROCESS_NAME
    out = sp.run(["ps", "-ww", "-eo", "stat=,comm=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if marker in line and (" party " in line or line.split()[1:2] == [PARTY_PROCESS_NAME])
            and not line.lstrip().startswith("Z")]


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_stopping_iq_run_stops_every_party(tmp_path, corpus_data, how):
    """Ctrl-C, SIGTERM or a CI timeout's SIGKILL of `iq run` leaves no party computing."""
    import shutil
    import subprocess as sp
    import sys

    import uuid
    catalog = tmp_path / f"catalog-{uuid.uuid4().hex}.toml"  # a unique name: it marks this run's parties in `ps`
    shutil.copy(CATALOG, catalog)
    marker = catalog.name
    query = tmp_path / "q.iq"
    query.write_text(HEAVY)
    proc = sp.Popen([sys.executable, "-m", "insightql.runtime.cli", "run", str(query), "--catalog", str(catalog),
                     "--data", f"police={corpus_data['police_victims']}", "--data",
                     f"ngo={corpus_data['ngo_clients']}", "--timeout", "120"],
                    stdout=sp.PIPE, stderr=sp.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _party_processes(marker):
            time.sleep(0.1)
        if not _party_processes(marker):
            proc.kill()
            raise AssertionError("no party started: " + proc.communicate()[1])
        time.sleep(1.5)  # into the run
        proc.send_signal(how)
        _, err = proc.communicate(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _party_processes(marker):
            time.sleep(0.1)
        assert _party_processes(marker) == [], err
        if how != signal.SIGKILL:
            assert proc.returncode == 130 and "stopped by the user" in err, err
    finally:
        proc.kill()
        sp.run(["pkill", "-KILL", "-f", marker])
