"""A throwaway PostgreSQL cluster for tests (Debian's ``postgresql``).

``initdb`` into tmp, ``postgres`` on a free loopback port, trust auth on
loopback only, stopped with ``pg_ctl stop -m immediate``. Run as the
``postgres`` system user (``runuser``) when the tests run as root.
Session-scoped: one cluster per test run, one fresh database per test.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.peers import missing_peer
from tests.peers.ports import free_port


def pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class PostgresCluster:
    def __init__(self, directory: Path):
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()

    def _run(self, argv: list[str], timeout: float = 60) -> None:
        done = subprocess.run(_as_postgres(argv), check=False, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode:
            raise RuntimeError(f"{Path(argv[0]).name} failed: {done.stdout[-2000:]}")

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run([pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                   "--no-sync", "-E", "UTF8"])
        opts = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c full_page_writes=off")
        self._run([pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                   str(self.directory / "log"), "-w", "-t", "60", "start"], timeout=90)

    def stop(self) -> None:
        self._run([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "30",
                   "stop"])

    def create_database(self) -> str:
        name = "t" + uuid.uuid4().hex[:12]
        self._run([pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                   "-c", f"CREATE DATABASE {name}"])
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres_cluster():
    if pg_bin("initdb") is None:
        missing_peer("PostgreSQL (Debian package postgresql) is not installed")
    # Not under pytest's tmp (0700 for root): the postgres user must reach it.
    base = Path(tempfile.mkdtemp(prefix="phigate-pg-"))
    base.chmod(0o755)
    cluster = PostgresCluster(base / "cluster")
    try:
        cluster.start()
        yield cluster
        cluster.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """A fresh, empty database in the session's cluster."""
    return postgres_cluster.create_database()
