"""SMTP AUTH guessing limits, shared by every connection and worker process.

Failed authentications are counted per login name and per client address
in a small SQLite database (``<state_dir>/auth-throttle.db``, mode 0600; the
workers of one machine share it, SQLite's locking keeps the counts exact).
Each failure is answered only after a delay that doubles with the count
(``delay_base`` … ``delay_max``). At ``login_lockout_after`` failures of one
login, or ``address_lockout_after`` failures from one address (password
spraying: one guess for each of many logins), that login or address is
locked for ``lockout_period``: every AUTH from it is answered 454 without the
password being checked, and the reply does not say which of the two is
locked. A success clears the login's count, not the address's. Counts not
added to for ``forget_after`` seconds are forgotten. IPv6 clients are
counted per /64 (one host usually holds a whole /64). ``phigate users
unlock NAME`` lifts a login's lock at once (``unlock``).
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.config.models import AuthThrottleConfig

SCHEMA = """CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY, count INTEGER NOT NULL, last REAL NOT NULL,
    locked_until REAL NOT NULL DEFAULT 0)"""


@dataclass(frozen=True)
class Failure:
    count: int           # the larger of the login's and the address's counts
    delay: float         # seconds to wait before answering
    locked: bool         # this failure started a lock


def address_key(ip: str) -> str:
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return f"addr:{ip}"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return f"addr:{parsed.ipv4_mapped}"
        return f"addr:{ipaddress.ip_network(f'{parsed}/64', strict=False)}"
    return f"addr:{parsed}"


def throttle_path(state_dir: Path) -> Path:
    return Path(state_dir) / "auth-throttle.db"


class AuthThrottle:
    def __init__(self, path: Path, config: AuthThrottleConfig,
                 clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.config = config
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        os.chmod(self.path, 0o600)
        with self._connect() as db:
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def _keys(self, login: str, ip: str) -> tuple[tuple[str, int], tuple[str, int]]:
        return ((f"login:{login}", self.config.login_lockout_after),
                (address_key(ip), self.config.address_lockout_after))

    def locked_for(self, login: str, ip: str) -> float:
        """Seconds until neither the login nor the address is locked (0: free)."""
        now = self.clock()
        keys = [k for k, _ in self._keys(login, ip)]
        db = self._connect()
        try:
            rows = db.execute("SELECT locked_until FROM failures WHERE key IN (?, ?)",
                              keys).fetchall()
        finally:
            db.close()
        return max([0.0] + [until - now for (until,) in rows])

    def failed(self, login: str, ip: str) -> Failure:
        """Count one failure for the login and the address."""
        now, cfg = self.clock(), self.config
        counts, locked = [], False
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            for key, limit in self._keys(login, ip):
                row = db.execute("SELECT count, last FROM failures WHERE key = ?",
                                 (key,)).fetchone()
                count = 1 if row is None or now - row[1] > cfg.forget_after else row[0] + 1
                until = now + cfg.lockout_period if count >= limit else 0.0
                locked = locked or count == limit
                db.execute("INSERT INTO failures (key, count, last, locked_until) "
                           "VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                           "count = excluded.count, last = excluded.last, "
                           "locked_until = MAX(failures.locked_until, excluded.locked_until)",
                           (key, count, now, until))
                counts.append(count)
            db.execute("DELETE FROM failures WHERE last < ? AND locked_until < ?",
                       (now - cfg.forget_after, now))
            db.execute("COMMIT")
        finally:
            db.close()
        worst = max(counts)
        delay = min(cfg.delay_max, cfg.delay_base * 2 ** min(worst - 1, 30))
        return Failure(worst, delay, locked)

    def unlock(self, login: str) -> bool:
        """Forget a login's failures and lift its lock; False if it had none."""
        db = self._connect()
        try:
            return db.execute("DELETE FROM failures WHERE key = ?",
                              (f"login:{login}",)).rowcount > 0
        finally:
            db.close()

    def succeeded(self, login: str) -> None:
        """Clear the login's count (a write only when there is one, so the
        common case takes no write lock)."""
        key = f"login:{login}"
        db = self._connect()
        try:
            if db.execute("SELECT 1 FROM failures WHERE key = ?", (key,)).fetchone():
                db.execute("DELETE FROM failures WHERE key = ?", (key,))
        finally:
            db.close()

    # the SMTP edge calls these (SQLite work off the event loop)
    async def check(self, login: str, ip: str) -> float:
        return await asyncio.to_thread(self.locked_for, login, ip)

    async def count_failure(self, login: str, ip: str) -> Failure:
        return await asyncio.to_thread(self.failed, login, ip)

    async def clear(self, login: str) -> None:
        await asyncio.to_thread(self.succeeded, login)
