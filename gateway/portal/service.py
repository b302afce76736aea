"""PortalService: the portal role, ready to run inside any asyncio loop.

Builds from ``PortalConfig`` the store, the provider-mailbox couriers, the
outbox delivery loop, the web app (its reset links go out through
``upstream``) and the hourly purge; ``start()`` listens
on ``portal.address``, ``stop()`` closes everything. Used by ``phigate run``
(through ``gateway/app.py``) and by ``phigate portal serve``.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from gateway.config.models import PortalConfig
from gateway.config.types import split_hostport
from gateway.delivery.imap import ImapCourier
from gateway.portal.app import build_app, load_secret, serve
from gateway.portal.outbox import OutboxDelivery
from gateway.portal.store import PortalStore, load_totp_key, open_store, sqlite_url

log = structlog.get_logger()
PURGE_INTERVAL = 3600.0


def database_url(config: PortalConfig, state_dir: Path) -> str:
    return config.database_url or sqlite_url(state_dir / "portal.db")


def open_portal_store(config: PortalConfig, state_dir: Path) -> PortalStore:
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    key = load_totp_key(config.totp_key_file or Path(state_dir) / "portal-totp.key")
    return open_store(database_url(config, state_dir), totp_key=key)


class PortalService:
    def __init__(self, config: PortalConfig, state_dir: Path, store: PortalStore,
                 upstream=None, sender: str = ""):
        self.config = config
        self.store = store
        mailboxes = {name: ImapCourier.from_config(m)
                     for name, m in config.provider_mailboxes.items()}
        default = ImapCourier.from_config(config.default_mailbox) if config.default_mailbox else None
        self.outbox = OutboxDelivery(store, config, mailboxes, default_mailbox=default,
                                     upstream=upstream, sender=sender or config.notice_from)
        self.app = build_app(store, config, load_secret(Path(state_dir) / "portal-secret"),
                             outbox=self.outbox, mailer=upstream)
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
        self._tasks = [asyncio.create_task(self.outbox.run()),
                       asyncio.create_task(self._purge_loop())]
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
