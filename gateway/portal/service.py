"""PortalService: the portal role, ready to run inside any asyncio loop.

Builds from ``PortalConfig`` the web app (every mail it writes goes to
``spool``: the daemon's dispatcher, or ``RemoteSpool`` when the portal runs
alone) and the hourly purge; ``start()`` listens on ``portal.address``,
``stop()`` closes everything. Used by ``phigate run`` (through
``gateway/app.py``) and by ``phigate portal serve``.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from gateway.config.models import PortalConfig
from gateway.config.types import split_hostport
from gateway.portal.app import build_app, load_secret, serve
from gateway.portal.mails import phi_free, to_provider
from gateway.portal.security import read_secret_file
from gateway.portal.store import PortalStore, load_totp_key, open_store, sqlite_url

log = structlog.get_logger()
PURGE_INTERVAL = 3600.0


def database_url(config: PortalConfig, state_dir: Path) -> str:
    return config.database_url or sqlite_url(state_dir / "portal.db")


def portal_secrets(config: PortalConfig, state_dir: Path) -> tuple[bytes, tuple[bytes, ...]]:
    """(current secret, previous secrets): ``portal.secret_file`` shared by the
    cluster, or the node's own ``<state_dir>/portal-secret`` made on first use."""
    previous = tuple(read_secret_file(path, f"portal.previous_secret_files[{n}]")
                     for n, path in enumerate(config.previous_secret_files))
    if config.secret_file is None:
        return load_secret(Path(state_dir) / "portal-secret"), previous
    return read_secret_file(config.secret_file, "portal.secret_file"), previous


def unsent_adopter(config: PortalConfig, put):
    """For migration 0004: a function committing one row of the old outbox to
    the spool with ``put(envelope, raw, plan) -> QueueItem``; returns its id."""
    def adopt(row: dict) -> str:
        if row["rcpt"]:                                   # a read notice
            envelope, plan = phi_free(config.notice_from or "", row["rcpt"], "read-notice",
                                      "the portal's notice that a message was read")
        else:
            account = {"email": "", "provider": row["provider"]}
            route = to_provider(config, account)
            if route is None:
                raise RuntimeError(f"portal outbox row {row['id']}: no mailbox or address "
                                   f"for provider {row['provider']!r}; configure "
                                   "portal.provider_addresses or portal.default_mailbox")
            envelope, plan = route
        return put(envelope, row["raw"], plan).id
    return adopt


def open_portal_store(config: PortalConfig, state_dir: Path, put=None) -> PortalStore:
    """The store, its schema upgraded; ``put`` (``QueueStore.put_sync``) lets
    the upgrade move mail left in a pre-0004 outbox into the spool."""
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    adopt = unsent_adopter(config, put) if put is not None else None
    key = load_totp_key(config.totp_key_file or Path(state_dir) / "portal-totp.key")
    return open_store(database_url(config, state_dir), totp_key=key, adopt_unsent=adopt)


class PortalService:
    def __init__(self, config: PortalConfig, state_dir: Path, store: PortalStore, spool):
        self.config = config
        self.store = store
        secret, previous = portal_secrets(config, state_dir)
        self.app = build_app(store, config, secret, spool=spool, previous_secrets=previous)
        self._runner = None
        self._tasks: list[asyncio.Task] = []

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the real port when the config said 0)."""
        server = self._runner.sites[0]._server
        return server.sockets[0].getsockname()[:2]

    async def start(self) -> None:
        host, port = split_hostport(self.config.address)
        self._runner = await serve(self.app, host, port)
        self._tasks = [asyncio.create_task(self._purge_loop())]
        log.info("portal listening", address=self.config.address)

    async def _purge_loop(self) -> None:
        while True:
            try:
                removed = await self.store.purge(sent_retention=self.config.retention)
                if removed:
                    log.info("portal purge", count=removed)
            except Exception:
                log.exception("portal purge failed")
            await asyncio.sleep(PURGE_INTERVAL)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
