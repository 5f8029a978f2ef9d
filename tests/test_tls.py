"""TLS between real MPyC party processes, the test PKI and `iq certs`.

Each party is a subprocess in its own process group; every wait has a timeout and the
groups are killed afterwards, so no test can hang (MPyC retries absent peers forever).
"""
import argparse
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from insightql.runtime.launch.certs import add_certs_command, make_test_pki
from insightql.runtime.launch.mpyc_setup import prepare_tls_dir
from insightql.runtime.launch.parties import PartiesError, free_loopback_config, load_parties

NAMES = ["police", "ngo", "helper"]
HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
VALUES = [17, 25, 0]
WAIT = 30  # seconds per run, whatever happens

PARTY = """
import os, sys
from insightql.runtime.launch.parties import load_parties
from insightql.runtime.launch.mpyc_setup import start_runtime

path, me, value, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
config = load_parties(path, me=me)
mpc = start_runtime(config, me, ["--no-log"], connect_timeout=timeout)
secint = mpc.SecInt(32)
cwd = os.getcwd()

async def main():
    await mpc.start()
    assert os.getcwd() == cwd, "start() must restore the working directory"
    xs = mpc.input(secint(value))
    total = await mpc.output(mpc.sum(xs))
    await mpc.shutdown()
    print("SUM", total, flush=True)

mpc.run(main())
"""


def _loopback_aliases_work() -> bool:
    try:
        for h in HOSTS:
            with socket.socket() as s:
                s.bind((h, 0))
        return True
    except OSError:
        return False


needs_aliases = pytest.mark.skipif(not _loopback_aliases_work(),
                                   reason="127.0.0.2/3 not routable here (not Linux?)")


def _listening(port: int) -> bool:
    """Whether some socket on this machine listens on TCP `port` (Linux /proc; True elsewhere)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not any(t.exists() for t in tables):
        return True
    for table in tables:
        if table.exists():
            for line in table.read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def run_parties(tmp_path: Path, config, connect_timeout: float | dict = 20,
                overrides: dict | None = None) -> list[tuple[int, str, str]]:
    """Run one process per party; return (returncode, stdout, stderr) each, never hang.

    `overrides` maps a party name to the config that party uses instead of `config`;
    `connect_timeout` is one number for all or a number per party name. Parties start from
    the last to the first, each once the one before listens, so a slow machine's start-up
    time is not counted in the connect timeout of a party that dials out.
    """
    script = tmp_path / "party.py"
    script.write_text(PARTY)
    timeouts = (connect_timeout if isinstance(connect_timeout, dict)
                else dict.fromkeys(config.names(), connect_timeout))
    procs = {}
    try:
        for index in reversed(range(len(config.names()))):
            name, value = config.names()[index], VALUES[index]
            parties_file = tmp_path / f"parties-{name}.toml"
            parties_file.write_text((overrides or {}).get(name, config).to_toml())
            procs[name] = subprocess.Popen(
                [sys.executable, str(script), str(parties_file), name, str(value),
                 str(timeouts[name])],
                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True)
            port = config.party[index].port
            until = time.monotonic() + WAIT
            while index > 0 and procs[name].poll() is None and not _listening(port) \
                    and time.monotonic() < until:
                time.sleep(0.05)
        deadline = time.monotonic() + WAIT
        results = []
        for name in config.names():
            p = procs[name]
            try:
                out, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
                results.append((p.returncode, out, err))
            except subprocess.TimeoutExpired:
                results.append((None, "", "timed out"))
        return results
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()


def run_with_retry(tmp_path, make_config, **kw):
    """Free ports can be taken by someone else before a party listens: retry once."""
    results = run_parties(tmp_path, make_config(), **kw)
    if any("is in use on this machine" in err for _, _, err in results):
        results = run_parties(tmp_path, make_config(), **kw)
    return results


@needs_aliases
@pytest.mark.mpc
def test_three_parties_over_tls_on_distinct_loopback_addresses(tmp_path):
    make_test_pki(tmp_path / "certs", NAMES, dict(zip(NAMES, HOSTS)))
    results = run_with_retry(
        tmp_path, lambda: free_loopback_config(NAMES, tmp_path / "certs", HOSTS))
    for rc, out, err in results:
        assert rc == 0, err
        assert out.strip() == f"SUM {sum(VALUES)}"


@pytest.mark.mpc
def test_three_parties_without_tls(tmp_path):
    results = run_with_retry(tmp_path, lambda: free_loopback_config(NAMES))
    assert [out.strip() for _, out, _ in results] == [f"SUM {sum(VALUES)}"] * 3


@needs_aliases
@pytest.mark.mpc
def test_party_with_certificate_from_another_ca_is_refused(tmp_path):
    make_test_pki(tmp_path / "certs", NAMES, dict(zip(NAMES, HOSTS)))
    # The intruder runs its own CA: its certificate is correctly named "MPyC party 2" and
    # passes its own start-up checks, but the genuine parties do not trust its issuer.
    make_test_pki(tmp_path / "rogue", NAMES, dict(zip(NAMES, HOSTS)), ca_name="Rogue CA")

    def configs():
        genuine = free_loopback_config(NAMES, tmp_path / "certs", HOSTS)
        rogue_tls = free_loopback_config(NAMES, tmp_path / "rogue", HOSTS).tls
        return genuine, {"helper": genuine.model_copy(update={"tls": rogue_tls})}

    started = time.monotonic()
    for attempt in range(2):
        genuine, overrides = configs()
        # police gives up first (12 s after it starts, when ngo already listens); the others
        # wait longer, so police's error names only the party it could not connect to.
        results = run_parties(tmp_path, genuine, overrides=overrides,
                              connect_timeout={"police": 12, "ngo": 20, "helper": 20})
        if not any("is in use on this machine" in err for _, _, err in results):
            break
    assert time.monotonic() - started < 2 * WAIT
    for rc, out, err in results:
        assert "SUM" not in out
        assert rc not in (0, None), "each party must give up by itself, not be killed"
        assert "ConnectTimeoutError" in err, err
    police_err = results[0][2]
    assert "police: not connected within 12 s to helper at 127.0.0.3:" in police_err, police_err
    assert "ngo" not in police_err.splitlines()[-1], police_err  # the two genuine parties did connect
    helper_err = results[2][2].splitlines()[-1]
    assert "police (it dials us on port" in helper_err and "ngo (it dials us" in helper_err


def test_test_pki_certificates(tmp_path):
    pki = make_test_pki(tmp_path, NAMES, {"police": "127.0.0.1", "ngo": "ngo.example"})
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    for i, name in enumerate(NAMES):
        crt, key = pki.certs[name]
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert cn == f"MPyC party {i}"
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert f"MPyC party {i}" in san.get_values_for_type(x509.DNSName)
        cert.verify_directly_issued_by(ca)
        assert key.stat().st_mode & 0o077 == 0
    police = x509.load_pem_x509_certificate(pki.certs["police"][0].read_bytes())
    san = police.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert pki.ca_key.stat().st_mode & 0o077 == 0


def test_prepare_tls_dir_layout(tmp_path):
    make_test_pki(tmp_path / "certs", NAMES)
    cfg = free_loopback_config(NAMES, tmp_path / "certs")
    d = prepare_tls_dir(cfg, "ngo")
    conf = d / ".config"
    assert sorted(p.name for p in conf.iterdir()) == ["mpyc_ca.crt", "party_1.crt", "party_1.key"]
    assert (conf / "party_1.key").stat().st_mode & 0o077 == 0
    assert d.stat().st_mode & 0o077 == 0
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(conf / "party_1.crt", conf / "party_1.key")
    ctx.load_verify_locations(conf / "mpyc_ca.crt")


def test_prepare_tls_dir_catches_wrong_order_and_foreign_ca(tmp_path):
    make_test_pki(tmp_path / "certs", NAMES)
    swapped = free_loopback_config(["ngo", "police", "helper"], tmp_path / "certs")
    with pytest.raises(PartiesError, match="ngo is party 0 .* is for 'MPyC party 1'"):
        prepare_tls_dir(swapped, "ngo")
    make_test_pki(tmp_path / "rogue", NAMES, ca_name="Rogue CA")
    (tmp_path / "certs" / "helper.crt").write_bytes((tmp_path / "rogue" / "helper.crt").read_bytes())
    cfg = free_loopback_config(NAMES, tmp_path / "certs")
    with pytest.raises(PartiesError, match="not issued by the CA"):
        prepare_tls_dir(cfg, "helper")
    (tmp_path / "certs" / "ngo.key").write_bytes((tmp_path / "rogue" / "ngo.key").read_bytes())
    with pytest.raises(PartiesError, match="does not match"):
        prepare_tls_dir(cfg, "ngo")


def _cli():
    parser = argparse.ArgumentParser(prog="iq")
    add_certs_command(parser.add_subparsers(dest="command"))
    return parser


def test_iq_certs_command(tmp_path, capsys):
    (tmp_path / "parties.toml").write_text(
        "\n".join(f'[[party]]\nname = "{n}"\nhost = "{h}"\nport = {11365 + i}'
                  for i, (n, h) in enumerate(zip(NAMES, HOSTS)))
        + '\n[tls]\nca = "certs/ca.crt"\ncert = "certs/{name}.crt"\nkey = "certs/{name}.key"\n')
    args = _cli().parse_args(["certs", "--parties", str(tmp_path / "parties.toml")])
    assert args.fn(args) == 0
    assert "helper (MPyC party 2)" in capsys.readouterr().out
    cfg = load_parties(tmp_path / "parties.toml", me="helper")  # files now exist
    prepare_tls_dir(cfg, "helper")
    args = _cli().parse_args(["certs", "--parties", str(tmp_path / "parties.toml"),
                              "--out", str(tmp_path / "certs")])
    assert args.fn(args) == 2
    assert "already exist; pass --force" in capsys.readouterr().err
    args = _cli().parse_args(["certs", "--parties", str(tmp_path / "missing.toml")])
    assert args.fn(args) == 2
