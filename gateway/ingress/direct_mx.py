"""The Direct MX listener: a second aiosmtpd listener where other HISPs
deliver Direct mail for the practice's Direct domains (the port 25 role).

No AUTH (senders are other gateways; trust comes from the S/MIME layer, not
the session); STARTTLS is offered when a TLS context is given. RCPT is
accepted only for addresses in ``direct.domains`` (550 5.1.1 otherwise), so
the listener is no open relay. At DATA the message goes to the Acceptor,
which commits it to the queue with a ``direct_inbound`` plan (the same fsync'd
commit point as submission) before the 250; decryption, verification, MDNs
and delivery happen after that, in the dispatcher. A bare CR or LF becomes
CRLF before the commit, as on the submission listener.
"""
from __future__ import annotations

import asyncio
import time

from gateway.audit import get_logger
from gateway.config.types import split_hostport
from gateway.crlf import to_crlf
from gateway.ingress.lean import LeanSMTP
from gateway.ingress.smtp import accept_reply
from gateway.model import Envelope
from gateway.model.envelope import domain_of

log = get_logger("direct_mx")


class DirectMXHandler:
    def __init__(self, server: DirectMXServer):
        self.server = server

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= self.server.max_recipients:
            return "452 4.5.3 Too many recipients"
        if domain_of(address) not in self.server.domains:
            return "550 5.1.1 Recipient is not a Direct address of this gateway"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, smtp, session, envelope):
        raw = envelope.original_content or b""
        raw = to_crlf(raw)
        peer = session.peer
        null = envelope.mail_from in ("<>", None)        # MDNs and DSNs: null return path
        mail = Envelope(mail_from="" if null else envelope.mail_from, rcpt_tos=tuple(envelope.rcpt_tos),
                        peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
                        received_at=time.time(), source="direct",
                        helo=session.host_name or "")
        return await accept_reply(self.server.acceptor, mail, raw, "direct accept failed")

    async def handle_exception(self, error):
        log.error("direct smtp session error", error=error.__class__.__name__)
        return "451 4.3.0 Temporary failure, please try again later"


class DirectMXServer:
    def __init__(self, address: str, domains, acceptor, *, hostname: str, limits,
                 tls_context=None):
        self.address_text = address
        self.domains = frozenset(d.lower() for d in domains)
        self.acceptor = acceptor
        self.hostname = hostname
        self.limits = limits
        self.max_recipients = limits.max_recipients
        self.tls_context = tls_context
        self.handler = DirectMXHandler(self)
        self._server: asyncio.base_events.Server | None = None
        self.address: tuple[str, int] = ("", 0)

    def _protocol(self) -> LeanSMTP:
        return LeanSMTP(self.handler, hostname=self.hostname, ident="ESMTP phigate Direct",
                        tls_context=self.tls_context, require_starttls=False,
                        auth_required=False, data_size_limit=self.limits.max_message_size,
                        enable_SMTPUTF8=True, timeout=self.limits.command_timeout)

    async def start(self) -> None:
        host, port = split_hostport(self.address_text)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host, port, reuse_address=True)
        self.address = self._server.sockets[0].getsockname()[:2]
        log.info("listening", address=f"{self.address[0]}:{self.address[1]}", role="direct")

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
