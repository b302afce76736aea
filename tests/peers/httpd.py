"""A small HTTP server for tests (aiohttp, in a thread with its own event
loop) serving fixed bodies: CRLs, AIA caIssuers certificates, certificates
named by IPKIX CERT records. It records every path requested, so a test can
show that a CRL or an intermediate was really fetched.

    server = Httpd(); server.start()
    server.put("/int.crl", der)          # server.url("/int.crl", host="crl.dd.test")
    server.hits["/int.crl"]              # how many GETs
"""
from __future__ import annotations

import asyncio
import collections
import threading

import pytest
from aiohttp import web

from tests.peers.ports import free_port


class Httpd:
    def __init__(self):
        self.port = free_port()
        self.bodies: dict[str, bytes] = {}
        self.hits: collections.Counter[str] = collections.Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def put(self, path: str, body: bytes) -> None:
        self.bodies[path] = body

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        body = self.bodies.get(request.path)
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type="application/octet-stream")

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_get("/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="test-httpd", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("test HTTP server did not start")

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=20)
        self._loop.close()
        self._loop = None


@pytest.fixture
def httpd():
    server = Httpd()
    server.start()
    try:
        yield server
    finally:
        server.stop()
