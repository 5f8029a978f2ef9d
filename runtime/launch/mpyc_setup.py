"""Turn a parties file into a running MPyC party: argv, TLS files, runtime set-up.

How a party process starts (one process per organisation):

    config = load_parties("parties.toml", me="police")
    mpc = start_runtime(config, "police", connect_timeout=120)
    secint = mpc.SecInt(32)
    async def main():
        await mpc.start()            # connects to every peer (TLS if the file has [tls])
        ...                          # the plan: mpc.input / mpc.output ...
        await mpc.shutdown()
    mpc.run(main())

Facts about MPyC 0.11 this module relies on (mpyc/__init__.py, mpyc/runtime.py):
- `import mpyc` configures logging from `sys.argv`, and `import mpyc.runtime` runs
  `mpc = setup()`, which parses `sys.argv` with `parse_known_args` and then leaves only the
  unparsed arguments in `sys.argv` (abbreviations allowed:
  a stray `--out` is ambiguous and exits the process, `-V` prints and exits, `-M 3`
  without `-I` spawns parties). So start_runtime imports MPyC with MPyC's own argv in
  `sys.argv`, and the rest of the program should not import `mpyc` before it.
- `setup()` builds a new Runtime and rebinds the `runtime` global of sectypes, asyncoro,
  mpctools, seclists, secpols, secgroups, random and statistics, but NOT `mpyc.runtime.mpc`.
  start_runtime rebinds `mpyc.runtime.mpc` too, so `from mpyc.runtime import mpc` executed
  afterwards gets the configured runtime; a name bound by an earlier import stays stale.
  Party code should use the Runtime that start_runtime returns.
- `--ssl` reads `.config/party_{i}.crt`, `.config/party_{i}.key` and `.config/mpyc_ca.crt`
  relative to the working directory when `mpc.start()` runs (not at setup). We copy the
  files into a private temporary folder and make it the working directory only while
  `start()` runs, so the program's own relative paths keep working.
- Party i > 0 listens on all interfaces at its port (the host in the parties file is only
  used by peers to dial it); party 0 only dials. `start()` retries absent or failing
  peers forever (TLS handshake errors are logged at debug level only): `connect_timeout`
  turns that into an error naming the missing peers.
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import types
from pathlib import Path

from insightql.runtime.launch.parties import PartiesConfig, PartiesError

_RESERVED_SHORT = ("-I", "-P", "-M", "-C", "-B", "-V", "-H", "-h")
_RESERVED_LONG = ("--index", "--config", "--base-port", "--ssl", "--VERSION", "--HELP", "--help",
                  "--output-windows", "--output-file")


LEFT_NOTICE = -0x49514C454654  # label ("IQLEFT") of a last message to peers: why this party stops


def tell_peers(rt, why: str, skip=()) -> None:
    """Best effort, just before this party stops: tell every connected peer why ("lost:<pid>",
    "wait:<pid>,..."), so that its disconnect guard (runtime/launch/party.py) names the right party."""
    for p in rt.parties:
        if p.pid != rt.pid and p.pid not in skip and hasattr(p.protocol, "send"):
            try:
                p.protocol.send(LEFT_NOTICE, why.encode())
            except Exception:  # noqa: BLE001 - that connection may be closing too
                pass


class PortInUseError(RuntimeError):
    """The port a party must listen on is taken on this machine."""


class ConnectTimeoutError(RuntimeError):
    """Not all peers connected within the timeout."""


def mpyc_argv(config: PartiesConfig, me: str, extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    """MPyC's command line for party `me`: `-I i`, one `-P host:port` per party, `--ssl`.

    `extra` passes further MPyC options (e.g. `-T 1`, `-L 64`, `--no-log`); options that
    the parties file decides (index, parties, ports, TLS) or that exit/spawn are refused.
    """
    index = config.index_of(me)
    for tok in extra:
        name = tok.split("=", 1)[0]
        short = not name.startswith("--") and name.startswith("-") and name[:2] in _RESERVED_SHORT
        long = name.startswith("--") and len(name) > 2 and any(o.startswith(name)
                                                               for o in _RESERVED_LONG)
        if short or long:
            raise ValueError(f"MPyC option {tok!r} may not be passed through: party index, "
                             f"addresses and TLS come from the parties file")
    argv = ["-I", str(index)]
    for p in config.party:
        argv += ["-P", f"{p.host}:{p.port}"]
    if config.tls is not None:
        argv.append("--ssl")
    argv += list(extra)
    return argv


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUseError if MPyC could not listen on `port` here.

    MPyC listens on every interface (asyncio create_server without a host, SO_REUSEADDR),
    so probe the wildcard address the same way; `host` only makes the message clearer.
    """
    families = [(socket.AF_INET, "0.0.0.0")]
    if socket.has_ipv6:
        families.append((socket.AF_INET6, "::"))
    for family, wildcard in families:
        try:
            s = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # address family not available on this machine
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((wildcard, port))
        except OSError as e:
            if family == socket.AF_INET6 and e.errno not in (98, 48):  # EADDRINUSE linux/mac
                continue  # e.g. IPv6 disabled
            raise PortInUseError(
                f"port {port} is in use on this machine ({e.strerror}); the party at "
                f"{host}:{port} cannot listen. Stop the program using it (another party "
                f"process of an earlier run?) or choose another port in the parties file"
            ) from None
        finally:
            s.close()


def _check_own_certificate(config: PartiesConfig, me: str) -> None:
    """Fail early on what MPyC would only report as endless silent retries."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.x509.oid import NameOID

    from insightql.runtime.launch.certs import mpyc_party_name

    files = config.tls_files(me)
    index = config.index_of(me)
    want = mpyc_party_name(index)
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        cas = x509.load_pem_x509_certificates(files.ca.read_bytes())
    except ValueError as e:
        raise PartiesError(f"{me}: cannot read certificate {files.cert} or CA {files.ca}: {e}")
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        names += cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        pass
    if want not in names:
        raise PartiesError(f"{me} is party {index} in the parties file, but its certificate "
                           f"{files.cert} is for {', '.join(map(repr, names)) or 'no name'}; "
                           f"MPyC requires the name {want!r} (is the party order the same as "
                           f"when the certificates were issued?)")
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
            break
        except (ValueError, TypeError, InvalidSignature):
            continue
    else:
        raise PartiesError(f"{me}: certificate {files.cert} is not issued by the CA in "
                           f"{files.ca}; peers would refuse it")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_cert_chain(files.cert, files.key)
    except ssl.SSLError as e:
        raise PartiesError(f"{me}: private key {files.key} does not match certificate "
                           f"{files.cert} ({e.reason})") from None


def prepare_tls_dir(config: PartiesConfig, me: str, run_index: int | None = None) -> Path:
    """A private temporary folder with the `.config/` layout MPyC's `--ssl` reads.

    Contains `.config/party_{i}.crt`, `.config/party_{i}.key` (mode 0600) and
    `.config/mpyc_ca.crt` for party `me` = MPyC index i in this run (`run_index`; default its
    index in the parties file, which its certificate names). Copies, not links, so the key's
    mode is ours. Removed when the process exits.
    """
    if config.tls is None:
        raise PartiesError("prepare_tls_dir: the parties file has no [tls] table")
    config.check_tls_files(me)
    _check_own_certificate(config, me)
    files = config.tls_files(me)
    index = config.index_of(me) if run_index is None else run_index
    root = Path(tempfile.mkdtemp(prefix=f"insightql-tls-{me}-"))  # mode 0700
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    conf = root / ".config"
    conf.mkdir(mode=0o700)
    shutil.copyfile(files.cert, conf / f"party_{index}.crt")
    shutil.copyfile(files.ca, conf / "mpyc_ca.crt")
    key = conf / f"party_{index}.key"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(files.key.read_bytes())
    return root


def missing_peers(config: PartiesConfig, me: int, missing: list[int]) -> tuple[list[int], str]:
    """The peers to name for a connect timeout, and the text. MPyC dials the parties after it one
    by one, so of those only the first one missing is one it could not reach (the later ones were
    not tried yet). The parties before it dial it; one of them that is down keeps those that dial
    it first from reaching us, so all of them are named."""
    def where(j):
        p = config.party[j]
        return f"{p.name} at {p.host}:{p.port}" if j > me else f"{p.name} (it dials us on port {config.party[me].port})"
    dial, listen = [j for j in missing if j > me], [j for j in missing if j < me]
    blamed = listen + dial[:1]
    text = ", ".join(map(where, blamed))
    if len(listen) > 1:
        text += "; a party dials its peers one by one: one that is down keeps those that dial it first from reaching us"
    if dial[1:]:
        text += f"; not dialled yet: {', '.join(config.party[j].name for j in dial[1:])}"
    return blamed, text


def _wrap_start(rt, config: PartiesConfig, me: str, tls_dir: Path | None,
                connect_timeout: float | None) -> None:
    """Make rt.start() run inside tls_dir and give up after connect_timeout seconds."""
    original = rt.start

    async def start():
        previous = os.getcwd()
        if tls_dir is not None:
            os.chdir(tls_dir)
        try:
            if connect_timeout is None:
                await original()
            else:
                started = time.monotonic()
                try:
                    await asyncio.wait_for(original(), connect_timeout)
                except asyncio.TimeoutError:
                    missing = [p.pid for p in rt.parties if p.pid != rt.pid and p.protocol is None]
                    blamed, what = missing_peers(config, rt.pid, missing)
                    tell_peers(rt, "wait:" + ",".join(map(str, blamed)))
                    hint = (" With TLS, a peer whose certificate is not from the shared CA or "
                            "not named 'MPyC party <index>' is refused silently (pass MPyC "
                            "option --log-level debug to see handshake errors)."
                            if config.tls is not None else "")
                    raise ConnectTimeoutError(
                        f"{me}: not connected within {connect_timeout:g} s to " + what
                        + f"; gave up after {time.monotonic() - started:.1f} s, no data was shared."
                        + " Are those parties running, and is the port open in the firewall?"
                        + hint) from None
        finally:
            os.chdir(previous)

    rt.start = start


def start_runtime(config: PartiesConfig, me: str, extra: tuple[str, ...] | list[str] = (),
                  *, connect_timeout: float | None = None, computing: list[str] | None = None):
    """Configure MPyC as party `me` and return its Runtime (not yet connected).

    Call this once, before anything imports `mpyc`, then use the returned Runtime:
    `await mpc.start()` opens the connections (inside the TLS folder, bounded by
    `connect_timeout` seconds if given), and `mpyc.runtime.mpc` is this Runtime from now on.
    `computing` (a plan's parties, in its order) are the parties of this run; default: every
    party of the file. Certificates keep the names of the parties file's order (`_tls_names`).
    """
    run = config.computing(computing) if computing is not None else config
    index = run.index_of(me)
    if index > 0:  # party 0 only dials out
        check_port_free(run.party[index].host, run.party[index].port)
    argv = mpyc_argv(run, me, extra)
    tls_dir = prepare_tls_dir(config, me, index) if config.tls is not None else None
    saved = sys.argv
    sys.argv = [saved[0] if saved else "insightql-party", *argv]
    try:
        if "mpyc.runtime" not in sys.modules:
            # The first import runs `mpc = setup()` on this argv (and strips it from sys.argv).
            import mpyc.runtime

            rt = mpyc.runtime.mpc
        else:
            import mpyc.runtime

            rt = mpyc.runtime.setup()
    finally:
        sys.argv = saved
    _log_to_stderr()
    mpyc.runtime.mpc = rt
    if config.tls is not None:
        _tls_names(mpyc.runtime, {run_i: config.index_of(n) for run_i, n in enumerate(run.names())})
    from insightql.runtime.secure.fast_random import install

    install()  # bulk randomness for Shamir sharing of arrays (runtime/secure/fast_random.py)
    _array_without_version_check()
    _wrap_start(rt, run, me, tls_dir, connect_timeout)
    return rt


def _array_without_version_check() -> None:
    """MPyC 0.11 parses NumPy's version string each time it makes a finite-field array (about 30 us,
    1,452 arrays per party in the shipped demo: 5-10% of its secure steps' CPU). The same
    constructor with the answer computed once; any other MPyC keeps its own."""
    import mpyc
    import numpy as np
    from mpyc.finfields import FiniteFieldArray

    original = FiniteFieldArray.__init__
    if mpyc.__version__ != "0.11" or "NumpyVersion" not in original.__code__.co_names:
        return
    copy_none = np.lib.NumpyVersion(np.__version__) >= "2.0.0b1"

    def __init__(self, value, check=True, copy=False):
        if copy_none and copy is False:
            copy = None
        value = np.array(value, dtype=object, copy=copy)
        if check:
            value %= self.field.modulus  # in place: keeps value's shape
        self.value = value

    FiniteFieldArray.__init__ = __init__


def _log_to_stderr() -> None:
    """MPyC's log lines ("Start MPyC runtime", "All 3 parties connected") go to stderr: MPyC sends
    them to stdout (logging.basicConfig(stream=sys.stdout)), where a receiver prints its result."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
            handler.setStream(sys.stderr)


def _tls_names(runtime_module, file_index: dict[int, int]) -> None:
    """MPyC dials party i expecting a certificate named 'MPyC party i'; a run of a subset of the
    catalog's parties numbers them 0..m-1 in the plan's order, while each certificate names the
    party's place in the parties file. Give MPyC's runtime module an `ssl` whose client contexts
    check the name of the place in the file instead (same CA, same checks otherwise)."""
    from insightql.runtime.launch.certs import mpyc_party_name
    names = {mpyc_party_name(i): mpyc_party_name(j) for i, j in file_index.items()}

    class RenamingContext(ssl.SSLContext):
        def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):
            return super().wrap_bio(incoming, outgoing, server_side, names.get(server_hostname, server_hostname),
                                    session)

    def create_default_context(purpose=ssl.Purpose.SERVER_AUTH):
        client = purpose == ssl.Purpose.SERVER_AUTH
        return RenamingContext(ssl.PROTOCOL_TLS_CLIENT if client else ssl.PROTOCOL_TLS_SERVER)

    runtime_module.ssl = types.SimpleNamespace(create_default_context=create_default_context,
                                               Purpose=ssl.Purpose, CERT_REQUIRED=ssl.CERT_REQUIRED)
