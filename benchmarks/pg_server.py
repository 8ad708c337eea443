"""A throw-away PostgreSQL server on a free loopback port (tests and ``python -m benchmarks db``).

``initdb`` refuses to run as root, so when this process is root the server
binaries run as the ``postgres`` system user (``runuser``) in a temp folder
that user owns. Password authentication (scram-sha-256) is on for TCP, so a
wrong password is really refused.

    with PostgresServer.start() as pg:
        pg.url   # postgresql://seeknal:<password>@127.0.0.1:<port>/seeknal
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

USER = "seeknal"
DATABASE = "seeknal"


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    candidates = [shutil.which("initdb"), *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)]
    for found in candidates:
        if found and Path(found).with_name("pg_ctl").exists():
            return Path(os.path.realpath(found)).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    folder: Path
    port: int
    password: str
    as_postgres: bool

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def url_with(self, *, password: str | None = None, port: int | None = None, database: str | None = None) -> str:
        return (f"postgresql://{USER}:{password or self.password}@127.0.0.1:{port or self.port}/"
                f"{database or DATABASE}")

    @classmethod
    def start(cls) -> PostgresServer:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql")
        as_postgres = os.geteuid() == 0
        folder = Path(tempfile.mkdtemp(prefix="seeknal-pg-"))
        password = secrets.token_hex(12)
        server = cls(bin_dir, folder, _free_port(), password, as_postgres)
        if as_postgres:
            shutil.chown(folder, "postgres", "postgres")
        pwfile = folder / "pw"
        pwfile.write_text(password + "\n")
        if as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        server._run("initdb", "-D", str(folder / "data"), "-U", USER, "--pwfile", str(pwfile),
                    "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C")
        pwfile.unlink()
        opts = f"-p {server.port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off -c full_page_writes=off"
        server._run("pg_ctl", "-D", str(folder / "data"), "-l", str(folder / "log"), "-o", opts, "-w", "start")
        server.psql(f"CREATE DATABASE {DATABASE}", database="postgres")
        return server

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin_dir / program), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=self.folder)
        if done.returncode:
            raise RuntimeError(f"{program} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done

    def psql(self, sql: str, *, database: str = DATABASE) -> str:
        """Run SQL through the local socket (trust auth) and return psql's output."""
        psql = self.bin_dir / "psql" if (self.bin_dir / "psql").exists() else Path(shutil.which("psql") or "psql")
        cmd = [str(psql), "-h", str(self.folder), "-p", str(self.port), "-U", USER, "-d", database,
               "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def psql_command(self) -> list[str]:
        """psql over the socket, for shell-level use (e.g. ``\\copy`` in a benchmark)."""
        return ["psql", "-h", str(self.folder), "-p", str(self.port), "-U", USER, "-d", DATABASE]

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        finally:
            time.sleep(0.1)
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
