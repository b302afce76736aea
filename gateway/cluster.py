"""The cluster view: gateways sharing one portal database report themselves.

Each node writes one row of ``nodes`` (portal schema, revision 0005): its
name (``portal.node_name``, else the host name), phigate version, start and
last heartbeat times, the SHA-256 of its config file, policy file, users
file and certificate store (every file under it, by relative path and
content), one labelled hash over the portal secret and TOTP key (which must
be the same files on every node), and how many items wait in its own spool (queue and hold). The
daemon's ``Heartbeat`` refreshes the row every ``portal.heartbeat``.

``cluster_status`` reads the rows back for ``phigate cluster status``: a
node whose heartbeat is older than ``dead_after`` is dead (its spool stays
on its disk until it, or a machine given that disk, starts again); a node
whose policy, users, certificate or secrets hash differs from the most
common one has drifted. Config files differ per node by nature (addresses, node name),
so their hash is shown but not flagged. Nothing here touches PHI.
"""
from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections import Counter
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from gateway.audit import get_logger
from gateway.config import Config
from gateway.policy.loader import SHIPPED_DEFAULT
from gateway.portal.schema import nodes
from gateway.portal.service import portal_secrets
from gateway.portal.store import load_totp_key

log = get_logger("cluster")
DRIFT_FIELDS = ("policy_sha256", "users_sha256", "certs_sha256", "secrets_sha256")
MISSING = "-" * 64        # the hash of a file that is not there


def file_sha256(path: Path | None) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else MISSING
    except OSError:
        return MISSING


def tree_sha256(root: Path) -> str:
    """One hash over every regular file under ``root``: relative path and content."""
    digest = hashlib.sha256()
    root = Path(root)
    if not root.is_dir():
        return MISSING
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def running_version() -> str:
    try:
        return version("phigate")
    except PackageNotFoundError:        # a checkout on sys.path without `pip install`
        return "unknown"


def node_name(config: Config) -> str:
    return config.portal.node_name or socket.gethostname()


def secrets_sha256(config: Config) -> str:
    """One hash over the portal secret and the TOTP key (labelled, so it is
    no plain hash of either): nodes with different files differ here."""
    secret, _previous = portal_secrets(config.portal, config.state_dir)
    totp = load_totp_key(config.portal.totp_key_file or config.state_dir / "portal-totp.key")
    return hashlib.sha256(b"phigate cluster secrets\0" + secret + b"\0" + totp).hexdigest()


def fingerprint(config: Config, config_path: Path | None) -> dict[str, str]:
    """What must match across nodes, as hashes."""
    return {"config_sha256": file_sha256(config_path),
            "policy_sha256": file_sha256(config.policy or SHIPPED_DEFAULT),
            "users_sha256": file_sha256(config.auth.users_file),
            "certs_sha256": tree_sha256(config.smime.store_dir or config.state_dir / "certs"),
            "secrets_sha256": secrets_sha256(config)}


def beat(engine: Engine, name: str, release: str, started_at: float, hashes: dict[str, str],
         spool: int, now: float | None = None) -> None:
    """Insert or refresh this node's row (one statement)."""
    now = time.time() if now is None else now
    values = {"version": release, "started_at": started_at, "heartbeat_at": now,
              "spool": spool, **hashes}
    with engine.begin() as conn:
        upsert = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(nodes)
        conn.execute(upsert.values(name=name, **values).on_conflict_do_update(
            index_elements=[nodes.c.name], set_=values))


def cluster_status(engine: Engine, dead_after: float, now: float | None = None) -> list[dict]:
    """Every node with ``age`` (seconds since its heartbeat), ``dead`` and
    ``drift`` (the fields in which it differs from the most common value)."""
    now = time.time() if now is None else now
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(nodes).order_by(nodes.c.name)).mappings()]
    common = {f: Counter(r[f] for r in rows).most_common(1)[0][0] for f in DRIFT_FIELDS} \
        if rows else {}
    for row in rows:
        row["age"] = round(now - row["heartbeat_at"], 1)
        row["dead"] = row["age"] > dead_after
        row["drift"] = [f.removesuffix("_sha256") for f in DRIFT_FIELDS if row[f] != common[f]]
    return rows


class Heartbeat:
    """The daemon's loop: ``beat`` now and every ``portal.heartbeat`` of the
    running config ``config()`` (in a thread: the database may be slow); a
    failure is logged and retried."""

    def __init__(self, engine: Engine, config: Callable[[], Config], config_path: Path | None,
                 spool: Callable[[], int]):
        self.engine, self.config, self.config_path = engine, config, config_path
        self.version, self.spool = running_version(), spool
        self.started_at = time.time()

    def beat_sync(self) -> None:
        config = self.config()          # the running one (SIGHUP may have swapped it)
        beat(self.engine, node_name(config), self.version, self.started_at,
             fingerprint(config, self.config_path), self.spool())

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.beat_sync)
            except Exception:
                log.exception("cluster heartbeat failed")
            await asyncio.sleep(self.config().portal.heartbeat)


def spool_counter(store) -> Callable[[], int]:
    """Items waiting in a QueueStore's queue and hold areas."""
    return lambda: len(store.ids("queue")) + len(store.ids("hold"))
