"""Parties file: loading, validation messages, free ports, MPyC argv."""
import socket
from pathlib import Path

import pytest

from insightql.runtime.launch.mpyc_setup import PortInUseError, check_port_free, mpyc_argv
from insightql.runtime.launch.parties import PartiesError, free_loopback_config, load_parties

THREE = """
[[party]]
name = "police"
host = "127.0.0.1"
port = 11365
[[party]]
name = "ngo"
host = "127.0.0.2"
port = 11366
[[party]]
name = "helper"
host = "127.0.0.3"
port = 11367
"""

TLS = """
[tls]
ca = "certs/ca.crt"
cert = "certs/{name}.crt"
key = "certs/{name}.key"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "parties.toml"
    p.write_text(text)
    return p


def error_of(tmp_path, text, **kw) -> str:
    with pytest.raises(PartiesError) as e:
        load_parties(write(tmp_path, text), **kw)
    return str(e.value)


def test_valid_file_without_tls(tmp_path):
    cfg = load_parties(write(tmp_path, THREE))
    assert cfg.names() == ["police", "ngo", "helper"]
    assert cfg.index_of("ngo") == 1
    assert cfg.get("helper").port == 11367
    assert cfg.tls is None and cfg.tls_files("ngo") is None
    assert cfg.threshold == 1


def test_tls_paths_are_relative_to_the_parties_file(tmp_path):
    (tmp_path / "certs").mkdir()
    for f in ("ca.crt", "ngo.crt", "ngo.key"):
        (tmp_path / "certs" / f).write_text("x")
    cfg = load_parties(write(tmp_path, THREE + TLS), me="ngo")
    files = cfg.tls_files("ngo")
    assert files.ca == tmp_path.resolve() / "certs" / "ca.crt"
    assert files.cert == tmp_path.resolve() / "certs" / "ngo.crt"
    assert files.key == tmp_path.resolve() / "certs" / "ngo.key"


def test_missing_tls_files_are_named(tmp_path):
    msg = error_of(tmp_path, THREE + TLS)
    assert "TLS is on but files are missing" in msg and "ca.crt" in msg and "iq certs" in msg
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.crt").write_text("x")
    load_parties(tmp_path / "parties.toml")  # CA present, no `me`: enough
    msg = error_of(tmp_path, THREE + TLS, me="police")
    assert "police's certificate" in msg and "police's private key" in msg
    load_parties(tmp_path / "parties.toml", me="police", check_files=False)


@pytest.mark.parametrize("text, expected", [
    (THREE + "\n[extra]\nx = 1\n", "extra: unknown field"),
    (THREE.replace('port = 11366', 'port = 11366\nprot = 1'), "party[1].prot: unknown field"),
    (THREE + TLS.replace('key =', 'kee ='), "tls.kee: unknown field"),
    (THREE.replace('"ngo"', '"police"'), "party[1]: duplicate name 'police'"),
    (THREE.replace('11366', '11365'), "port 11365 on this machine's loopback is already used"),
    (THREE.replace('11366', '70000'), "party[1].port: Input should be less than or equal"),
    (THREE.replace('"ngo"', '"n g o"'), "party[1].name: party names use letters"),
    (THREE + TLS.replace('certs/{name}.key', 'certs/key.pem'), "tls.key: must contain"),
    ("", "party: no [[party]] entries"),
    ("[[party]]\nname = 'a'\nhost = '10.0.0.1'\n", "party[0].port: Field required"),
    ("[[party]\n", "not valid TOML"),
])
def test_invalid_files(tmp_path, text, expected):
    msg = error_of(tmp_path, text)
    assert expected in msg
    assert str(tmp_path / "parties.toml") in msg


def test_same_port_on_different_hosts_is_fine(tmp_path):
    text = THREE.replace("127.0.0.2", "10.0.0.2").replace("127.0.0.3", "10.0.0.3")
    text = text.replace("11366", "11365").replace("11367", "11365")
    assert len(load_parties(write(tmp_path, text)).party) == 3
    with pytest.raises(PartiesError, match="port 11365 on 10.0.0.2"):
        load_parties(write(tmp_path, text.replace("10.0.0.3", "10.0.0.2")))


def test_unknown_party_and_missing_file(tmp_path):
    cfg = load_parties(write(tmp_path, THREE))
    with pytest.raises(PartiesError, match="unknown party 'court'.*police, ngo, helper"):
        cfg.index_of("court")
    assert "unknown party" in error_of(tmp_path, THREE, me="court")
    with pytest.raises(PartiesError, match="cannot read parties file"):
        load_parties(tmp_path / "nope.toml")


def test_free_loopback_config(tmp_path):
    cfg = free_loopback_config(["a", "b", "c"])
    ports = [p.port for p in cfg.party]
    assert len(set(ports)) == 3 and all(p.host == "127.0.0.1" for p in cfg.party)
    for p in ports:
        check_port_free("127.0.0.1", p)
    cfg = free_loopback_config(["a", "b"], tls_dir=tmp_path, hosts=["127.0.0.1", "127.0.0.2"])
    assert cfg.tls_files("b").cert == tmp_path.resolve() / "b.crt"
    assert cfg.tls_files("b").ca == tmp_path.resolve() / "ca.crt"
    # round trip through a file
    again = load_parties(write(tmp_path, cfg.to_toml()), check_files=False)
    assert again == cfg


def test_mpyc_argv(tmp_path):
    cfg = load_parties(write(tmp_path, THREE))
    assert mpyc_argv(cfg, "ngo") == ["-I", "1", "-P", "127.0.0.1:11365", "-P", "127.0.0.2:11366",
                                     "-P", "127.0.0.3:11367"]
    assert mpyc_argv(cfg, "police", ["-L", "64", "--no-log"])[-3:] == ["-L", "64", "--no-log"]
    cfg = free_loopback_config(["a", "b", "c"], tls_dir=tmp_path)
    assert mpyc_argv(cfg, "c")[:2] == ["-I", "2"] and "--ssl" in mpyc_argv(cfg, "c")
    for bad in (["-I", "0"], ["-B", "9000"], ["-M3"], ["--ssl"], ["--base=1"], ["--out"], ["-V"]):
        with pytest.raises(ValueError, match="may not be passed through"):
            mpyc_argv(cfg, "a", bad)


def test_check_port_free_reports_port_in_use():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        port = s.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} is in use"):
            check_port_free("127.0.0.2", port)
    finally:
        s.close()
