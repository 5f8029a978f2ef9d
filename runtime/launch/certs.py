"""A test PKI for MPyC's `--ssl`: one CA, one certificate per party. For tests and demos.

What MPyC 0.11 checks (mpyc/runtime.py, Runtime.start):
- both sides load `.config/party_{i}.crt/.key` and trust only `.config/mpyc_ca.crt`;
- the listening side (higher index) requires a client certificate from that CA
  (CERT_REQUIRED) but does not check its name: the connecting peer's index is whatever it
  sends first;
- the connecting side (lower index) checks the server's certificate against the name
  "MPyC party {j}" (server_hostname), never against the IP address or DNS name it dialled.
So each certificate is for "MPyC party {i}", i = the party's index in the parties file. We
put that name in the subject CN and also as a subjectAltName DNS entry (OpenSSL only
falls back to the CN when there is no DNS SAN), plus the party's IP address as an IP SAN
for other tools. Keys are ECDSA P-256.

In production the organisations' own PKI issues these certificates (spec/deployment.md);
this module generates every private key in one place, which is only acceptable for tests.
"""
from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def mpyc_party_name(index: int) -> str:
    """The certificate name MPyC expects for party `index`."""
    return f"MPyC party {index}"


@dataclass(frozen=True)
class PkiFiles:
    ca_cert: Path
    ca_key: Path
    certs: dict[str, tuple[Path, Path]]
    """party name -> (certificate, private key)"""


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ip_san(host: str | None) -> list[x509.GeneralName]:
    if host is None:
        return []
    try:
        return [x509.IPAddress(ipaddress.ip_address(host))]
    except ValueError:
        return [x509.DNSName(host)]  # a host name rather than an address


def make_test_pki(out_dir: str | Path, names: list[str], hosts: dict[str, str] | None = None,
                  *, ca_name: str = "InsightQL test CA", days: int = 365) -> PkiFiles:
    """Write ca.crt/ca.key and {name}.crt/{name}.key to out_dir; party i is "MPyC party i".

    `names` must be in parties-file order. `hosts` (name -> IP address or host name) adds a
    subjectAltName for the party's address.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hosts = hosts or {}
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name),
                            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "InsightQL test")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject).issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = PkiFiles(out / "ca.crt", out / "ca.key", {})
    _write_cert(pki.ca_cert, ca_cert)
    _write_key(pki.ca_key, ca_key)

    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    for i, name in enumerate(names):
        key = ec.generate_private_key(ec.SECP256R1())
        cn = mpyc_party_name(i)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(ca_subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            # every party is a TLS server (to higher indices) and a client (to lower ones)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn),
                                                        *_ip_san(hosts.get(name))]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(aki, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        crt_path, key_path = out / f"{name}.crt", out / f"{name}.key"
        _write_cert(crt_path, cert)
        _write_key(key_path, key)
        pki.certs[name] = (crt_path, key_path)
    return pki


# -- CLI: `iq certs --parties parties.toml --out certs/` ---------------------------------------

def add_certs_command(subparsers) -> argparse.ArgumentParser:
    """Register `iq certs`; the handler (args -> exit code) is set as `fn` (and `handler`)."""
    from insightql.runtime.cli.common import examples
    p = subparsers.add_parser(
        "certs", help="generate a test CA and one TLS certificate per party (tests/demos only)",
        description="Generate a test CA and one certificate per party, named "
                    "'MPyC party <index>' in parties-file order. Every private key is "
                    "generated here: for tests and demos only (see spec/deployment.md).",
        **examples("iq certs --parties parties.toml --out certs/",
                   "iq certs --parties parties.toml --days 30 --force"))
    p.add_argument("--parties", required=True, metavar="FILE",
                   help="the parties file (TOML: names, host:port, [tls]), e.g. --parties parties.toml")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: the folder of the [tls] ca path, "
                        "else certs/ next to the parties file), e.g. --out certs/")
    p.add_argument("--days", type=int, default=365, metavar="N",
                   help="validity in days (default 365), e.g. --days 30")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing files, e.g. iq certs --parties parties.toml --force")
    p.set_defaults(fn=run_certs_command)
    return p


def run_certs_command(args: argparse.Namespace) -> int:
    from insightql.runtime.cli.common import error_words
    from insightql.runtime.launch.parties import PartiesError, load_parties

    if not Path(args.parties).is_file():
        why = "is a folder, not a parties file" if Path(args.parties).is_dir() else "no such parties file"
        print(f"iq: {args.parties}: {why}", file=sys.stderr)
        return 2
    try:
        config = load_parties(args.parties, check_files=False)
    except PartiesError as e:
        print(f"iq: {e}", file=sys.stderr)
        return 2
    if args.days < 1:
        print(f"iq: --days {args.days}: a certificate must be valid for at least one day, e.g. --days 30",
              file=sys.stderr)
        return 2
    if args.out is not None:
        out = Path(args.out)
    elif config.tls is not None:
        out = Path(config.tls.ca).parent
    else:
        out = Path(args.parties).parent / "certs"
    names = config.names()
    targets = [out / "ca.crt", out / "ca.key"] + [out / f"{n}.{e}" for n in names
                                                  for e in ("crt", "key")]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.force:
        print(f"iq: {', '.join(existing)} already exist; pass --force to overwrite",
              file=sys.stderr)
        return 2
    try:
        pki = make_test_pki(out, names, {p.name: p.host for p in config.party}, days=args.days)
    except OSError as e:
        print(f"iq: cannot write the certificates: {error_words(e)}", file=sys.stderr)
        return 2
    print(f"wrote test CA {pki.ca_cert} and certificates for "
          + ", ".join(f"{n} (MPyC party {i})" for i, n in enumerate(names)))
    if config.tls is None:
        d = out.resolve()
        print("note: the parties file has no [tls] table; add one to use these files:\n"
              f'  [tls]\n  ca = "{d}/ca.crt"\n  cert = "{d}/{{name}}.crt"\n'
              f'  key = "{d}/{{name}}.key"')
    else:
        mismatch = [str(f) for n in names for f in (config.tls_files(n).cert,
                                                    config.tls_files(n).key)
                    if f.resolve() not in {t.resolve() for t in targets}]
        if Path(config.tls.ca).resolve() != pki.ca_cert.resolve():
            mismatch.insert(0, config.tls.ca)
        if mismatch:
            print("iq: warning: the [tls] table points elsewhere: " + ", ".join(mismatch),
                  file=sys.stderr)
    print("keep ca.key offline; give each organisation only its own .key file")
    return 0
