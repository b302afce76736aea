"""The users file (``auth.users_file``, mode 0600):

    users:
      frontdesk:
        password: "$argon2id$v=19$m=65536,t=3,p=4$..."
        senders: [frontdesk@smiledental.example, "@smiledental.example"]

``senders`` entries are exact addresses or ``@domain`` for a whole domain
(matching rules in ``gateway.auth.senders``). The file is read again when it
changes (``refresh``, called before each AUTH), so ``phigate users add``
takes effect without a SIGHUP; a changed file that does not load is logged
and the users already loaded stay.
Verification runs argon2 in a worker thread (≈100 ms; aiosmtpd would
otherwise block every session) and caches successful checks for a short
time keyed by a keyed hash of (user, password), so a client that connects for
each message does not pay the hash cost every time.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field

from gateway.audit import get_logger
from gateway.auth.senders import address_allowed
from gateway.config.load import ConfigError, load_yaml_model
from gateway.queue.safeio import atomic_replace

log = get_logger("users")
_hasher = PasswordHasher()
CACHE_SECONDS = 300.0
CACHE_SIZE = 1024


class UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(pattern=r"^\$argon2")
    senders: list[str] = []


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: dict[str, UserEntry] = {}


class UserDirectory:
    def __init__(self, users: dict[str, UserEntry], path: Path | None = None):
        self.users = users
        self.path = path
        self._cache: dict[bytes, float] = {}
        self._cache_key = secrets.token_bytes(32)
        self._seen = _identity(path)

    @classmethod
    def load(cls, path: Path) -> UserDirectory:
        """Missing file = no users (nobody can submit until one is added)."""
        path = Path(path)
        if not path.exists():
            return cls({}, path)
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077:
            raise ConfigError([f"{path}: readable by others (mode {mode:04o}); run chmod 600 {path}"])
        return cls(load_yaml_model(path, UsersFile).users, path)

    def replace(self, other: UserDirectory) -> None:
        """SIGHUP: take the users (and the file, which may have moved) of a
        freshly loaded directory."""
        self.users = other.users
        self.path = other.path
        self._seen = other._seen
        self._cache.clear()

    def refresh(self) -> None:
        """Load the file again if it changed on disk since it was read."""
        if self.path is None:
            return
        seen = _identity(self.path)
        if seen == self._seen:
            return
        try:
            fresh = UserDirectory.load(self.path)
        except ConfigError as exc:
            log.error("users file changed but does not load; keeping the users loaded",
                      problems=exc.problems)
            self._seen = seen
            return
        self.replace(fresh)
        log.info("users file reloaded", count=len(self.users))

    # ---- checks -----------------------------------------------------------
    def _fingerprint(self, name: str, password: str) -> bytes:
        return hmac.new(self._cache_key, f"{name}\0{password}".encode(), hashlib.sha256).digest()

    def verify_sync(self, name: str, password: str) -> bool:
        entry = self.users.get(name)
        if entry is None:
            _hasher.hash("timing-equaliser")          # same cost for unknown users
            return False
        try:
            return _hasher.verify(entry.password, password)
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, name: str, password: str) -> bool:
        key = self._fingerprint(name, password)
        now = time.monotonic()
        expires = self._cache.get(key)
        if expires is not None and expires > now and name in self.users:
            return True
        ok = await asyncio.to_thread(self.verify_sync, name, password)
        if ok:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = now + CACHE_SECONDS
        return ok

    def may_send_as(self, name: str, address: str) -> bool:
        entry = self.users.get(name)
        if entry is None:
            return False
        return address_allowed(entry.senders, address)

    # ---- editing ----------------------------------------------------------
    def add(self, name: str, password: str, senders: list[str]) -> None:
        if not name or any(c.isspace() or c in ":\0" for c in name):
            raise ValueError("user names may not contain spaces, ':' or NUL")
        if len(password) < 10:
            raise ValueError("passwords must have at least 10 characters")
        self.users[name] = UserEntry(password=_hasher.hash(password), senders=senders)
        self.save()

    def remove(self, name: str) -> None:
        if self.users.pop(name, None) is None:
            raise KeyError(name)
        self.save()

    def save(self) -> None:
        assert self.path is not None
        data = {"users": {n: e.model_dump() for n, e in sorted(self.users.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_replace(self.path, yaml.safe_dump(data, sort_keys=False).encode())


def _identity(path: Path | None) -> tuple[int, int, int] | None:
    """What tells a changed file: inode (atomic replace), size and mtime."""
    try:
        st = os.stat(path) if path is not None else None
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns) if st else None
