"""Portal benchmark (run by hand, not in CI): ``.venv/bin/python bench/portal.py``.

Fills a store with ``--accounts`` accounts (default 10,000) and ``--messages``
messages (default 100,000, spread evenly), starts the real web app on
loopback and measures, with ``--concurrency`` clients, requests per second
and p50/p99 latency of (a) login (POST /login: argon2id verify + session) and
(b) the inbox page of a logged-in patient. Once on SQLite, once on a
throwaway PostgreSQL cluster (Debian's package, as in the tests).
Login is bounded by argon2 (64 MiB, t=3: ~100-150 ms of CPU each) by design.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.audit import configure_logging
from gateway.config.models import PortalConfig
from gateway.portal.app import build_app, serve
from gateway.portal.auth import _hasher
from gateway.portal.schema import accounts, messages
from gateway.portal.store import new_public_id, open_store, sqlite_url
from tests.peers.postgres import PostgresCluster
from tests.peers.sink import free_port

PASSWORD = "benchmark password"


def fill(store, n_accounts: int, n_messages: int) -> None:
    password_hash = _hasher.hash(PASSWORD)
    now = time.time()
    with store.engine.begin() as conn:
        conn.execute(insert(accounts), [
            {"public_id": new_public_id(), "email": f"p{i}@mail.example", "first_name": "P",
             "last_name": str(i), "provider": "Dr Smith", "password_hash": password_hash,
             "created_at": now} for i in range(1, n_accounts + 1)])
    batch = 10_000
    for start in range(0, n_messages, batch):
        with store.engine.begin() as conn:
            conn.execute(insert(messages), [
                {"public_id": new_public_id(), "account_id": 1 + i % n_accounts,
                 "queue_id": f"q{i}", "recipient": f"p{1 + i % n_accounts}@mail.example",
                 "sender": "dr.smith@smiledental.example", "subject": f"Visit {i}",
                 "body_text": "Your appointment summary. " * 20, "created_at": now - i,
                 "read_at": None if i % 3 else now, "expires_at": now + 86400}
                for i in range(start, min(n_messages, start + batch))])


async def login(session, base) -> float:
    async with session.get(base + "/login") as r:
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', await r.text()).group(1)
    t = time.perf_counter()
    async with session.post(base + "/login", data={"email": session.bench_email,
                                                   "password": PASSWORD, "csrf": csrf},
                            allow_redirects=False) as r:
        assert r.status == 303, r.status
    return time.perf_counter() - t


async def inbox(session, base) -> float:
    t = time.perf_counter()
    async with session.get(base + "/inbox") as r:
        assert r.status == 200 and "Visit" in await r.text()
    return time.perf_counter() - t


async def measure(name, fn, sessions, base, total) -> None:
    latencies: list[float] = []
    per_client = max(1, total // len(sessions))

    async def client(session):
        for _ in range(per_client):
            latencies.append(await fn(session, base))

    start = time.perf_counter()
    await asyncio.gather(*(client(s) for s in sessions))
    wall = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"  {name:6s} {len(latencies) / wall:8.1f} req/s   p50 "
          f"{statistics.median(latencies) * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   "
          f"(n={len(latencies)})")


async def run_one(label: str, url: str, args) -> None:
    store = open_store(url)
    t = time.perf_counter()
    fill(store, args.accounts, args.messages)
    print(f"{label}: {args.accounts} accounts, {args.messages} messages loaded in "
          f"{time.perf_counter() - t:.1f} s")
    port = free_port()
    config = PortalConfig(address=f"127.0.0.1:{port}", base_url=f"http://127.0.0.1:{port}",
                          secure_cookies=False, lockout_threshold=1_000_000)
    runner = await serve(build_app(store, config, b"b" * 32), "127.0.0.1", port)
    base = config.base_url
    sessions = []
    for i in range(args.concurrency):
        s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        s.bench_email = f"p{1 + i * 7 % args.accounts}@mail.example"
        sessions.append(s)
    try:
        await measure("login", login, sessions, base, args.logins)
        await measure("inbox", inbox, sessions, base, args.inbox)
    finally:
        for s in sessions:
            await s.close()
        await runner.cleanup()
        store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--logins", type=int, default=64)
    parser.add_argument("--inbox", type=int, default=2000)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    configure_logging("warning")     # no audit line per request on the console
    with tempfile.TemporaryDirectory() as tmp:
        await run_one("SQLite", sqlite_url(Path(tmp) / "portal.db"), args)
    if args.skip_postgres:
        return
    base = Path(tempfile.mkdtemp(prefix="phigate-bench-pg-"))
    base.chmod(0o755)
    cluster = PostgresCluster(base / "cluster")
    cluster.start()
    try:
        await run_one("PostgreSQL", cluster.create_database(), args)
    finally:
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
