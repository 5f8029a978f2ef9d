"""Output-only parties: a receiver that holds none of a query's data gets its result without computing.

A plan's computing parties are the owners of the datasets it reads plus the fewest helpers an
honest majority needs (compiler/check/catalog.py `computing_parties`); a receiver outside them is
listed in the plan's `output_parties`. Its process does not start MPyC and loads no data:

1. it listens at its address in the parties file (TLS when the file has [tls]);
2. every computing party connects to it *before any share is sent* and gets its status (plan
   hash, governance: a receiver that refuses the plan stops the run at the handshake, no data
   shared); a receiver that cannot be reached stops the run the same way;
3. after the secure steps each computing party sends it its own Shamir shares of the revealed
   vector (runtime/secure/reveal.py `deliver_shares`). One share is uniformly random; the
   receiver interpolates t + 1 of them and checks that all m lie on one polynomial of degree t.

Wire format: one JSON object per line. Computing -> receiver: {"hello": name, "pid", "plan_hash"};
receiver -> computing: {"ok", "problem", "ledger_head"}; computing -> receiver: {"shares": {reveal
node id: [str, ...]}, "modulus": p} or {"aborted": reason}.
"""
from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time

from insightql.runtime.launch.parties import PartiesConfig

STOP_GRACE = 10  # seconds a stopped run's receiver still answers computing parties that connect late
LINE_LIMIT = 1 << 28  # a share message is one line: up to 256 MiB of decimal field elements


class OutputLinkError(Exception):
    """A computing party could not reach an output party, or the output party refused the plan."""


def tls_context(config: PartiesConfig, me: str, server: bool, peer: str | None = None) -> ssl.SSLContext | None:
    """Mutual TLS with the parties file's CA; certificates are named by place in the file."""
    if config.tls is None:
        return None
    from insightql.runtime.launch.certs import mpyc_party_name
    files = config.tls_files(me)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(cafile=str(files.ca))
    ctx.verify_mode = ssl.CERT_REQUIRED
    if not server:
        ctx.check_hostname = True
        ctx._iq_server_name = mpyc_party_name(config.index_of(peer))  # noqa: SLF001 - read by connect_output_parties
    return ctx


async def _send(writer, message: dict) -> None:
    writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    await writer.drain()


async def _receive(reader) -> dict:
    line = await reader.readline()
    if not line:
        raise ConnectionError("the connection closed")
    return json.loads(line)


# ---------------------------------------------------------------- computing party side
async def connect_output_parties(plan: dict, me: str, config: PartiesConfig, timeout: float) -> dict:
    """Connect to every output party of the plan and read its status: {name: (reader, writer)}.
    OutputLinkError names a receiver that was not reachable within `timeout` or refused the plan."""
    links = {}
    pid = plan["parties"].index(me)
    for name in plan.get("output_parties", []):
        party = config.get(name)
        ctx = tls_context(config, me, server=False, peer=name)
        deadline = time.monotonic() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    party.host, party.port, ssl=ctx, limit=LINE_LIMIT,
                    server_hostname=getattr(ctx, "_iq_server_name", None) if ctx else None)
                break
            except (OSError, ssl.SSLError) as e:
                if time.monotonic() > deadline:
                    raise OutputLinkError(f"receiver {name} at {party.host}:{party.port} not reachable within "
                                          f"{timeout:g} s ({e}); is its party process running?") from None
                await asyncio.sleep(0.1)
        await _send(writer, {"hello": me, "pid": pid, "plan_hash": plan["hash"]})
        try:
            status = await asyncio.wait_for(_receive(reader), timeout)
        except (asyncio.TimeoutError, ConnectionError, ValueError) as e:
            raise OutputLinkError(f"receiver {name} gave no status ({type(e).__name__})") from None
        if not status.get("ok"):
            raise OutputLinkError(f"receiver {name} cannot take part: {status.get('problem')}")
        links[name] = (reader, writer)
    return links


async def deliver_shares(links: dict, node_id: str, shares: list[str], modulus: int) -> None:
    """Send this computing party's shares of one reveal node to every output party (called by
    runtime/secure/reveal.py, the one place values leave MPC)."""
    for _, writer in links.values():
        await _send(writer, {"shares": {node_id: shares}, "modulus": modulus})


def notify_output_parties(plan: dict, me: str, config: PartiesConfig, reason: str) -> None:
    """A computing party that stops before its handshake (peers never connected) tells each output
    party why, so the receiver stops too instead of waiting for shares. Best effort, a few seconds."""
    async def tell():
        try:
            links = await connect_output_parties(plan, me, config, 3)
        except OutputLinkError:
            return
        await close_output_links(links, aborted=reason)
    if plan.get("output_parties"):
        asyncio.run(tell())


async def close_output_links(links: dict, aborted: str | None = None) -> None:
    """Tell each output party the run stopped (when it did), then close. Best effort."""
    for _, writer in links.values():
        try:
            if aborted is not None:
                await _send(writer, {"aborted": aborted})
            writer.close()
            await writer.wait_closed()
        except (OSError, ConnectionError):
            pass


# ---------------------------------------------------------------- output party side
def recombine(points: list[tuple[int, int]], p: int, t: int) -> int:
    """The secret f(0) of Shamir shares (x, f(x)) mod p, f of degree t; ValueError when the
    shares beyond the first t + 1 do not lie on the same polynomial."""
    def at(x0: int, pts) -> int:
        total = 0
        for i, (xi, yi) in enumerate(pts):
            num = den = 1
            for j, (xj, _) in enumerate(pts):
                if j != i:
                    num, den = num * (x0 - xj) % p, den * (xi - xj) % p
            total += yi * num * pow(den, -1, p)
        return total % p
    base = points[:t + 1]
    for x, y in points[t + 1:]:
        if at(x, base) != y % p:
            raise ValueError(f"the share of party {x - 1} does not lie on the others' polynomial")
    return at(0, base)


def signed(v: int, p: int) -> int:
    return v - p if v > p >> 1 else v


def reconstruct(plan: dict, messages: dict[int, dict]) -> dict[str, dict[str, list]]:
    """{reveal node id: {input id: per-cell values}} from every computing party's shares."""
    nodes = {n["id"]: n for n in plan["nodes"]}
    m = len(plan["parties"])
    t = (m - 1) // 2
    moduli = {msg["modulus"] for msg in messages.values()}
    if len(moduli) != 1:
        raise ValueError("the computing parties sent shares of different fields")
    p = int(moduli.pop())
    out = {}
    for n in plan["nodes"]:
        if n["op"] != "reveal":
            continue
        columns = [[int(v) for v in messages[pid]["shares"][n["id"]]] for pid in range(m)]
        if len({len(c) for c in columns}) != 1:
            raise ValueError(f"the computing parties sent different numbers of shares for {n['id']}")
        flat = [signed(recombine([(pid + 1, columns[pid][k]) for pid in range(m)], p, t), p)
                for k in range(len(columns[0]))]
        ids = n["inputs"]
        per = len(flat) // len(ids)
        out[n["id"]] = {i: [v / 2 ** nodes[i].get("frac", 0) for v in flat[j * per:(j + 1) * per]]
                        for j, i in enumerate(ids)}
    return out


async def serve_output_party(plan: dict, me: str, config: PartiesConfig, problem: str | None,
                             status_extra: dict, timeout: float) -> tuple[dict | None, list[dict], str | None, str]:
    """Listen until every computing party delivered its shares (or one stopped the run).
    Returns (revealed values or None, the computing parties' hellos, why the run stopped, and how:
    "ok", "refused" (this party), "aborted" (a computing party stopped the run), "peer" (a
    connection was lost), "timeout")."""
    names = plan["parties"]
    hellos: dict[int, dict] = {}
    messages: dict[int, dict] = {}
    aborted: list[str] = []
    lost: list[str] = []
    done, all_met = asyncio.Event(), asyncio.Event()

    async def handle(reader, writer):
        name = None
        try:
            hello = await _receive(reader)
            pid, name = hello.get("pid"), hello.get("hello")
            if not isinstance(pid, int) or not 0 <= pid < len(names) or names[pid] != name or pid in hellos:
                writer.close()
                return
            if config.tls is not None and not _peer_is(writer, config, name):
                writer.close()
                return
            ok = problem is None and hello.get("plan_hash") == plan["hash"] and not (aborted or lost)
            why = problem or ("; ".join(aborted or lost) if aborted or lost else None) or \
                (None if ok else f"{name} runs a different plan ({str(hello.get('plan_hash'))[:19]}...)")
            await _send(writer, {"ok": ok, "problem": why, **status_extra})
            hellos[pid] = {"party": name, "plan_hash": hello.get("plan_hash")}
            if len(hellos) == len(names):
                all_met.set()
            if not ok and problem is None and not (aborted or lost):  # that party stops the run at its handshake
                aborted.append(why)
            if not ok:
                return
            msg = await _receive(reader)
            if "aborted" in msg:
                aborted.append(str(msg["aborted"]))
            else:
                messages[pid] = msg
        except asyncio.CancelledError:  # the run is over (another party stopped it): nothing to add
            return
        except (ConnectionError, ValueError, OSError) as e:
            lost.append(f"lost the connection to party {name or 'unknown'} before it delivered its shares "
                        f"({type(e).__name__}: it stopped or crashed)")
        finally:
            if len(messages) == len(names) or aborted or lost or problem is not None:
                done.set()

    party = config.get(me)
    server = await asyncio.start_server(handle, port=party.port, ssl=tls_context(config, me, server=True),
                                        limit=LINE_LIMIT)
    try:
        await asyncio.wait_for(done.wait(), timeout)
        if aborted or lost or problem is not None:  # answer the parties still to connect, so none waits for us
            try:
                await asyncio.wait_for(all_met.wait(), STOP_GRACE)
            except asyncio.TimeoutError:
                pass
    except asyncio.TimeoutError:
        missing = [names[i] for i in range(len(names)) if i not in messages]
        return None, list(hellos.values()), (f"no shares from {', '.join(missing)} within {timeout:g} s "
                                              "(still computing, or stopped)"), "timeout"
    finally:
        server.close()
    met = list(hellos.values())
    if problem is not None:
        return None, met, problem, "refused"
    if aborted or lost:
        return None, met, "; ".join(dict.fromkeys(aborted or lost)), "aborted" if aborted else "peer"
    return reconstruct(plan, messages), met, None, "ok"


def _peer_is(writer, config: PartiesConfig, name: str) -> bool:
    """The client certificate (verified against the CA by TLS) is the one of the party it says it is."""
    from insightql.runtime.launch.certs import mpyc_party_name
    cert = writer.get_extra_info("peercert") or {}
    cns = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    if mpyc_party_name(config.index_of(name)) in cns:
        return True
    print(f"error: a connection claiming to be {name} presented a certificate for {cns}; refused",
          file=sys.stderr, flush=True)
    return False
