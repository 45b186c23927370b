"""A throwaway PostgreSQL server for the tests and benchmarks, from the Debian ``postgresql`` package's binaries.

One server in a temporary folder on a free port of 127.0.0.1, with password logins over TCP (so a
wrong password can be tested) and fsync off (its data is thrown away). PostgreSQL refuses to run as
root, so as root the server runs as the ``postgres`` user (``runuser``), in a folder that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

PASSWORD = "failpath-test-secret"
MISSING = (
    "PostgreSQL's server binaries are not installed: install the Debian package `postgresql` "
    "(apt-get install -y postgresql) to run the PostgreSQL store tests"
)


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_ctl``, else None.

    ``FAILPATH_TEST_PG_BIN`` names another folder of PostgreSQL's binaries (a build of your own, another
    distribution's layout); set to a folder without them, the PostgreSQL tests are skipped.
    """
    chosen = os.environ.get("FAILPATH_TEST_PG_BIN")
    if chosen is not None:
        ok = all(os.access(os.path.join(chosen, p), os.X_OK) for p in ("initdb", "pg_ctl"))
        return Path(chosen) if ok else None
    found = []
    for candidate in glob.glob("/usr/lib/postgresql/*/bin"):
        if os.access(os.path.join(candidate, "initdb"), os.X_OK) and os.access(os.path.join(candidate, "pg_ctl"), os.X_OK):
            with contextlib.suppress(ValueError):
                found.append((float(Path(candidate).parent.name), Path(candidate)))
    return max(found)[1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayServer:
    """A PostgreSQL server started in a temporary folder; :meth:`stop` removes it all."""

    def __init__(self, bin_dir: Path, *, fsync: bool = False) -> None:
        """``fsync=False`` (tests): nothing is forced to disk. ``fsync=True`` (benchmarks): WAL flushed to disk
        as a production server does, with ``synchronous_commit=off`` (a commit survives a killed server
        process, not an OS crash: the SQLite store's guarantee with ``synchronous=NORMAL``)."""
        self.bin_dir = bin_dir
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="failpath-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile), "--encoding=UTF8",
            "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
        )
        settings = [f"port={self.port}", "listen_addresses='127.0.0.1'", f"unix_socket_directories='{self.root}'",
                    "max_connections=200", "shared_buffers=128MB"]
        settings += ["synchronous_commit=off"] if fsync else ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n".join(settings) + "\n")
        self.start()

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr or done.stdout}\n{log}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def restart(self) -> None:
        """Stop the server (closing every connection) and start it again."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-m", "fast", "restart")

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", *, password: str = PASSWORD) -> str:
        """The URL of ``database`` as the superuser ``postgres``."""
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its name."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, closing its connections first."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
