"""A throwaway PostgreSQL server for the tests and the benchmarks: a cluster made by initdb in a
temporary folder, started by pg_ctl on a free port of 127.0.0.1 (its unix socket in the same
folder), password authentication for one user, stopped and deleted at the end.

PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user (or `nobody`)
through runuser. `unavailable()` says in one line why no server can start here.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "molstrata"
PASSWORD = "s3cret-pg-pass"  # the tests check that it never reaches a file or stderr
BIN_DIRS = ("/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
INSTALL = "install the PostgreSQL server (Debian: apt-get install postgresql) and psycopg " \
          "(pip install 'psycopg[binary]>=3.1')"


def binaries() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None."""
    for folder in BIN_DIRS:
        if all(os.access(Path(folder) / name, os.X_OK) for name in ("initdb", "pg_ctl",
                                                                      "postgres")):
            return Path(folder)
    return None


def _run_as() -> list[str]:
    """The prefix that runs a server command as a user PostgreSQL accepts (not root)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        if shutil.which("runuser"):
            return ["runuser", "-u", user, "--"]
    return []


def unavailable() -> str | None:
    """Why no server can start here (one line), or None."""
    if binaries() is None:
        return f"no PostgreSQL server binaries (initdb, pg_ctl) in {', '.join(BIN_DIRS)}: " \
               + INSTALL
    if os.geteuid() == 0 and not _run_as():
        return "running as root, and no postgres user and runuser to start PostgreSQL " \
               "(initdb refuses root): run the tests as another user"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed: " + INSTALL
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """One throwaway cluster. fast: no fsync (tests; a crash loses nothing they need)."""

    def __init__(self, fast: bool = True) -> None:
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        self.bin = binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="molstrata-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.fast = fast
        self._as = _run_as()
        password_file = self.folder / "password"
        password_file.write_text(PASSWORD)
        if self._as:
            user = self._as[2]
            record = pwd.getpwnam(user)
            os.chown(self.folder, record.pw_uid, record.pw_gid)
            os.chown(password_file, record.pw_uid, record.pw_gid)
        self._server("initdb", "-D", str(self.data), "-U", USER, "--auth=scram-sha-256",
                     f"--pwfile={password_file}", "-E", "UTF8", "--no-sync")
        password_file.unlink()

    def _server(self, program: str, *args: str) -> None:
        command = [*self._as, str(self.bin / program), *args]
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        """Start (or start again) the server on its port."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 " \
                  "-c max_connections=200"
        if self.fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._server("pg_ctl", "start", "-w", "-t", "30", "-D", str(self.data),
                     "-l", str(self.folder / "server.log"), "-o", options)

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are cut, as in a restart)."""
        self._server("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    def close(self) -> None:
        """Stop the server if it runs and delete its folder."""
        try:
            self.stop()
        except RuntimeError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        """The SQLAlchemy URL of `database` (psycopg 3)."""
        return f"postgresql+psycopg://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD,
                             dbname="postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
