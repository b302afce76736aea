"""The bytes of one upstream SMTP transaction: the commands and the DATA body
as aiosmtplib's ``sendmail`` writes them, and a protocol that reads the replies
to a pipelined group of commands (RFC 2920).

- Addresses: ``<local@domain>`` straight away for a plain dot-atom address;
  anything else goes through aiosmtplib's ``quote_address`` (``parseaddr`` and
  its injection check), so the bytes and the errors are aiosmtplib's.
- MAIL carries ``size=N`` (aiosmtplib's spelling) when the server offers SIZE,
  and nothing else: no BODY= or SMTPUTF8, as ``sendmail`` sends today.
- The body: lone CR and LF made CRLF, a final CRLF, lines starting with "."
  doubled, then ".CRLF": aiosmtplib's ``execute_data_command`` without its two
  regular-expression passes over the whole message (its line-end substitution
  also rewrites every CRLF: a third of the CPU of relaying 1 MB). Here the
  substitution runs only when a bare CR or LF exists (``gateway.crlf``); the
  output is byte for byte aiosmtplib's (``tests/unit/test_upstream_line_endings.py``,
  ``tests/unit/test_smtp_wire.py``).
- ``PipeliningProtocol`` replaces aiosmtplib's ``SMTPProtocol`` (installed below).
  The base class parses one reply per ``data_received`` call and drops bytes that
  arrive while a parsed reply waits to be picked up, so several replies in one
  segment (how servers answer a pipelined group) would be lost. After
  ``expect(n)`` every byte is kept until ``n`` replies were read, and a reply
  already in the buffer is returned without waiting. With nothing owed it is
  the base class unchanged.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from contextvars import ContextVar

import aiosmtplib.smtp
from aiosmtplib.email import quote_address
from aiosmtplib.errors import SMTPResponseException
from aiosmtplib.protocol import (
    COMMAND_INJECTION_REGEX,
    MAX_RESPONSE_LENGTH,
    SMTPProtocol,
)
from aiosmtplib.response import SMTPResponse
from aiosmtplib.typing import SMTPStatus

from gateway.crlf import to_crlf

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def quote(address: str) -> bytes:
    """``<address>`` as aiosmtplib's ``mail``/``rcpt`` put it on the command line
    (ValueError, e.g. UnicodeEncodeError, where aiosmtplib raises one)."""
    if PLAIN_ADDRESS.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    quoted = quote_address(address).encode("ascii")
    if COMMAND_INJECTION_REGEX.search(quoted):
        raise ValueError("Command arg contains a prohibited control character")
    return quoted


def envelope(mail_from: bytes, rcpts: Sequence[bytes], size: int | None) -> list[bytes]:
    """MAIL, one RCPT per recipient, DATA, each line with its CRLF; the addresses
    as ``quote`` gave them."""
    option = b"" if size is None else b" size=%d" % size
    return ([b"MAIL FROM:" + mail_from + option + b"\r\n"]
            + [b"RCPT TO:" + r + b"\r\n" for r in rcpts] + [b"DATA\r\n"])


def normalize_line_endings(message: bytes) -> bytes:
    """aiosmtplib's ``normalize_message_line_endings``, without the substitution
    when every CR and LF already stands in a CRLF pair."""
    message = to_crlf(message)
    return message if message.endswith(b"\r\n") else message + b"\r\n"


wire_ready: ContextVar[bytes | None] = ContextVar("phigate_wire_ready", default=None)
"""The message being delivered, when its queue item says it has CRLF line ends
only and no line starting with "." (``Envelope.wire_ready``: the SMTP edge saw
to both at acceptance). Set by the dispatcher around an attempt; ``body`` then
skips its two scans of that very object (~2.6 ms per MiB)."""


def body(data: bytes) -> tuple[tuple[bytes, bytes], int]:
    """(what follows the 354: the dot-stuffed message and ".CRLF", as two pieces
    written with one writev so that a large message is not copied once more;
    the SIZE of the message)."""
    if data is wire_ready.get():
        message = data if data.endswith(b"\r\n") else data + b"\r\n"
        return (message, b".\r\n"), len(message)
    message = normalize_line_endings(data)
    size = len(message)
    if b"\n." in message:
        message = message.replace(b"\n.", b"\n..")
    if message.startswith(b"."):
        message = b"." + message
    return (message, b".\r\n"), size


class PipeliningProtocol(SMTPProtocol):
    """aiosmtplib's protocol, able to read the replies to a pipelined group."""

    _owed = 0       # replies still to read for commands already written

    def expect(self, replies: int) -> None:
        """Call before writing commands that will get ``replies`` replies."""
        self._owed += replies
        self._response_pending = True

    def data_received(self, data: bytes) -> None:
        if not self._owed:
            super().data_received(data)
            return
        if self._response_waiter is None:
            return
        self._buffer.extend(data)
        if len(self._buffer) > MAX_RESPONSE_LENGTH * self._owed:
            del self._buffer[:]
            if not self._response_waiter.done():
                self._set_response_exception(self._response_waiter, SMTPResponseException(
                    SMTPStatus.invalid_response.value, "Response too long"))
            return
        self._fill()

    def _fill(self) -> None:
        """Parse the next reply in the buffer into the waiter, if it is free."""
        waiter = self._response_waiter
        if waiter is None or waiter.done() or not self._buffer:
            return
        try:
            reply = self._read_response_from_buffer()
        except SMTPResponseException as exc:      # malformed or too long, as the base says
            self._set_response_exception(waiter, exc)
        else:
            if reply is not None:
                waiter.set_result(reply)

    async def read_response(self, timeout: float | None = None) -> SMTPResponse:
        if not self._owed:
            return await super().read_response(timeout)
        self._fill()
        waiter = self._response_waiter
        try:
            if waiter is not None and waiter.done():
                self._response_waiter = (None if self.transport is None
                                         else self._loop.create_future())
                return waiter.result()
            return await super().read_response(timeout)
        finally:
            self._owed -= 1
            self._response_pending = self._owed > 0

    @property
    def clean(self) -> bool:
        """No reply owed and no byte left over: the next command starts afresh."""
        return not self._owed and not self._buffer


aiosmtplib.smtp.SMTPProtocol = PipeliningProtocol
