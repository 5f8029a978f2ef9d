"""One party: load and validate its own data, run its local steps, share, compute, receive.

Order of a run, and what can stop it before any share is sent:
1. plan file (hash must match its content), catalog digest; governance (runtime/governance/party_checks.py:
   approvals, recompiling the source, the differencing guard against the own ledger); own data
   validated (IQ501);
2. connect to every peer (bounded by --connect-timeout);
3. status exchange: every party's plan hash and data status; any mismatch or failure stops
   all parties with an error naming who failed;
4. local steps, secret-sharing, secure steps, the reveal (runtime/secure/reveal.py), the table.
A peer that disconnects or hangs afterwards stops the run with an error; nothing is printed.
"""
from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from insightql.compiler.check.catalog import Catalog
from insightql.compiler.plan.ops import operands
from insightql.compiler.plaintext.partials import compute_partials
from insightql.compiler.plaintext.results import ResultTable, assemble

from insightql.runtime.data.loader import DataError, load_dataset
from insightql.runtime.governance.party_checks import Governance, GovernanceOptions, default_ledger_path

EXIT_OK, EXIT_DATA, EXIT_ABORTED, EXIT_PEER, EXIT_TIMEOUT, EXIT_REFUSED = 0, 3, 4, 5, 6, 7


class RunAborted(Exception):
    """The parties agreed to stop before sharing any data."""


@dataclass
class Progress:
    party: str
    quiet: bool = False
    timings: list[tuple[str, float]] = field(default_factory=list)
    _t: float = field(default_factory=time.perf_counter)
    _step: str | None = None
    bytes_sent: int = 0
    _start: float = field(default_factory=time.perf_counter)
    started_after: float | None = field(default_factory=lambda: _since_launch())
    """Seconds from the launcher starting this process to this point (interpreter, imports, catalog
    and parties file): only for the timings line, from IQ_LAUNCHED_AT that `iq run` sets."""

    def step(self, name: str):
        now = time.perf_counter()
        if self._step is not None:
            self.timings.append((self._step, now - self._t))
        self._step, self._t = name, now
        if not self.quiet and name != "done":
            print(f"[{self.party}] {name} ... (at {now - self._start:.1f} s)", file=sys.stderr, flush=True)

    def summary(self) -> str:
        first = f"process start {self.started_after:.2f}s  " if self.started_after is not None else ""
        return first + "  ".join(f"{s} {t:.2f}s" for s, t in self.timings) + f"  bytes sent {self.bytes_sent}"


def _since_launch() -> float | None:
    try:
        return max(0.0, time.time() - float(os.environ["IQ_LAUNCHED_AT"]))
    except (KeyError, ValueError):
        return None


def load_own_data(plan: dict, me: str, catalog: Catalog, data: dict[str, str]) -> dict:
    """Validate and load every dataset this party owns in the plan: {load node id: (table, n)}.
    A bare `--data FILE` serves only a party that owns ONE dataset in the whole catalog: otherwise a
    second dataset in its name (a `like` copy with a looser policy, which inherits the owner) would be
    read from the same file, under the copy's policy and outside the guard of the first."""
    out = {}
    mine = [d for d, ds in catalog.datasets.items() if ds.owner == me]
    for n in plan["nodes"]:
        if n["op"] != "load" or n["placement"] != f"local:{me}":
            continue
        d = n["attrs"]["dataset"]
        path = data.get(d) or (data.get("*") if mine == [d] else None)
        if path is None:
            also = (f"; a bare --data FILE is used only by a party that owns one dataset in the catalog, and "
                    f"{me} owns {', '.join(mine)}") if "*" in data else ""
            raise DataError([_issue("<none>", f"no data file given for dataset {d} (use --data {d}=FILE){also}")])
        out[n["id"]] = load_dataset(path, d, catalog.datasets[d], n["attrs"]["columns"])
    return out


def _internal_problem(me: str, doing: str, e: Exception) -> str:
    """An unexpected error before the handshake: said at this party (the traceback with IQ_DEBUG=1),
    and told to the others through the handshake, so all stop before any share is sent."""
    debug = bool(os.environ.get("IQ_DEBUG"))
    print(f"error: [{me}] internal error while {doing}: {type(e).__name__}: {e}"
          + ("" if debug else " (IQ_DEBUG=1 prints the traceback)"), file=sys.stderr, flush=True)
    if debug:
        import traceback
        traceback.print_exc()
    return f"internal error while {doing} ({type(e).__name__}; details at {me})"


def _issue(file, reason):
    from insightql.runtime.data.loader import DataIssue
    return DataIssue(file, None, None, reason)


def lost_peer_message(names: list[str], peer: int, phase: str, cause: str = "", missing: list[str] = (),
                      gave_up: bool = True) -> str:
    """What a party says when the connection to `peer` is lost. `cause` is what `peer` told before
    it stopped (runtime/launch/mpyc_setup.py tell_peers): "lost:<pid>" (it lost that party first) or
    "wait:<pids>" (it gave up waiting for them to connect); "" when it told nothing. While
    connecting, `gave_up` says whether the connect timeout may have passed at `peer`."""
    kind, _, pids = cause.partition(":")
    ids = [int(i) for i in pids.split(",") if i.isdigit() and int(i) < len(names)]
    left = names[peer]
    if kind == "wait" and ids:
        return (f"error: party {left} left while the parties were connecting; not connected to "
                f"{', '.join(names[i] for i in ids)} (is it running?) -- a party gave up waiting for it; "
                f"stopping, no data was shared")
    who, via = left, ""
    if kind == "lost" and ids and ids[0] != peer:
        who, via = names[ids[0]], f" (party {left} stopped because party {names[ids[0]]} left)"
    if phase == "connecting":
        if gave_up and not via:  # most likely it gave up waiting for the missing ones
            return (f"error: party {who} left while the parties were connecting"
                    + (f"; not connected to {', '.join(missing)} (is it running?)" if missing else "")
                    + "; stopping, no data was shared")
        return (f"error: party {who} left while the parties were connecting, before the connect timeout "
                f"(it stopped or crashed){via}; stopping, no data was shared")
    if phase == "handshake":
        return (f"error: party {who} left before the status check (it stopped or crashed){via}; "
                f"stopping, no data was shared")
    return (f"error: lost the connection to party {who} during the run{via}; stopping, nothing was revealed "
            f"by this party")


def _install_disconnect_guard(state: dict):
    """MPyC waits forever when a peer vanishes; turn a lost connection into a clean stop that
    names the party that left first: before stopping, a party tells the others which peer it lost."""
    from mpyc import asyncoro

    from insightql.runtime.launch.mpyc_setup import LEFT_NOTICE, tell_peers

    original = asyncoro.MessageExchanger.connection_lost

    def connection_lost(self, exc):
        if not state.get("closing") and self.peer_pid is not None:
            rt = self.runtime
            note = self.buffers.get(LEFT_NOTICE)
            cause = note.decode("ascii", "replace") if isinstance(note, bytes) else ""
            if cause.startswith("lost:") and cause[5:] == str(rt.pid):
                cause = ""  # it says it lost us: then it is the one that left
            tell_peers(rt, cause or f"lost:{self.peer_pid}", skip=[self.peer_pid])
            phase = "run" if state.get("shared") else "handshake" if state.get("connected") else "connecting"
            missing = [state["names"][p.pid] for p in rt.parties
                       if p.pid not in (rt.pid, self.peer_pid) and p.protocol is None]
            limit = state.get("connect_timeout")
            gave_up = limit is None or time.monotonic() - state.get("connect_started", 0) > 0.9 * limit
            message = lost_peer_message(state["names"], self.peer_pid, phase, cause, missing, gave_up)
            print(message, file=sys.stderr, flush=True)
            if state.get("shared"):  # the ledger's run_started gets its end: failed, and why
                state["gov"].failed(message.removeprefix("error: "))
            if "preparing" in state:  # its preflight may be writing to the ledger: let it finish
                state["preparing"].acquire(timeout=60)
            os._exit(EXIT_PEER)
        return original(self, exc)

    asyncoro.MessageExchanger.connection_lost = connection_lost


def _watchdog(seconds: float, me: str, state: dict | None = None):
    started = time.monotonic()

    def fire():
        message = (f"the run did not finish within {seconds:g} s (stopped after {time.monotonic() - started:.1f} s; "
                   "a party hangs or is gone); stopping, nothing was revealed")
        print(f"error: [{me}] {message}", file=sys.stderr, flush=True)
        if state is not None and state.get("shared"):  # the ledger's run_started gets its end: failed, and why
            state["gov"].failed(message)
        os._exit(EXIT_TIMEOUT)
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    return t


async def _connect(mpc, prepare, progress: Progress, state: dict) -> tuple[dict | None, str | None]:
    """Connect to every peer and prepare (governance preflight and own data: `prepare()` gives
    (loaded, problem), or it is that pair already). Without TLS the preparation runs in a thread
    while the event loop connects, so a party is connected by the time its data is ready, instead
    of starting to dial then (spec/runtime.md, "Fixed cost of a small run"); nothing is sent but
    MPyC's connection set-up before the status exchange either way."""
    state["connect_started"] = time.monotonic()
    if not callable(prepare):
        progress.step("connecting")
        await mpc.start()
        return prepare
    busy = state["preparing"] = threading.Lock()  # a lost peer's exit waits for it (a ledger line may be written)

    def prepare_now():
        with busy:
            return prepare()
    connecting = asyncio.ensure_future(mpc.start())
    try:
        loaded, problem = await asyncio.get_running_loop().run_in_executor(None, prepare_now)
    except BaseException:
        connecting.cancel()
        raise
    progress.step("connecting")
    await connecting
    return loaded, problem


async def _execute(mpc, plan: dict, me: str, names: list[str], prepare, progress: Progress,
                   state: dict) -> ResultTable | None:
    from insightql.runtime.secure.reveal import exchange_status, reveal_to_receivers
    from insightql.runtime.secure.secure_ops import SecureOps

    profile = bool(os.environ.get("IQ_PROFILE"))  # read here, not at import: a forked party sets it later
    loaded, problem = await _connect(mpc, prepare, progress, state)
    state["connected"], state["problem"] = True, problem
    progress.step("checking plan and data with all parties")
    link_local, link_sizes = {}, {}
    if problem is None and any(n["op"] == "link_rows" for n in plan["nodes"]):  # record linkage (issue 6)
        from insightql.runtime.secure.linkage_ops import LinkageDataError, local_vectors
        try:  # packed before any input: the vectors' lengths are exchanged in the handshake
            link_local = local_vectors(plan, me, loaded)
            link_sizes = {nid: len(v) for nid, v in link_local.items()}
        except LinkageDataError as e:
            problem = f"invalid data ({e})"
            print(f"error: [{me}] {e}", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001
            problem = _internal_problem(me, "packing its rows for record linkage", e)
    output_links = {}
    if plan.get("output_parties"):  # receivers that do not compute: before any share; a party that will
        from insightql.runtime.launch.output_party import OutputLinkError, connect_output_parties
        try:  # refuse connects too, so that the receivers hear why the run stops instead of waiting
            output_links = await connect_output_parties(plan, me, state["config"], state["connect_timeout"])
        except OutputLinkError as e:
            problem = problem or str(e)
            print(f"error: [{me}] {e}", file=sys.stderr, flush=True)
    state["output_links"] = output_links
    statuses = await exchange_status(mpc, {"party": me, "plan_hash": plan["hash"], "ok": problem is None,
                                           "problem": problem, **({"link_sizes": link_sizes} if link_sizes else {}),
                                           **state["gov"].status()})
    bad = [s for s in statuses if not s["ok"]]
    mismatch = [s["party"] for s in statuses if s["plan_hash"] != plan["hash"]]
    if bad or mismatch:
        state["closing"] = True
        await mpc.shutdown()
        msgs = [f"party {s['party']} cannot take part: {s['problem']}" for s in bad]
        if mismatch:
            msgs.append(f"parties run different plans ({', '.join(mismatch)} differ from {me}'s plan hash)")
        state["refusers"] = [s["party"] for s in bad] + mismatch
        from insightql.runtime.launch.output_party import close_output_links
        await close_output_links(output_links, aborted="; ".join(msgs) + " -- no data was shared")
        raise RunAborted("; ".join(msgs) + " -- no data was shared")
    state["shared"] = True  # from here on, shares may be sent
    state["gov"].started(statuses)  # ledger: approvals and run_started, before any input
    ops = SecureOps(mpc, plan)
    link_ops = None
    if link_local is not None and any(n["op"] == "link_share" for n in plan["nodes"]):
        from insightql.runtime.secure.linkage_ops import LinkOps, sizes_from_statuses
        link_ops = LinkOps(mpc, plan, sizes_from_statuses(plan, statuses), ops.si)
    batches: dict[str, list[dict]] = {}
    for n in plan["nodes"]:
        if "batch" in n["attrs"]:
            batches.setdefault(n["attrs"]["batch"], []).append(n)
    values: dict = {}
    receivers = [names.index(r) for r in plan["receivers"] if r in names]
    table = None
    progress.step("local steps")
    divisions: list[dict] = []  # div nodes held back until a node reads one: then all of them in one call
    for n in plan["nodes"] + [None]:
        if divisions and (n is None or any(i in {d["id"] for d in divisions} for i in operands(n))):
            values.update(ops.divide_many(divisions, values))
            divisions = []
        if n is None:
            break
        op, place = n["op"], n["placement"]
        if op == "div" and not profile:  # (IQ_PROFILE times each node on its own)
            divisions.append(n)
            continue
        if op == "load":
            if place == f"local:{me}":
                values[n["id"]] = loaded[n["id"]]
        elif op == "partials":
            if place == f"local:{me}":
                tbl, count = values[n["inputs"][0]]
                values[n["id"]] = compute_partials(n["attrs"], tbl, count)
        elif op == "share":
            if "secure" not in progress._step:
                progress.step("secure steps")
            owner = n["attrs"]["party"]
            values[n["id"]] = ops.share(n, values.get(n["inputs"][0]) if owner == me else None, names.index(owner))
        elif op.startswith("link_"):  # record linkage: runtime/secure/linkage_ops.py
            if op == "link_share" and "secure" not in progress._step:
                progress.step("secure steps")
            values[n["id"]] = link_ops.run(n, values, me, names, link_local)
            if asyncio.iscoroutine(values[n["id"]]):  # the fast design opens match tags midway
                values[n["id"]] = await values[n["id"]]
        elif op == "reveal":
            progress.step("reveal")
            frac = {i: ops.nodes[i].get("frac", 0) for i in n["inputs"]}
            values[n["id"]] = await reveal_to_receivers(mpc, n, values, receivers, frac, output_links)
        elif op == "table":
            if values[n["inputs"][0]] is not None:
                table = assemble(plan, values[n["inputs"][0]])
        elif "batch" in n["attrs"]:
            if n["id"] not in values:  # the batch's first member computes every member
                values.update(ops.run_batch(batches[n["attrs"]["batch"]], values))
        else:
            values[n["id"]] = ops.run(n, [values[i] for i in operands(n)], values)
            if profile:
                t0 = time.perf_counter()
                await mpc.barrier()
                await mpc.gather(values[n["id"]])
                print(f"[{me}] profile {n['id']} {n['op']}: {time.perf_counter() - t0:.3f}s", file=sys.stderr)
    progress.step("shutdown")
    state["bytes_sent"] = sum(p.protocol.nbytes_sent for p in mpc.parties if p.pid != mpc.pid and p.protocol)
    state["closing"] = True
    await mpc.shutdown()
    if output_links:
        from insightql.runtime.launch.output_party import close_output_links
        await close_output_links(output_links)
    progress.step("done")
    return table


def run_party(plan: dict, me: str, catalog: Catalog, data: dict[str, str], config, *, quiet: bool = False,
              timeout: float = 900, connect_timeout: float = 60, allow_fewer: bool = False,
              governance: GovernanceOptions | None = None, plan_path: str | None = None
              ) -> tuple[int, ResultTable | None, Progress]:
    """Run one party to completion; returns (exit code, result table at receivers, timings)."""
    from insightql.runtime.launch.mpyc_setup import start_runtime

    names = list(plan["parties"])
    if me in plan.get("output_parties", []):
        return run_output_party(plan, me, catalog, config, quiet=quiet, timeout=timeout, governance=governance,
                                plan_path=plan_path)
    progress = Progress(me, quiet)
    progress.step("loading and validating data")
    if me not in names:
        raise SystemExit(f"error: party {me!r} neither computes nor receives in this plan (computing parties: "
                         f"{', '.join(names)}); it need not run")
    config.computing(names + plan.get("output_parties", []))  # PartiesError naming a party the file lacks
    if len(names) < 3 and not allow_fewer:
        raise SystemExit("error: MPC needs at least 3 computing parties (with 2, Shamir's threshold is 0 and "
                         "nothing stays private); add a neutral helper party to the catalog")
    if catalog.digest() != plan["catalog_digest"]:
        raise SystemExit("error: this party's catalog differs from the one the plan was compiled with "
                         f"({catalog.digest()[:19]} vs {plan['catalog_digest'][:19]})")
    opts = governance or GovernanceOptions()
    gov = Governance(plan, me, catalog, opts, Path(opts.ledger) if opts.ledger else
                     default_ledger_path(me, data, plan_path))

    def prepare() -> tuple[dict | None, str | None]:
        """(own data, None), or (None, why this party cannot take part)."""
        problem = gov.preflight()  # approvals, recompilation, guard: before reading data
        if problem:
            problem = f"refused the plan: {problem}"
            print(f"error: [{me}] {problem}", file=sys.stderr, flush=True)
            return None, problem
        try:
            return load_own_data(plan, me, catalog, data), None
        except DataError as e:
            print(f"error: [{me}] {e}", file=sys.stderr, flush=True)
            return None, f"invalid data ({len(e.issues)} problem(s); details at {me})"
        except Exception as e:  # noqa: BLE001 - a bug or a resource limit: still stop every party cleanly
            return None, _internal_problem(me, "reading its data", e)

    # With TLS, MPyC's start() runs inside the certificate folder (runtime/launch/mpyc_setup.py), which
    # would move the relative paths the preparation reads: prepare first, then connect.
    early = config.tls is None
    prepared = prepare if early else prepare()
    state = {"names": names, "gov": gov, "connect_timeout": connect_timeout, "config": config}
    dog = _watchdog(timeout, me, state)
    mpc = start_runtime(config, me, ("--no-log",) if quiet else (),  # --quiet: none of MPyC's log lines either
                        connect_timeout=connect_timeout, computing=names)  # first import of mpyc: must come first
    _install_disconnect_guard(state)
    try:
        table = mpc.run(_execute(mpc, plan, me, names, prepared, progress, state))
    except RunAborted as e:
        dog.cancel()
        gov.aborted(str(e), state.get("refusers", []))
        print(f"error: [{me}] run stopped before any data was shared: {e}", file=sys.stderr, flush=True)
        return (EXIT_REFUSED if gov.refused else EXIT_DATA if state.get("problem") else EXIT_ABORTED), None, progress
    except Exception as e:
        gov.failed(f"{type(e).__name__}: {e}")
        if not state.get("connected"):  # never reached the handshake: output-only receivers would wait
            from insightql.runtime.launch.output_party import notify_output_parties
            notify_output_parties(plan, me, config, f"party {me} stopped before the handshake ({type(e).__name__}: "
                                                    f"{e}); no data was shared")
        raise
    dog.cancel()
    gov.finished(table, me in plan["receivers"])
    progress.bytes_sent = state.get("bytes_sent", 0)
    return EXIT_OK, table, progress


def run_output_party(plan: dict, me: str, catalog: Catalog, config, *, quiet: bool = False, timeout: float = 900,
                     governance: GovernanceOptions | None = None, plan_path: str | None = None
                     ) -> tuple[int, ResultTable | None, Progress]:
    """A receiver that does not compute (runtime/launch/output_party.py): no MPyC, no data. It checks
    the plan as every party does, answers each computing party's handshake, and recombines the
    shares of the revealed values they send it."""
    from insightql.runtime.launch.output_party import serve_output_party

    progress = Progress(me, quiet)
    progress.step("checking the plan (output only: this party does not compute)")
    config.computing(plan["parties"] + [me])
    problem = None
    if catalog.digest() != plan["catalog_digest"]:
        problem = (f"its catalog differs from the one the plan was compiled with ({catalog.digest()[:19]} vs "
                   f"{plan['catalog_digest'][:19]})")
    opts = governance or GovernanceOptions()
    gov = Governance(plan, me, catalog, opts, Path(opts.ledger) if opts.ledger else default_ledger_path(me, {}, plan_path))
    problem = problem or gov.preflight()
    if problem:
        print(f"error: [{me}] refused the plan: {problem}", file=sys.stderr, flush=True)
    progress.step("waiting for the computing parties' shares")
    dog = _watchdog(timeout + 10, me)
    revealed, hellos, stopped, how = asyncio.run(serve_output_party(plan, me, config, problem, gov.status(), timeout))
    dog.cancel()
    if revealed is None:
        if not problem:
            gov.aborted(stopped, [])
            said = ("run stopped before any data was shared" if how == "aborted" else
                    "the run stopped, nothing was received")
            print(f"error: [{me}] {said}: {stopped}", file=sys.stderr, flush=True)
        codes = {"refused": EXIT_REFUSED, "aborted": EXIT_ABORTED, "peer": EXIT_PEER, "timeout": EXIT_TIMEOUT}
        return codes[how], None, progress
    gov.started(hellos)
    table_node = next(n for n in plan["nodes"] if n["op"] == "table")
    from insightql.runtime.secure.reveal import audit_received
    for node_id, result in revealed.items():
        audit_received(me, node_id, result)
    table = assemble(plan, revealed[table_node["inputs"][0]])
    progress.step("done")
    gov.finished(table, True)
    return EXIT_OK, table, progress
