"""`iq run`: compile a query, start one OS process per party on loopback, collect the result.

Each process is a real MPyC party (`iq party`) that loads only its own data file and talks
TCP to the others; this module only starts them, waits, and shows what a receiver got.
"""
from __future__ import annotations

import contextlib
import gc
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from insightql.compiler.plan.plan_io import dump_plan
from insightql.compiler.plaintext.results import ResultTable, table_from_json

from insightql.runtime.launch.parties import free_loopback_config
from insightql.runtime.launch.party import EXIT_ABORTED, EXIT_DATA, EXIT_PEER, EXIT_REFUSED, EXIT_TIMEOUT

GRACE = 30  # seconds the other parties get to stop on their own after one has failed


class LaunchError(Exception):
    """A party failed; `code` is the exit code for `iq run` (EXIT_DATA when a party's data is bad)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def launch_local(plan: dict, catalog_path: Path, data: dict[str, str], *, quiet: bool = False,
                 timeout: float = 900, workdir: Path | None = None, allow_fewer: bool = False,
                 env: dict | None = None, tls: bool = False, extra_args: list[str] = (),
                 ledger_dir: Path | None = None) -> tuple[ResultTable | None, dict[str, str]]:
    """Run every party of `plan` as a local process. `data` maps dataset -> CSV path.

    `extra_args` go to every party (approvals, trust); each party's ledger is
    `<ledger_dir or the work folder>/<party>.ledger.jsonl`.
    Returns the table received by the first receiver and each party's stderr text."""
    work = Path(workdir or tempfile.mkdtemp(prefix="iq-run-"))
    work.mkdir(parents=True, exist_ok=True)
    plan_path = work / "plan.json"
    plan_path.write_text(dump_plan(plan), encoding="utf-8")
    # a catalog party that neither computes nor receives is not started
    parties = plan["parties"] + plan.get("output_parties", [])
    tls_dir = None
    if tls:  # a throw-away test CA and one certificate per party, as `iq certs` makes
        from insightql.runtime.launch.certs import make_test_pki
        tls_dir = work / "certs"
        make_test_pki(tls_dir, parties)
    config = free_loopback_config(parties, tls_dir=tls_dir)
    parties_path = work / "parties.toml"
    parties_path.write_text(config.to_toml(), encoding="utf-8")
    owners = {d: v["owner"] for d, v in plan["datasets"].items()}
    procs = {}
    age = _process_age()  # this process before any party starts: interpreter, imports, compile, estimate
    for name in parties:
        cmd = [sys.executable, "-m", "insightql.runtime.cli", "party", "--plan", str(plan_path), "--party", name,
               "--parties", str(parties_path), "--catalog", str(catalog_path), "--out", str(work / f"{name}.json"),
               "--timeout", str(timeout), "--ledger", str(Path(ledger_dir or work) / f"{name}.ledger.jsonl"),
               *extra_args]
        for d, owner in owners.items():
            if owner == name:
                if d not in data:
                    raise LaunchError(f"no data file for dataset {d} of party {name}: add --data {owner}={d}.csv "
                                      f"or --data {d}=FILE")
                cmd += ["--data", f"{d}={data[d]}"]
        if quiet:
            cmd.append("--quiet")
        if allow_fewer:
            cmd.append("--allow-fewer-parties")
        procs[name] = _start_party(cmd, {**(env or {}), "IQ_LAUNCHED_AT": repr(time.time())})
    with _stop_parties_on_exit(procs):
        errors = _wait_all(procs, timeout + 30, quiet, age)
    codes = {n: code for n, (code, _) in errors.items()}  # in the order the parties stopped
    failed = {n: errors[n][1] for n in parties if codes[n] != 0}
    if failed:
        code = EXIT_DATA if EXIT_DATA in codes.values() else EXIT_REFUSED if EXIT_REFUSED in codes.values() else 1
        raise LaunchError(_headline(codes, [n for n in codes if codes[n] != 0], parties) + "\n"
                          + _failure_report(failed), code)
    first = plan["receivers"][0]
    table = table_from_json((work / f"{first}.json").read_text(encoding="utf-8"))
    return table, {n: errors[n][1] for n in parties}


def _start_party(cmd: list[str], env: dict):
    """One party process running `iq party` (cmd is its full command line). Where the platform
    can fork, the process is a fork of this one: it starts with the interpreter and the modules
    `iq run` has already imported (the compiler, numpy: about 0.5-0.9 s of CPU per party on this
    machine, spec/runtime.md "Fixed cost of a small run") instead of importing them again, and
    then runs exactly the code of `iq party`: it reads the plan, catalog, parties file and data
    from disk and checks them itself, using nothing this process computed. MPyC is imported
    only in the child (this process never imports it). IQ_SPAWN=exec (or an environment that
    sets PYTHON* variables, which act only when an interpreter starts, or a process with more
    than one thread, such as a test worker) executes a fresh interpreter instead, as an
    organisation's own `iq party` does."""
    if (not hasattr(os, "fork") or sys.platform != "linux" or os.environ.get("IQ_SPAWN") == "exec"
            or env.get("IQ_SPAWN") == "exec" or any(k.startswith("PYTHON") for k in env)
            or "mpyc" in sys.modules or threading.active_count() > 1):  # fork only a single-threaded process
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, env={**os.environ, **env}, preexec_fn=_die_with_parent)
    return _Forked(cmd, env)


class _Forked:
    """The part of subprocess.Popen the launcher uses, for a forked `iq party`."""

    def __init__(self, cmd: list[str], env: dict):
        """cmd: [python, "-m", module, args...], run in the child as `python -m` runs it (runpy)."""
        module = cmd[cmd.index("-m") + 1]
        argv = cmd[cmd.index("-m") + 2:]
        sys.stdout.flush()
        sys.stderr.flush()
        read, write = os.pipe()
        gc.freeze()  # the child's collections skip what this process made (and leave its pages shared)
        try:
            pid = os.fork()
        except BaseException:
            gc.unfreeze()
            raise
        if pid:
            gc.unfreeze()
        if pid == 0:  # the party: never returns into the launcher's code
            code = 1
            try:
                os.setsid()  # own session, as start_new_session: the terminal's Ctrl-C goes to iq run only
                gc.enable()  # as in a new interpreter (`iq run` pauses the collector while it starts them)
                _die_with_parent()
                _set_process_name(PARTY_PROCESS_NAME)  # its command line stays iq run's: `ps -o comm` tells them apart
                os.close(read)
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                os.dup2(write, 2)
                os.close(write)
                os.close(null)
                # fresh streams on fds 1 and 2, no inherited log handlers: as in a new interpreter (a
                # test runner's capture objects, for instance, write elsewhere)
                sys.stdout = sys.__stdout__ = open(1, "w", closefd=False)  # noqa: SIM115
                sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
                import logging
                logging.root.handlers.clear()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
                os.environ.update(env)
                sys.argv = [cmd[0], *argv]
                import runpy
                runpy.run_module(module, run_name="__main__", alter_sys=True)  # exits with SystemExit
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (print(e.code, file=sys.stderr) or 1)
            except BaseException:  # noqa: BLE001 - as an uncaught exception in `iq party`: traceback, exit 1
                import traceback
                traceback.print_exc()
                code = 1
            finally:
                try:
                    import logging
                    logging.shutdown()
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code if isinstance(code, int) else 1)
        os.close(write)
        self.pid, self.returncode = pid, None
        self.stderr = os.fdopen(read, "r", encoding="utf-8", errors="replace")

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self):
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def _headline(codes: dict[str, int], order: list[str], parties: list[str] = ()) -> str:
    """Which party stopped the run: one whose data is bad or that refused the plan (the others stop
    at the handshake because of it; named in the order of `parties`), else the first to stop
    (`order` is the order they stopped in)."""
    why = {EXIT_DATA: "invalid data", EXIT_REFUSED: "refused the plan", EXIT_PEER: "lost a peer",
           EXIT_TIMEOUT: "timed out", EXIT_ABORTED: "stopped at the handshake"}
    culprits = sorted((n for n in order if codes[n] in (EXIT_DATA, EXIT_REFUSED)),
                      key=lambda n: list(parties).index(n) if n in parties else len(parties)) or order[:1]
    by_why: dict[str, list[str]] = {}  # parties that stopped for the same kind of reason, named together
    for n in culprits:
        by_why.setdefault(why.get(codes[n], f"killed by signal {-codes[n]}" if codes[n] < 0 else
                                  f"exit code {codes[n]}"), []).append(n)
    said = [f"{', '.join(ns[:-1])} and {ns[-1]}" if len(ns) > 1 else ns[0] for ns in by_why.values()]
    at_handshake = all(c in (0, EXIT_DATA, EXIT_REFUSED, EXIT_ABORTED) for c in codes.values())
    return (f"the run stopped because of part{'ies' if len(culprits) > 1 else 'y'} "
            + ", ".join(f"{names} ({w})" for names, w in zip(said, by_why))
            + ("; every party stopped at the handshake, no data was shared" if at_handshake else ""))


_HANDSHAKE = "run stopped before any data was shared: "  # what a party says when another stopped the run


def _failure_report(failed: dict[str, str]) -> str:
    """Each failed party's reasons once: one block per party that gave its own (its error lines, or
    its last lines if it crashed), without what the others' blocks say (its handshake line "run
    stopped ...: party X cannot take part: ...", "receiver X cannot take part" when X failed); the
    parties that only stopped at the handshake because of those are named in one line."""
    own, followers = {}, {}
    for name, err in failed.items():
        lines = [l for l in err.splitlines() if l.startswith(("error", "iq:", "  "))]
        if not any(l.startswith(("error", "iq:")) for l in lines):
            lines = err.strip().splitlines()[-8:]
        said = [l.removeprefix(f"error: [{name}] ") for l in lines]
        others = {l: t for l, t in zip(lines, said) if t.startswith(_HANDSHAKE)
                  or any(t.startswith(f"receiver {r} cannot take part: ") for r in failed)}
        own[name] = list(dict.fromkeys(l for l in lines if l not in others)) or list(dict.fromkeys(lines))
        if len(others) == len(lines):
            followers[name] = [re.findall(r"(?:^|; )party ([\w.-]+) cannot take part: ", t.removeprefix(_HANDSHAKE))
                               for t in others.values() if t.startswith(_HANDSHAKE)]
    causes = {n for n in failed if n not in followers}
    followers = {n: sorted({c for names in f for c in names}, key=list(failed).index) for n, f in followers.items()
                 if f and all(names and set(names) <= causes and "parties run different plans" not in "".join(own[n])
                              for names in f)}
    out = [f"party {name} failed:\n" + "\n".join("  " + l for l in lines)
           for name, lines in own.items() if name not in followers]
    for cause in dict.fromkeys(", ".join(c) for c in followers.values()):
        names = [n for n, c in followers.items() if ", ".join(c) == cause]
        who = f"parties {', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else f"party {names[0]}"
        out.append(f"{who} stopped at the handshake because of {cause}")
    return "\n".join(out)


def _process_age() -> float | None:
    """Seconds since this process started (Linux /proc; 10 ms resolution), None elsewhere."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        return float(Path("/proc/uptime").read_text().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _wait_all(procs: dict, timeout: float, quiet: bool, age: float | None = None) -> dict[str, tuple[int, str]]:
    """Wait for every party, echoing progress lines live; after a failure the others get a
    short grace period to stop on their own, then everything left is killed."""
    logs: dict[str, list[str]] = {n: [] for n in procs}
    lock = threading.Lock()

    def pump(name, stream):
        for line in stream:
            with lock:
                logs[name].append(line)
                if not quiet and line.startswith("[") and " timings:" not in line:
                    sys.stderr.write(line)
                    sys.stderr.flush()

    readers = [threading.Thread(target=pump, args=(n, p.stderr), daemon=True) for n, p in procs.items()]
    for t in readers:
        t.start()
    started = time.monotonic()
    deadline, first_failure = started + timeout, None
    out = {}
    pending = dict(procs)
    while pending:
        for name, p in list(pending.items()):
            if p.poll() is not None:
                del pending[name]
                out[name] = p.returncode
                if p.returncode != 0 and first_failure is None:
                    first_failure = (name, time.monotonic())
                    deadline = min(deadline, first_failure[1] + GRACE)
        now = time.monotonic()
        if pending and now > deadline:
            why = (f"{now - first_failure[1]:.1f} s after party {first_failure[0]} stopped" if first_failure
                   else f"the limit is {timeout:g} s")
            for name, p in pending.items():
                _kill(p)
                p.wait()
                out[name] = p.returncode
                logs[name].append(f"error: [{name}] still computing at stage '{_stage(name, logs[name])}' after "
                                  f"{now - started:.1f} s ({why}); stopped\n")
            pending = {}
        time.sleep(0.01)  # a party's end is seen within 10 ms
    for t in readers:
        t.join(timeout=5)
    if not quiet:
        summary = [line for n in procs for line in logs[n] if " timings:" in line]
        if summary:
            before = f" (this launcher: {age:.2f}s from its start to starting them)" if age is not None else ""
            sys.stderr.write(f"timings per party{before}:\n" + "".join("  " + line for line in summary))
    return {n: (out[n], "".join(logs[n])) for n in out}  # in the order they stopped


def _stage(name: str, lines: list[str]) -> str:
    """The last stage a party announced ("[police] secure steps ...")."""
    for line in reversed(lines):
        if line.startswith(f"[{name}] ") and " ... (at " in line:
            return line[len(name) + 3:].split(" ... (at ")[0]
    return "starting"


PARTY_PROCESS_NAME = "iq-party"  # the name (`ps -o comm`, top) of a forked party process


def _set_process_name(name: str) -> None:
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _die_with_parent() -> None:
    """In the child, before exec (Linux): SIGKILL when the launcher dies, even by SIGKILL (a CI
    timeout); elsewhere only the handlers of _stop_parties_on_exit apply."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _stop_parties_on_exit(procs: dict):
    """Ctrl-C or SIGTERM of `iq run` stops every party it started (each runs in its own session,
    so the terminal's signal does not reach it), then says so."""
    def on_term(signum, frame):
        raise KeyboardInterrupt
    main = threading.current_thread() is threading.main_thread()
    # both signals explicitly: a shell that starts `iq run` in the background makes it ignore SIGINT
    previous = {s: signal.signal(s, on_term) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        yield
    except KeyboardInterrupt:
        for p in procs.values():
            _kill(p)
        for p in procs.values():
            p.wait()
        raise LaunchError(f"stopped by the user: the {len(procs)} party process(es) were stopped too; "
                          "nothing was revealed by a party that had not finished", 130) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _kill(p: subprocess.Popen):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
