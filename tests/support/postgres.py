"""A throwaway PostgreSQL cluster for tests: ``initdb`` + ``pg_ctl`` into a temporary
folder, on a free loopback port, with its unix socket in that folder, stopped (by its
own ``pg_ctl stop``, then its postmaster PID) and deleted afterwards.

PostgreSQL refuses to run as root, and CI runs as root: the binaries then run as the
``postgres`` user (``runuser -u postgres --``) in a folder that user owns. Without the
binaries (Debian's ``postgresql`` package) the tests that need a cluster are skipped.

One cluster per test session (starting one costs about a second); each test gets a
fresh database in it (:meth:`PostgresCluster.new_database`).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.ports import free_port, wait_for_port


def find_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: on PATH, else Debian's newest
    ``/usr/lib/postgresql/<version>/bin``; ``None`` when PostgreSQL is not installed."""
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl") is not None:
        return Path(os.path.realpath(initdb)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


class PostgresCluster:
    """One running cluster (``trust`` authentication on 127.0.0.1 only)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.home = Path(tempfile.mkdtemp(prefix="caddytw-pg-"))
        self.data = self.home / "data"
        self.port = free_port()
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.home, "postgres", "postgres")
        self._databases = 0

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [*self._as_postgres, *args],
            cwd=self.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed:\n{result.stdout.decode(errors='replace')}"
            )

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 "
            # Tests need no durability against power cuts; fsync only slows them down.
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.home / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )
        if not wait_for_port(self.port, timeout=15):
            raise RuntimeError(f"PostgreSQL did not listen on {self.port}:\n{self.log()}")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop``; if that fails, SIGQUIT to the postmaster named in its PID file
        (never by process name: other helpers' clusters may be running)."""
        if not (self.data / "postmaster.pid").exists():
            return
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            try:
                pid = int((self.data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGQUIT)
            except (OSError, ValueError, IndexError):
                pass

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def log(self) -> str:
        try:
            return (self.home / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its connection string."""
        import psycopg

        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        self.stop()
        deadline = time.monotonic() + 10
        while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.home, ignore_errors=True)


def start_cluster() -> PostgresCluster | None:
    """A started cluster, or ``None`` when PostgreSQL or psycopg is not installed."""
    bindir = find_bindir()
    if bindir is None:
        return None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None
    cluster = PostgresCluster(bindir)
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        cluster.destroy()
        raise
    return cluster
