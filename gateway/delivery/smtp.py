"""UpstreamCourier: delivery to the practice's provider with aiosmtplib.

- TLS: ``none``, ``starttls`` (required: ``start_tls=True``; aiosmtplib's
  default ``None`` would silently fall back to plaintext) or ``implicit``;
  certificates verified unless ``verify: false``; ``ca_file`` for a private CA.
- AUTH with the password read once from ``password_file`` (never logged).
- Per-recipient outcomes: a 5xx for one recipient fails only that one; 4xx
  is Transient; connection, TLS and timeout errors are Transient for all.
- A pool of up to ``pool_size`` connected clients is reused across messages
  (Postfix does the same); clients idle longer than ``idle_timeout`` are
  closed. A send that fails on a reused connection is retried once on a new
  one (the server may have dropped an idle session).
- aiosmtplib turns lone CR and LF into CRLF before DATA with a substitution
  that also rewrites every CRLF: a third of the CPU of relaying a 1 MB
  message. ``normalize_line_endings`` (installed in its place) substitutes only
  when a bare CR or LF exists (``gateway.crlf``); the output is byte for byte
  aiosmtplib's (``tests/unit/test_upstream_line_endings.py``).
"""
from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence

import aiosmtplib
import aiosmtplib.protocol
from aiosmtplib import (
    SMTPException,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
)

from gateway.audit import get_logger
from gateway.crlf import to_crlf
from gateway.model import Delivered, Outcome, Permanent, Transient

log = get_logger("upstream")



def normalize_line_endings(message: bytes) -> bytes:
    """aiosmtplib's ``normalize_message_line_endings``, without the substitution
    when every CR and LF already stands in a CRLF pair."""
    message = to_crlf(message)
    return message if message.endswith(b"\r\n") else message + b"\r\n"


aiosmtplib.protocol.normalize_message_line_endings = normalize_line_endings

MIN_DATA_RATE = 100_000      # bytes/s assumed for the DATA timeout of large messages


def _reply(code: int, message: str) -> str:
    return " ".join(f"{code} {message}".split())


def _by_code(code: int, message: str) -> Outcome:
    text = _reply(code, message)
    return Permanent(text, code) if code >= 500 else Transient(text, code)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SMTPResponseException):
        return _reply(exc.code, exc.message)
    if isinstance(exc, ssl.SSLError) or "CERTIFICATE" in str(exc):
        return f"TLS error with the upstream: {exc.__class__.__name__}"
    return f"upstream unreachable: {exc.__class__.__name__}"


class UpstreamCourier:
    def __init__(self, config, hostname: str):
        self.config = config
        self.helo = config.helo_name or hostname
        self.password = (config.password_file.read_text().strip()
                         if config.password_file else None)
        self.tls_context = (ssl.create_default_context(cafile=str(config.ca_file))
                            if config.ca_file and config.tls != "none" else None)
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._slots = asyncio.Semaphore(config.pool_size)

    def _new_client(self) -> aiosmtplib.SMTP:
        c = self.config
        return aiosmtplib.SMTP(
            hostname=c.host, port=c.port, local_hostname=self.helo, timeout=c.timeout,
            use_tls=c.tls == "implicit", start_tls=c.tls == "starttls",
            validate_certs=c.verify, tls_context=self.tls_context,
            username=c.username, password=self.password)

    async def _acquire(self) -> tuple[aiosmtplib.SMTP, bool]:
        now = time.monotonic()
        while self._idle:
            client, last_used = self._idle.pop()
            if now - last_used < self.config.idle_timeout and client.is_connected:
                return client, True
            await self._discard(client)
        client = self._new_client()
        await client.connect()
        return client, False

    def _release(self, client: aiosmtplib.SMTP) -> None:
        if client.is_connected:
            self._idle.append((client, time.monotonic()))

    async def _discard(self, client: aiosmtplib.SMTP) -> None:
        try:
            if client.is_connected:
                await asyncio.wait_for(client.quit(), 5)
        except (SMTPException, OSError, TimeoutError):
            client.close()

    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, Outcome]:
        async with self._slots:
            for _ in range(2):
                try:
                    client, reused = await self._acquire()
                except (SMTPException, OSError, TimeoutError) as exc:
                    return {r: Transient(_describe(exc)) for r in rcpts}
                outcomes, keep = await self._transaction(client, mail_from, rcpts, data)
                if keep:
                    self._release(client)
                else:
                    await self._discard(client)
                if outcomes is not None:
                    return outcomes
                if not reused:
                    break
            return {r: Transient("upstream closed the connection") for r in rcpts}

    async def _transaction(self, client, mail_from, rcpts, data):
        """(outcomes or None to retry on a fresh connection, keep the client?)"""
        timeout = max(self.config.timeout, len(data) / MIN_DATA_RATE)
        try:
            errors, _ = await client.sendmail(mail_from, list(rcpts), data, timeout=timeout)
        except SMTPRecipientsRefused as exc:
            return {e.recipient: _by_code(e.code, e.message) for e in exc.recipients}, True
        except SMTPServerDisconnected:
            return None, False
        except SMTPResponseException as exc:
            return {r: _by_code(exc.code, exc.message) for r in rcpts}, False
        except (SMTPException, OSError, TimeoutError) as exc:
            return {r: Transient(_describe(exc)) for r in rcpts}, False
        outcomes: dict[str, Outcome] = {}
        for r in rcpts:
            refused = errors.get(r)
            outcomes[r] = _by_code(refused.code, refused.message) if refused else Delivered()
        return outcomes, True

    async def close(self) -> None:
        while self._idle:
            client, _ = self._idle.pop()
            await self._discard(client)
