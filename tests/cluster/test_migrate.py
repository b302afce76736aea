"""Schema upgrades with several nodes: nodes opening an empty database at
the same moment upgrade it one after the other (PostgreSQL advisory lock;
SQLite file lock), three times over; a database at a revision this phigate
does not know is refused with a message that says why; ``phigate portal
migrate`` upgrades by hand and then has nothing left to do; ``phigate run``
on a newer schema exits 2 with that message."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa
import yaml

from gateway.portal.store import SchemaTooNew, head_revision, open_store, sqlite_url

NODES = 4


def open_together(url: str) -> list[BaseException]:
    """``NODES`` threads, each with its own engine, open the store at once."""
    barrier = threading.Barrier(NODES)
    errors: list[BaseException] = []

    def node() -> None:
        barrier.wait()
        try:
            open_store(url).close()
        except BaseException as exc:   # noqa: BLE001 — collected and asserted on
            errors.append(exc)

    threads = [threading.Thread(target=node) for _ in range(NODES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return errors


def revision(url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.parametrize("run", range(3))
def test_nodes_starting_together_on_empty_postgres(postgres_cluster, run):
    url = postgres_cluster.create_database()
    assert open_together(url) == []
    assert revision(url) == head_revision()


@pytest.mark.parametrize("run", range(3))
def test_nodes_starting_together_on_empty_sqlite(tmp_path, run):
    url = sqlite_url(tmp_path / f"portal-{run}.db")
    assert open_together(url) == []
    assert revision(url) == head_revision()


def test_newer_schema_is_refused(postgres_url):
    open_store(postgres_url).close()
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future'"))
    engine.dispose()
    with pytest.raises(SchemaTooNew, match=r"portal\.database_url: .*'0099_future'.*newer than "
                                           r"this phigate knows.*Upgrade this node"):
        open_store(postgres_url)


def phigate(config, *argv):
    return subprocess.run([sys.executable, "-m", "gateway", "-c", str(config), *argv],
                          capture_output=True, text=True, timeout=120, check=False)


def test_portal_migrate_cli(tmp_path, postgres_url):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"state_dir": str(tmp_path / "var"),
                                      "portal": {"database_url": postgres_url}}))
    first = phigate(config, "portal", "migrate", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"before": None, "after": head_revision(),
                                        "changed": True}
    again = phigate(config, "portal", "migrate")
    assert again.returncode == 0 and "already at revision" in again.stdout

    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future'"))
    engine.dispose()
    newer = phigate(config, "portal", "migrate")
    assert newer.returncode == 1 and "newer than this phigate knows" in newer.stderr
    # a node does not start on it, and says why (no traceback)
    node = phigate(config, "run")
    assert node.returncode == 2 and "Traceback" not in node.stderr
    assert ("configuration error:\n  portal.database_url: the portal database is at schema "
            "revision '0099_future'") in node.stderr
