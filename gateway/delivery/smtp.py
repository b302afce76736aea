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
- The transaction is written here, not with aiosmtplib's ``sendmail``
  (``smtp_wire``), which costs a round trip per command, ``parseaddr`` per
  address and two regular-expression passes over the body. With
  PIPELINING (RFC 2920) MAIL, every RCPT and DATA go in one write and the
  replies are read in order, then the body; without it one command at a time,
  no RCPT after a refused MAIL and no DATA when every RCPT was refused. The
  bytes on the wire are ``sendmail``'s (``tests/integration/test_upstream_pipelining.py``).
  All recipients refused: RSET (after ending with a lone dot a DATA the server
  took anyway), and the connection stays pooled. A connection in an unknown
  state (a timeout, a malformed reply, bytes nobody asked for) is closed, never
  pooled or sent QUIT. A 421 reply ends the session, as in aiosmtplib.
"""
from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence

import aiosmtplib
from aiosmtplib import (
    SMTPException,
    SMTPResponse,
    SMTPResponseException,
    SMTPServerDisconnected,
)
from aiosmtplib.typing import SMTPStatus

from gateway.audit import get_logger
from gateway.delivery.smtp_wire import PipeliningProtocol, body, envelope, quote
from gateway.malloc import large_buffer_used
from gateway.model import Delivered, Outcome, Permanent, Transient

log = get_logger("upstream")


MIN_DATA_RATE = 100_000      # bytes/s assumed for the DATA timeout of large messages
ACCEPTED = (SMTPStatus.completed, SMTPStatus.will_forward)    # RCPT: 250, 251


def _reply(code: int, message: str) -> str:
    return " ".join(f"{code} {message}".split())


def _by_code(code: int, message: str) -> Outcome:
    text = _reply(code, message)
    return Permanent(text, code) if code >= 500 else Transient(text, code)


def _clean(client: aiosmtplib.SMTP) -> bool:
    """Connected, every reply read and nothing unasked-for buffered."""
    return client.is_connected and client.protocol.clean


def _write(client: aiosmtplib.SMTP, pieces: Sequence[bytes], replies: int) -> PipeliningProtocol:
    """Write ``pieces`` (one writev) that will get ``replies`` replies; the protocol
    to read them from."""
    protocol = client.protocol
    transport = protocol and protocol.transport
    if transport is None or transport.is_closing():
        raise SMTPServerDisconnected("Connection lost")
    protocol.expect(replies)
    transport.writelines(pieces)
    return protocol


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
            if _clean(client):
                await asyncio.wait_for(client.quit(), 5)
            else:
                client.close()
        except (SMTPException, OSError, TimeoutError):
            client.close()

    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, Outcome]:
        addresses = quote(mail_from), [quote(r) for r in rcpts]   # ValueError before any I/O
        async with self._slots:
            for _ in range(2):
                try:
                    client, reused = await self._acquire()
                except (SMTPException, OSError, TimeoutError) as exc:
                    return {r: Transient(_describe(exc)) for r in rcpts}
                outcomes, keep = await self._transaction(client, addresses, rcpts, data)
                if keep:
                    self._release(client)
                else:
                    await self._discard(client)
                if outcomes is not None:
                    return outcomes
                if not reused:
                    break
            return {r: Transient("upstream closed the connection") for r in rcpts}

    async def _transaction(self, client, addresses, rcpts, data):
        """(outcomes or None to retry on a fresh connection, keep the client?)"""
        timeout = max(self.config.timeout, len(data) / MIN_DATA_RATE)
        message, size = body(data)
        large_buffer_used(size)
        try:
            await client._ehlo_or_helo_if_needed()      # as sendmail: once per session
            commands = envelope(*addresses, size if client.supports_extension("size") else None)
            replies = await self._envelope(client, commands, timeout)
            if not replies:
                return None, False
            if replies[0].code != SMTPStatus.completed:
                if len(replies) == len(commands) and replies[-1].code == SMTPStatus.start_input:
                    client.close()      # a server in DATA after refusing MAIL: no QUIT
                return {r: _by_code(replies[0].code, replies[0].message) for r in rcpts}, False
            if len(replies) <= len(rcpts):
                return None, False
            refused = {r: _by_code(reply.code, reply.message)
                       for r, reply in zip(rcpts, replies[1:]) if reply.code not in ACCEPTED}
            if len(refused) == len(rcpts):
                return refused, await self._reset(client, replies[len(commands) - 1:], timeout)
            if len(replies) < len(commands):
                return None, False
            if replies[-1].code != SMTPStatus.start_input:
                return {r: _by_code(replies[-1].code, replies[-1].message) for r in rcpts}, False
            final = await self._exchange(client, message, timeout)
        except SMTPServerDisconnected:
            return None, False
        except SMTPResponseException as exc:
            client.close()
            return {r: _by_code(exc.code, exc.message) for r in rcpts}, False
        except (SMTPException, OSError, TimeoutError) as exc:
            client.close()
            return {r: Transient(_describe(exc)) for r in rcpts}, False
        if final.code != SMTPStatus.completed:
            return {r: _by_code(final.code, final.message) for r in rcpts}, False
        return {r: refused.get(r) or Delivered() for r in rcpts}, _clean(client)

    @staticmethod
    async def _exchange(client, pieces: Sequence[bytes], timeout) -> SMTPResponse:
        """Write one command (or the body) and read its reply."""
        protocol = _write(client, pieces, 1)
        reply = await protocol.read_response(timeout)
        if reply.code == SMTPStatus.domain_unavailable:
            client.close()
        return reply

    async def _envelope(self, client, commands: list[bytes], timeout) -> list[SMTPResponse]:
        """Replies to MAIL, each RCPT and DATA: with PIPELINING written at once and
        read in order; without, one at a time, no RCPT after a refused MAIL and no
        DATA when every RCPT was refused. Short when the connection dropped (up to
        and including a 421, after which the server hangs up)."""
        replies: list[SMTPResponse] = []
        try:
            if client.supports_extension("pipelining"):
                protocol = _write(client, commands, len(commands))
                for _ in commands:
                    replies.append(await protocol.read_response(timeout))
                    if replies[-1].code == SMTPStatus.domain_unavailable:
                        client.close()
                        break
                return replies
            replies.append(await self._exchange(client, commands[:1], timeout))
            if replies[0].code != SMTPStatus.completed:
                return replies
            for command in commands[1:-1]:
                replies.append(await self._exchange(client, (command,), timeout))
            if any(reply.code in ACCEPTED for reply in replies[1:]):
                replies.append(await self._exchange(client, commands[-1:], timeout))
        except SMTPServerDisconnected:
            client.close()
        return replies

    async def _reset(self, client, start: list[SMTPResponse], timeout) -> bool:
        """Every recipient refused: end a DATA the server took anyway with a lone
        dot (RFC 2920), then RSET. Is the connection fit for another message?"""
        try:
            if start and start[0].code == SMTPStatus.start_input:
                await self._exchange(client, (b".\r\n",), timeout)
            reply = await self._exchange(client, (b"RSET\r\n",), timeout)
        except (SMTPException, OSError, TimeoutError):
            client.close()
            return False
        return reply.code == SMTPStatus.completed and _clean(client)

    async def close(self) -> None:
        """QUIT every pooled connection at once: an upstream that no longer answers
        delays the shutdown by one QUIT timeout, not one per connection."""
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._discard(client) for client, _ in idle))
