"""The parties file: who computes, where they listen, and which certificates they use.

One TOML file, the same at every organisation (see spec/deployment.md):

    [[party]]
    name = "police"
    host = "10.0.0.1"
    port = 11365
    ...
    [tls]                       # omit only for a loopback demo
    ca = "certs/ca.crt"
    cert = "certs/{name}.crt"   # {name} becomes the party's name
    key = "certs/{name}.key"    # relative paths are relative to the parties file

The order of `[[party]]` entries is the MPyC party index (0, 1, ...), so every organisation
must use the same order. This module only reads and validates; `mpyc_setup` turns a config
into MPyC's command line.
"""
from __future__ import annotations

import ipaddress
import json
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""Party names end up in file names ({name}.crt), so keep them to a safe alphabet."""


class PartiesError(ValueError):
    """A parties file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Party(_Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)


class TlsConfig(_Strict):
    ca: str
    cert: str = Field(pattern=r"\{name\}")
    key: str = Field(pattern=r"\{name\}")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PartiesConfig(_Strict):
    party: list[Party] = Field(min_length=1)
    tls: TlsConfig | None = None

    @model_validator(mode="after")
    def _unique(self):
        seen_names: dict[str, int] = {}
        seen_addrs: dict[tuple[str, int], str] = {}
        for i, p in enumerate(self.party):
            if p.name in seen_names:
                raise ValueError(f"party[{i}]: duplicate name {p.name!r} "
                                 f"(also party[{seen_names[p.name]}])")
            seen_names[p.name] = i
            # MPyC listens on every interface of its host, so two loopback parties on one
            # machine clash on the port even when their addresses differ.
            host = "<loopback>" if _is_loopback(p.host) else p.host
            if (host, p.port) in seen_addrs:
                where = "this machine's loopback" if host == "<loopback>" else p.host
                raise ValueError(f"party[{i}] {p.name!r}: port {p.port} on {where} is already "
                                 f"used by {seen_addrs[host, p.port]!r} (MPyC listens on all "
                                 f"interfaces, so parties on one host need distinct ports)")
            seen_addrs[host, p.port] = p.name
        return self

    # -- queries ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [p.name for p in self.party]

    def index_of(self, name: str) -> int:
        for i, p in enumerate(self.party):
            if p.name == name:
                return i
        raise PartiesError(f"unknown party {name!r}; the parties file declares "
                           f"{', '.join(self.names())}")

    def get(self, name: str) -> Party:
        return self.party[self.index_of(name)]

    def computing(self, names: list[str]) -> "PartiesConfig":
        """The parties that compute one plan, in the plan's order: MPyC party i is names[i]. The
        parties file lists every party of the catalog; its order fixes only certificate names."""
        missing = [n for n in names if n not in self.names()]
        if missing:
            raise PartiesError(f"the plan needs party(ies) {', '.join(missing)}, which the parties file does not "
                               f"declare (it has {', '.join(self.names())})")
        return PartiesConfig(party=[self.get(n) for n in names], tls=self.tls)

    @property
    def threshold(self) -> int:
        """MPyC's default Shamir threshold t = (m-1)//2; t = 0 (m <= 2) means no privacy."""
        return (len(self.party) - 1) // 2

    def tls_files(self, name: str) -> TlsFiles | None:
        """The CA, certificate and key paths for party `name`, or None without TLS."""
        self.index_of(name)
        if self.tls is None:
            return None
        return TlsFiles(Path(self.tls.ca), Path(self.tls.cert.replace("{name}", name)),
                        Path(self.tls.key.replace("{name}", name)))

    def check_tls_files(self, me: str | None = None) -> None:
        """Raise PartiesError unless the CA (and `me`'s certificate and key) exist."""
        if self.tls is None:
            return
        names = [me] if me is not None else []
        missing = []
        if not Path(self.tls.ca).is_file():
            missing.append(f"CA certificate {self.tls.ca}")
        for n in names:
            files = self.tls_files(n)
            for what, path in (("certificate", files.cert), ("private key", files.key)):
                if not path.is_file():
                    missing.append(f"{n}'s {what} {path}")
        if missing:
            raise PartiesError("TLS is on but files are missing: " + "; ".join(missing)
                               + " (generate test certificates with `iq certs`, "
                               "see spec/deployment.md)")

    def to_toml(self) -> str:
        """The config as a parties file (TLS paths as stored: absolute after loading)."""
        s = json.dumps
        out = []
        for p in self.party:
            out += ["[[party]]", f"name = {s(p.name)}", f"host = {s(p.host)}",
                    f"port = {p.port}", ""]
        if self.tls is not None:
            out += ["[tls]", f"ca = {s(self.tls.ca)}", f"cert = {s(self.tls.cert)}",
                    f"key = {s(self.tls.key)}", ""]
        return "\n".join(out)


def _format_validation(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        msg = err["msg"].removeprefix("Value error, ")
        if loc == "party" and err["type"] in ("missing", "too_short"):
            msg = "no [[party]] entries"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "string_pattern_mismatch" and loc.endswith("name"):
            msg = "party names use letters, digits, '_', '.', '-' (they name certificate files)"
        elif err["type"] == "string_pattern_mismatch":
            msg = "must contain the placeholder {name}"
        lines.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(lines)


def _absolute(base: Path, p: str) -> str:
    return p if Path(p).is_absolute() else str(base / p)


def parse_parties(data: dict, base_dir: Path | str = ".", source: str = "<parties>") -> PartiesConfig:
    """Validate an already-parsed parties document; relative TLS paths join `base_dir`."""
    base = Path(base_dir).resolve()
    tls = data.get("tls")
    if isinstance(tls, dict):
        data = dict(data)
        data["tls"] = {k: _absolute(base, v) if k in ("ca", "cert", "key") and isinstance(v, str)
                       else v for k, v in tls.items()}
    try:
        return PartiesConfig.model_validate(data)
    except ValidationError as e:
        raise PartiesError(f"{source}: {_format_validation(e)}") from None


def load_parties(path: str | Path, *, me: str | None = None,
                 check_files: bool = True) -> PartiesConfig:
    """Read and validate a parties file.

    With TLS, the CA certificate must exist (and `me`'s certificate and key, if `me` is
    given); pass check_files=False to skip that, e.g. before generating certificates.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PartiesError(f"{path}: cannot read parties file: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PartiesError(f"{path}: not valid TOML: {e}") from None
    config = parse_parties(data, path.parent, str(path))
    if me is not None:
        try:
            config.index_of(me)
        except PartiesError as e:
            raise PartiesError(f"{path}: {e}") from None
    if check_files:
        try:
            config.check_tls_files(me)
        except PartiesError as e:
            raise PartiesError(f"{path}: {e}") from None
    return config


def free_loopback_config(names: list[str], tls_dir: str | Path | None = None,
                         hosts: list[str] | None = None) -> PartiesConfig:
    """A config for a local run: one free port per party, hosts 127.0.0.1 unless given.

    Ports come from the kernel (bind to port 0). All probe sockets stay open until every
    port is chosen, so the ports are distinct; another process may still take one before
    MPyC listens on it, so callers that must not fail retry with a fresh config
    (`mpyc_setup.check_port_free` reports the clash clearly). With `tls_dir`, the
    certificate layout is the one `certs.make_test_pki` writes (ca.crt, {name}.crt/.key).
    """
    hosts = list(hosts) if hosts is not None else ["127.0.0.1"] * len(names)
    if len(hosts) != len(names):
        raise ValueError("free_loopback_config: one host per name")
    probes = []
    try:
        ports = []
        for _ in names:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(s)
            s.bind(("", 0))  # MPyC listens on all interfaces: probe the same way
            ports.append(s.getsockname()[1])
    finally:
        for s in probes:
            s.close()
    data: dict = {"party": [{"name": n, "host": h, "port": p}
                            for n, h, p in zip(names, hosts, ports)]}
    if tls_dir is not None:
        d = Path(tls_dir).resolve()
        data["tls"] = {"ca": str(d / "ca.crt"), "cert": str(d / "{name}.crt"),
                       "key": str(d / "{name}.key")}
    return parse_parties(data, source="free_loopback_config")
