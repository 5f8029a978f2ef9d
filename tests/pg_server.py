"""A real, throw-away PostgreSQL server for the tests: initdb into a temporary folder, postgres on a
free loopback port (and a Unix socket in that folder), stopped and removed at the end.

The server binaries are looked up on PATH, then in `pg_config --bindir`, then in Debian's
/usr/lib/postgresql/<version>/bin (`apt-get install postgresql`, as .ci/run does). postgres will not
run as root: as root the server runs as the `postgres` user (Debian's package creates it). Without
binaries the tests that need a server skip, except in CI (environment variable CI set), where they
fail: the PostgreSQL source is to be tested against a real server there.

Authentication: the Unix socket trusts the superuser `iq`; TCP asks for a password (scram-sha-256),
so a test can connect as `reader` with the password in the connection string and check that it
never appears in any output.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPERUSER = "iq"
READER, READER_PASSWORD = "reader", "s3cret-Pa55word-xyzzy"
DATABASE = "iqtest"


def find_bindir() -> Path | None:
    names = ("initdb", "pg_ctl", "postgres")
    found = shutil.which("pg_ctl")
    candidates = [Path(os.path.realpath(found)).parent] if found else []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(Path(out.stdout.strip()))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                      if Path(p).parent.name.isdigit() else 0, reverse=True)
    candidates += [Path(p) for p in versions]
    return next((d for d in candidates if all((d / n).exists() for n in names)), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    folder: Path
    port: int
    bindir: Path
    user: str | None  # the OS user the server runs as (None: this process's)

    @property
    def socket_dsn(self) -> str:
        """The superuser over the Unix socket (no password)."""
        return f"host={self.folder} port={self.port} user={SUPERUSER} dbname={DATABASE}"

    @property
    def reader_dsn(self) -> str:
        """The read-only role over TCP, with its password in the string."""
        return f"host=127.0.0.1 port={self.port} user={READER} password={READER_PASSWORD} dbname={DATABASE}"

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        full = [str(self.bindir / cmd[0]), *cmd[1:]]
        if self.user:
            full = ["runuser", "-u", self.user, "--", *full]
        return subprocess.run(full, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> None:
        data = self.folder / "data"
        self.run("initdb", "-D", str(data), "-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync",
                 "--auth-local=trust", "--auth-host=scram-sha-256")
        opts = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=20")
        self.run("pg_ctl", "-D", str(data), "-l", str(self.folder / "server.log"), "-o", opts, "-w", "-t", "60",
                 "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop", check=False)


def start_server() -> PgServer | str:
    """A running server, or the reason there is none."""
    bindir = find_bindir()
    if bindir is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH, in pg_config --bindir or in " \
               "/usr/lib/postgresql/*/bin; `apt-get install postgresql` provides them"
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
        user = "postgres"
    folder = Path(tempfile.mkdtemp(prefix="iq-pg-"))
    if user:
        shutil.chown(folder, user)
    server = PgServer(folder, _free_port(), bindir, user)
    try:
        server.start()
    except subprocess.CalledProcessError as e:
        log = (folder / "server.log").read_text(errors="replace")[-2000:] if (folder / "server.log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        return f"the PostgreSQL server did not start: {e.stderr.strip()[-1000:]} {log}"
    import psycopg
    with psycopg.connect(server.socket_dsn.replace(DATABASE, "postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    with psycopg.connect(server.socket_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}'")
        conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {READER}")
    return server


@pytest.fixture(scope="session")
def pg_server():
    """The session's PostgreSQL server (skips without binaries, fails in CI)."""
    started = start_server()
    if isinstance(started, str):
        if os.environ.get("CI"):
            pytest.fail(f"CI must test the PostgreSQL source against a real server: {started}")
        pytest.skip(started)
    yield started
    started.stop()
    shutil.rmtree(started.folder, ignore_errors=True)

