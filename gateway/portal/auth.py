"""Password login with lockout and optional TOTP.

argon2id hashes (argon2-cffi defaults) computed in a thread. After
``threshold`` consecutive failures the account locks for ``base`` seconds,
doubling with each further lock but never longer than ``longest`` (a soft
lock: time lifts it, and so does a password-reset link, so someone guessing
cannot keep a patient out); a success resets the counter. Guessing from one
client address is stopped before that by the per-address login throttle in
``gateway.portal.app`` (``portal.login_client_limit``).
Every failure looks the same to the caller: unknown address, wrong
password, wrong code and locked account all give ``None``.

TOTP (RFC 6238, 30 s steps, ±1 step of clock drift): each accepted time step
is remembered on the account (``totp_last_step``) and never accepted again,
so a code cannot be replayed within its window.
"""
from __future__ import annotations

import asyncio
import datetime
import hmac
import time
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.portal.store import PortalStore

_hasher = PasswordHasher()
# Verified against when the address is unknown so timing does not tell.
_DUMMY_HASH = _hasher.hash("phigate-dummy-password")
MIN_PASSWORD_LENGTH = 10


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def _verify(password_hash: str, password: str) -> bool:
    def run():
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
    return await asyncio.to_thread(run)


def totp_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step (±1 around now) whose code is ``code``, else None."""
    code = code.strip().replace(" ", "")
    if not secret or len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = time.time() if now is None else now
    step = totp.timecode(datetime.datetime.fromtimestamp(now, tz=datetime.UTC))
    found = None
    for candidate in (step - 1, step, step + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            found = candidate
    return found


def password_problem(password: str, again: str) -> str | None:
    if password != again:
        return "The two passwords are not the same."
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    return None


@dataclass(frozen=True)
class Lockout:
    threshold: int = 10
    base: float = 300.0
    longest: float = 3600.0


class Authenticator:
    def __init__(self, store: PortalStore, lockout: Lockout):
        self.store = store
        self.lockout = lockout

    async def login(self, email: str, password: str, code: str = "") -> dict | None:
        """The account on success, else None (and the failure counted)."""
        account = await self.store.account_by_email(email)
        usable = (account is not None and account["status"] == "active"
                  and account["password_hash"] is not None)
        ok = await _verify(account["password_hash"] if usable else _DUMMY_HASH, password)
        if not usable:
            return None
        if not await self._second_factor_ok(account, ok, code):
            return None
        await self.store.set_account(account["id"], failed_logins=0, lock_count=0,
                                     locked_until=0.0)
        return account

    async def confirm(self, account: dict, password: str, code: str) -> bool:
        """Re-check a logged-in holder's password and current TOTP code (before
        turning the second factor off); failures count towards the lockout."""
        fresh = await self.store.account(account["id"])
        if fresh is None or fresh["password_hash"] is None:
            return False
        ok = await _verify(fresh["password_hash"], password)
        return await self._second_factor_ok(fresh, ok, code)

    async def _second_factor_ok(self, account: dict, ok: bool, code: str) -> bool:
        now = time.time()
        if account["locked_until"] > now:
            return False
        if ok and account["totp_secret"]:
            step = totp_step(account["totp_secret"], code, now)
            ok = step is not None and await self.store.advance_totp_step(account["id"], step)
        if not ok:
            await self._count_failure(account, now)
        return ok

    async def _count_failure(self, account: dict, now: float) -> None:
        failures, locks = await self.store.count_failed_login(account["id"])
        if failures >= self.lockout.threshold:
            await self.store.set_account(account["id"], failed_logins=0, lock_count=locks + 1,
                                         locked_until=now + min(self.lockout.longest,
                                                            self.lockout.base * 2 ** min(locks, 30)))
