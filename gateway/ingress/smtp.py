"""The submission listener: a thin aiosmtpd edge in front of the core.

It turns an SMTP session into ``Envelope`` + bytes and hands them to
the acceptor's ``accept`` (``Submission.accept``: classify, decide, commit);
it never delivers.

Session rules:
- STARTTLS (or implicit TLS) before anything else; AUTH PLAIN and LOGIN are
  offered only after TLS and required before MAIL. Clients in
  ``auth.trusted_networks`` may submit without TLS and AUTH (off by default).
- AUTH guessing: failures are counted per login and per client address
  across connections and workers (``gateway.auth.throttle``); each failure is
  answered after a growing delay, a locked login or address gets 454 4.7.0
  without its password being checked. The users file is read again when it
  changes.
- MAIL FROM must be an address the authenticated user may send as (553);
  so must every address in the header From: and Sender: (550 5.7.1 at DATA),
  unless it is one of ``auth.shared_senders``. Matching rules (domain without
  case, local part exact) are in ``gateway.auth.senders``.
- Limits: SIZE / ``limits.max_message_size`` (552), ``limits.max_recipients``
  (452 4.5.3 for the extra recipients), ``limits.max_line_length`` (500 after
  the final dot), ``limits.max_connections`` (421 at connect), command and
  DATA timeouts.
- SMTP smuggling (bare CR/LF): aiosmtpd ≥ 1.4.5 ends DATA only at
  ``<CRLF>.<CRLF>``, so ``<LF>.<LF>`` cannot end a message early and inject a
  second one. A bare CR or LF can still appear *inside* the data; with
  ``smtp.bare_line_endings: normalize`` it becomes CRLF before the message is
  stored (so downstream servers never see an ambiguous line end), with
  ``reject`` the message is refused with 550 5.6.2.
- EHLO adds PIPELINING and ENHANCEDSTATUSCODES to what aiosmtpd offers
  (SIZE, 8BITMIME, SMTPUTF8, STARTTLS/AUTH); aiosmtpd reads pipelined commands
  in order, and its own replies that lack an RFC 3463 code get one on the way
  out (``enhanced``), so the advertisement is true for every reply.
- Replies are generic and never echo message content; any unexpected error
  answers 451 4.3.0 and the message stays the client's.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
import socket
import time

from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword

from gateway.audit import audit, get_logger
from gateway.auth.senders import address_allowed, header_senders
from gateway.auth.throttle import AuthThrottle, throttle_path
from gateway.config.types import split_hostport
from gateway.crlf import has_bare_eol, to_crlf
from gateway.ingress.lean import LeanSMTP
from gateway.model import Accepted, Envelope

log = get_logger("smtp")

_HAS_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}( |$)")
# aiosmtpd's built-in replies (text after the code) → the RFC 3463 code they mean
_ENHANCED_FOR = (
    ("552", "Error: message size exceeds", "5.3.4"),
    ("552", "Error: Too much mail data", "5.3.4"),
    ("500", "Line too long", "5.5.2"),
    ("500", "Command line too long", "5.5.2"),
    ("530", "", "5.7.0"),
    ("535", "", "5.7.8"),
    ("538", "", "5.7.11"),
    ("554", "", "5.5.0"),
    ("503", "", "5.5.1"),
    ("501", "", "5.5.4"),
    ("502", "", "5.5.1"),
    ("555", "", "5.5.4"),
)


def enhanced(status: str) -> str:
    """Give a final 2xx/4xx/5xx reply line an enhanced status code if it has
    none (RFC 2034). The greeting, EHLO/HELO lines and 3xx are left alone."""
    code, sep, text = status[:3], status[3:4], status[4:]
    if sep != " " or code[:1] not in "245" or code == "220" or _HAS_ENHANCED.match(text):
        return status
    for known, prefix, ext in _ENHANCED_FOR:
        if code == known and text.startswith(prefix):
            return f"{code} {ext} {text}"
    return f"{code} {code[0]}.0.0 {text}"


class SubmissionHandler:
    """aiosmtpd hooks: AUTH, MAIL, RCPT and DATA checks, then the acceptor."""

    def __init__(self, server: SubmissionServer):
        self.server = server

    # ---- AUTH (async, so argon2 runs in a thread) ---------------------------
    async def _check(self, smtp, login: bytes, password: bytes) -> AuthResult:
        server = self.server
        name = login.decode("utf-8", "replace")
        ip = _ip(smtp.session)
        if await server.throttle.check(name, ip) > 0:
            server.count_auth("locked")
            return AuthResult(success=False, handled=False,
                              message="454 4.7.0 Temporary authentication failure, "
                                      "try again later")
        server.users.refresh()
        try:
            ok = await server.users.verify(name, password.decode("utf-8"))
        except UnicodeDecodeError:
            ok = False
        if ok:
            await server.throttle.clear(name)
            return AuthResult(success=True, handled=False, auth_data=LoginPassword(login, b""))
        failure = await server.throttle.count_failure(name, ip)
        server.count_auth("failed")
        audit("auth_failed", auth_user=name, peer=_peer(smtp.session), count=failure.count,
              delay=failure.delay)
        if failure.locked:
            audit("auth_locked", auth_user=name, peer=_peer(smtp.session),
                  delay=server.throttle.config.lockout_period)
        await asyncio.sleep(failure.delay)      # the growing delay before the 535
        return AuthResult(success=False, handled=False)

    async def auth_PLAIN(self, smtp, args):
        if len(args) == 1:
            blob = await smtp.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                await smtp.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await smtp.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._check(smtp, parts[1], parts[2])

    async def auth_LOGIN(self, smtp, args):
        if len(args) == 2:
            try:
                login = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                await smtp.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            login = await smtp.challenge_auth("Username:")
            if login is MISSING:
                return AuthResult(success=False, handled=True)
        password = await smtp.challenge_auth("Password:")
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._check(smtp, login, password)

    # ---- envelope ------------------------------------------------------------
    async def handle_EHLO(self, smtp, session, envelope, hostname, responses):
        """aiosmtpd's EHLO lines plus PIPELINING and ENHANCEDSTATUSCODES."""
        session.host_name = hostname          # aiosmtpd leaves this to a new-style hook
        last = responses.pop()                # "250 HELP"
        return [*responses, "250-PIPELINING", "250-ENHANCEDSTATUSCODES", last]

    async def handle_MAIL(self, smtp, session, envelope, address, mail_options):
        user = _user(session)
        if user is not None and not self.server.users.may_send_as(user, address):
            return "553 5.7.1 Sender address not allowed for this login"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= self.server.limits.max_recipients:
            return "452 4.5.3 Too many recipients"
        if not address or "@" not in address:
            return "553 5.1.3 Recipient address must be user@domain"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, smtp, session, envelope):
        raw = envelope.original_content or b""
        bare_eol = has_bare_eol(raw)
        if bare_eol:
            if self.server.bare_line_endings == "reject":
                return "550 5.6.2 Bare CR or LF in message data is not allowed"
            raw = to_crlf(raw)
        user = _user(session)
        if user is not None:
            refused = self.server.header_sender_refused(user, raw)
            if refused:
                return f"550 5.7.1 {refused} address not allowed for this login"
        mail = Envelope(
            mail_from=envelope.mail_from, rcpt_tos=tuple(envelope.rcpt_tos),
            auth_user=user, peer=_peer(session), received_at=time.time(),
            source="smtp", helo=session.host_name or "",
            mail_options=tuple(envelope.mail_options),
            wire_ready=not bare_eol and not getattr(envelope, "dot_led_lines", True))
        return await accept_reply(self.server.acceptor, mail, raw, "accept failed")

    async def handle_exception(self, error):
        log.error("smtp session error", error=error.__class__.__name__)
        return "451 4.3.0 Temporary failure, please try again later"


async def accept_reply(acceptor, mail: Envelope, raw: bytes, failure_event: str) -> str:
    """The DATA reply for a message handed to the core: 250 with the queue id once it
    is committed, the core's refusal, or 451 for any failure before the commit."""
    try:
        result = await acceptor.accept(mail, raw)
    except Exception as exc:  # noqa: BLE001 — any failure before the commit is a 451
        log.error(failure_event, error=exc.__class__.__name__)
        return "451 4.3.0 Temporary failure, please try again later"
    if isinstance(result, Accepted):
        return f"250 2.0.0 Ok: queued as {result.queue_id}"
    return result.smtp_reply


def _user(session) -> str | None:
    data = getattr(session, "auth_data", None)
    login = getattr(data, "login", None)
    return login.decode("utf-8", "replace") if isinstance(login, bytes) else None


def _ip(session) -> str:
    peer = session.peer if session is not None else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")


def _peer(session) -> str:
    peer = session.peer if session is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer or "")


class PhigateSMTP(LeanSMTP):
    """aiosmtpd's SMTP (made lean) with connection limits, trusted networks and a
    DATA timeout."""

    def __init__(self, handler, server: SubmissionServer, **kwargs):
        self.server = server
        # aiosmtpd sizes its StreamReader from this attribute during __init__
        self.line_length_limit = server.limits.max_line_length + 2
        super().__init__(handler, **kwargs)
        self._counted = False
        self._in_ehlo = False

    def connection_made(self, transport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if not first:
            return                                 # the STARTTLS re-entry
        self._counted = True
        self.server.connections.add(self)
        self.server.connections_changed()
        if self.server.trusts(self.session.peer):
            self.require_starttls = False
            self._auth_required = False
            self._auth_require_tls = False

    def connection_lost(self, error) -> None:
        if self._counted:
            self.server.connections.discard(self)
            self.server.connections_changed()
            self._counted = False
        super().connection_lost(error)

    async def smtp_EHLO(self, hostname: str):
        self._in_ehlo = True                  # EHLO lines carry no enhanced codes
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_ehlo = False

    async def push(self, status) -> None:
        if (isinstance(status, str) and not self._in_ehlo and self.session is not None
                and self.session.extended_smtp):
            status = enhanced(status)
        await super().push(status)

    async def smtp_DATA(self, arg):
        self._reset_timeout(self.server.limits.data_timeout)
        self.server.transactions += 1
        try:
            await super().smtp_DATA(arg)
        finally:
            self.server.transactions -= 1
            self.server.transaction_done.set()


class SubmissionServer:
    """Owns the listening socket and the per-connection PhigateSMTP protocols."""

    def __init__(self, config, acceptor, users, tls_context, *, metrics=None, sock=None):
        listener = config.listen.submission
        self.limits = config.limits
        self.bare_line_endings = config.smtp.bare_line_endings
        self.hostname = config.smtp.hostname or socket.getfqdn()
        self.implicit_tls = listener.implicit_tls
        self.address_text = listener.address
        self.trusted = [ipaddress.ip_network(n, strict=False) for n in config.auth.trusted_networks]
        self._trusted_hosts: dict[str, bool] = {}
        self.acceptor = acceptor
        self.users = users
        self.shared_senders = list(config.auth.shared_senders)
        self.throttle = AuthThrottle(throttle_path(config.state_dir), config.auth.throttle)
        self.tls_context = tls_context
        self.metrics = metrics
        self.sock = sock
        self.handler = SubmissionHandler(self)
        self.connections: set[PhigateSMTP] = set()
        self.transactions = 0
        self.transaction_done = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self.address: tuple[str, int] = ("", 0)

    def trusts(self, peer) -> bool:
        if not self.trusted or not isinstance(peer, tuple):
            return False
        host = peer[0]
        trusted = self._trusted_hosts.get(host)
        if trusted is None:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                return False
            trusted = any(ip in net for net in self.trusted)
            if len(self._trusted_hosts) >= 4096:     # a bounded memo of client addresses
                self._trusted_hosts.clear()
            self._trusted_hosts[host] = trusted
        return trusted

    def header_sender_refused(self, user: str, raw: bytes) -> str | None:
        """The header field ("From"/"Sender") naming an address this login may
        not use, or None."""
        for field, address in header_senders(raw):
            if not (address and (self.users.may_send_as(user, address)
                                 or address_allowed(self.shared_senders, address))):
                return field
        return None

    def count_auth(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.count_auth_failure(outcome)

    def _protocol(self) -> asyncio.Protocol:
        if len(self.connections) >= self.limits.max_connections:
            return _Refuse()
        return PhigateSMTP(
            self.handler, self,
            hostname=self.hostname, ident="ESMTP phigate",
            tls_context=None if self.implicit_tls else self.tls_context,
            require_starttls=not self.implicit_tls,
            auth_required=True,
            auth_require_tls=not self.implicit_tls,
            data_size_limit=self.limits.max_message_size,
            enable_SMTPUTF8=True,
            timeout=self.limits.command_timeout,
            command_call_limit={"AUTH": 5, "*": 1000},
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        ssl = self.tls_context if self.implicit_tls else None
        if self.sock is not None:
            self._server = await loop.create_server(self._protocol, sock=self.sock, ssl=ssl)
        else:
            host, port = split_hostport(self.address_text)
            self._server = await loop.create_server(self._protocol, host, port, ssl=ssl,
                                                    reuse_address=True, backlog=1024)
        self.address = self._server.sockets[0].getsockname()[:2]
        log.info("listening", address=f"{self.address[0]}:{self.address[1]}",
                 tls="implicit" if self.implicit_tls else "starttls")

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def active_connections(self) -> int:
        return len(self.connections)

    def connections_changed(self) -> None:
        """Keep the ``phigate_smtp_connections`` gauge equal to the open sessions."""
        if self.metrics is not None:
            self.metrics.set_connections(len(self.connections))

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting; let transactions in DATA finish (within ``grace``);
        then close every session."""
        if self._server is None:
            return
        self._server.close()
        deadline = time.monotonic() + grace
        while self.transactions and time.monotonic() < deadline:
            self.transaction_done.clear()
            try:
                await asyncio.wait_for(self.transaction_done.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        for protocol in list(self.connections):
            if protocol.transport is not None:
                protocol.transport.close()
        await self._server.wait_closed()


class _Refuse(asyncio.Protocol):
    """Over ``limits.max_connections``: say so and hang up."""

    def connection_made(self, transport) -> None:
        transport.write(b"421 4.7.0 Too many connections, try again later\r\n")
        transport.close()
