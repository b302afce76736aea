"""A local HTTP endpoint: ``GET /metrics`` (Prometheus text) and
``GET /health`` (200 when every registered check passes, 503 otherwise).
Bind it to loopback or a management network only."""
from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from gateway.config.types import split_hostport


class HealthServer:
    def __init__(self, metrics, address: str):
        self.metrics = metrics
        self.host, self.port = split_hostport(address)
        self.checks: dict[str, Callable[[], bool]] = {}
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] = (self.host, self.port)

    def add_check(self, name: str, check: Callable[[], bool]) -> None:
        self.checks[name] = check

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def _health(self, request: web.Request) -> web.Response:
        results = {}
        for name, check in self.checks.items():
            try:
                results[name] = bool(check())
            except Exception:  # noqa: BLE001 — a failing check reports unhealthy
                results[name] = False
        ok = all(results.values())
        return web.json_response({"status": "ok" if ok else "failing", "checks": results},
                                 status=200 if ok else 503)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.address = site._server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
