"""LeanSMTP: aiosmtpd's SMTP protocol with its per-connection and per-line costs cut.

Both listeners (submission and the Direct MX) build one protocol object per
connection and read every message through it, so what aiosmtpd does there
is most of phigate's CPU per message. Each place below keeps aiosmtpd's behaviour:

- Construction. aiosmtpd's ``SMTP.__init__`` rebuilds its method tables
  (``smtp_*``, ``auth_*``, ``handle_*``) with ``dir()`` and
  ``inspect.getmembers()`` for every connection (~0.4 ms). ``LeanSMTP``
  finds the names once per (protocol class, handler class) and only binds
  them per connection; the rest of the constructor is aiosmtpd's, with the
  options phigate uses. ``tests/unit/test_lean_smtp.py`` checks that the
  result has exactly the attributes and tables aiosmtpd's own constructor
  makes, so an aiosmtpd upgrade that adds state fails a test, not a session.
- DATA. aiosmtpd reads the message one line at a time (an await, a debug
  log call and several checks per line: ~13,000 rounds for 1 MB).
  ``read_data`` reads up to each ``.<CRLF>`` instead and keeps going until
  that dot starts a line (the end of DATA); then it applies aiosmtpd's rules
  to the whole block: a line longer than ``line_length_limit`` → 500, more
  than ``data_size_limit`` bytes → 552 (both after the final dot, with
  the data discarded as it comes), dot-unstuffing per RFC 5321 §4.5.2.
  It never reads past the final dot, so pipelined commands stay queued.
  ``envelope.dot_led_lines`` is False when the client stuffed no line, so
  that no line of the content starts with a dot (the upstream courier then
  need not look for one: ``gateway.delivery.smtp_wire.wire_ready``).
- Replies. aiosmtpd writes (and drains) every line of a multi-line reply on
  its own: nine writes, nine wake-ups of the client, for one EHLO.
  ``push`` holds ``250-`` continuation lines and writes the whole reply
  with its last line: the same bytes in one write.
- Per command. aiosmtpd re-arms its idle timer and builds two ``repr``s of
  the line for its (disabled) debug log on every command; here the timer
  is re-armed only when it fires early, and the log lines are made only
  when the logger would write them.
- Memory. A finished session's protocol sits in reference cycles (its bound
  methods, its stream writer); ``_drop_cycles`` breaks them when the session
  task ends, so it is freed at once rather than by the cycle collector.
- Addresses. aiosmtpd parses every MAIL/RCPT address with the e-mail
  header parser (and defines a class per call). A plain ``<dot-atom@domain>``
  takes a regular-expression path with the same result; anything else
  (quoted local parts, source routes, no brackets) still goes to aiosmtpd.
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import aiosmtpd.smtp
from aiosmtpd.smtp import MISSING, SMTP, Session, _AuthMechAttr, login_always_fail, syntax

from gateway.malloc import large_buffer_used

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(
    rf"<((?:{_ATEXT}(?:\.{_ATEXT})*)@(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*))>(?=\s|$)")

def has_long_line(data: bytes, longest: int) -> bool:
    """Is a line of ``data`` (the bytes between two CRLFs) longer than ``longest``?
    Jumps to the last CRLF within reach of each line start, so it looks at
    ``len(data) / longest`` windows instead of splitting out every line."""
    start, end = 0, len(data)
    while end - start > longest:
        crlf = data.rfind(b"\r\n", start, start + longest + 2)
        if crlf < 0:
            return True
        start = crlf + 2
    return False


_sanitized_log = aiosmtpd.smtp.sanitized_log
_LEVEL_OF = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
             "error": logging.ERROR}


def _sanitized_log_if_enabled(func, msg, *args, **kwargs) -> None:
    """aiosmtpd's ``sanitized_log`` (a ``repr`` of every command line, twice a
    line), skipped when the logger would drop the record anyway."""
    if func.__self__.isEnabledFor(_LEVEL_OF.get(func.__name__, logging.CRITICAL)):
        _sanitized_log(func, msg, *args, **kwargs)


aiosmtpd.smtp.sanitized_log = _sanitized_log_if_enabled


# (protocol class, handler class) -> names of its smtp_/auth_/handle_ methods
_TABLES: dict[tuple[type, type], tuple[tuple[str, ...], tuple[tuple[str, str, bool], ...],
                                       tuple[str, ...]]] = {}


def _method_names(protocol: type, handler: Any) -> tuple:
    key = (protocol, type(handler))
    names = _TABLES.get(key)
    if names is None:
        smtp = tuple(m for m in dir(protocol) if m.startswith("smtp_"))
        auth: dict[str, tuple[str, str, bool]] = {}
        for owner, is_builtin in ((protocol, True), (type(handler), False)):
            for name in dir(owner):
                if name.startswith("auth_"):
                    func = getattr(owner, name)
                    mech = getattr(func, "__auth_mechanism_name__",
                                   name.replace("auth_", "").replace("__", "-"))
                    auth[mech] = (mech, name, is_builtin)
        hooks = tuple(m for m in dir(handler) if m.startswith("handle_"))
        names = _TABLES[key] = (smtp, tuple(auth.values()), hooks)
    return names


class LeanSMTP(SMTP):
    """aiosmtpd's ``SMTP`` with cached method tables, block DATA reads and a
    fast path for plain addresses (see the module docstring)."""

    def __init__(self, handler: Any, *, hostname: str, ident: str,
                 data_size_limit: int | None, timeout: float,
                 tls_context=None, require_starttls: bool = False,
                 auth_required: bool = False, auth_require_tls: bool = True,
                 enable_SMTPUTF8: bool = False, command_call_limit: dict | None = None):
        self.__ident__ = ident
        self.loop = asyncio.get_running_loop()
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(loop=self.loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected, loop=self.loop)
        self.event_handler = handler
        self.data_size_limit = data_size_limit
        self.enable_SMTPUTF8 = enable_SMTPUTF8
        self._decode_data = False
        self.command_size_limits.clear()
        self.hostname = hostname
        self.tls_context = tls_context
        self.require_starttls = tls_context and require_starttls
        self._timeout_duration = timeout
        self._timeout_handle = None
        self._tls_handshake_okay = True
        self._tls_protocol = None
        self._original_transport = None
        self.session: Session | None = None
        self.envelope = None
        self.transport = None
        self._handler_coroutine = None
        self._auth_require_tls = auth_require_tls
        self._proxy_timeout = None
        self._auth_callback = login_always_fail
        self._authenticator = None
        self._auth_required = auth_required
        smtp, auth, hooks = _method_names(type(self), handler)
        self._auth_methods = {
            mech: _AuthMechAttr(getattr(self if is_builtin else handler, name), is_builtin)
            for mech, name, is_builtin in auth}
        self._handle_hooks = {m[len("handle_"):]: getattr(handler, m) for m in hooks}
        self._ehlo_hook_ver = "new" if "EHLO" in self._handle_hooks else None
        self._smtp_methods = {m[len("smtp_"):]: getattr(self, m) for m in smtp}
        self._reply_lines: list[bytes] = []      # continuation lines not yet written
        self._deadline = 0.0                     # see _reset_timeout
        self._enforce_call_limit = command_call_limit is not None
        if command_call_limit is not None:
            self._call_limit_base = command_call_limit
            self._call_limit_default = command_call_limit.get("*", 20)

    # ---- the idle timeout -----------------------------------------------------
    def _reset_timeout(self, duration: float | None = None) -> None:
        """aiosmtpd cancels and re-arms a timer for every command. Here the timer
        stays armed; when it fires before the deadline (which moved on since), it
        re-arms itself for it, and it is re-armed at once only when the deadline
        comes closer (a shorter timeout than the one armed)."""
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > self._deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(self._deadline, self._check_timeout)

    def _check_timeout(self) -> None:
        if self.loop.time() < self._deadline:
            self._timeout_handle = self.loop.call_at(self._deadline, self._check_timeout)
        else:
            self._timeout_cb()

    # ---- the end of a session -------------------------------------------------
    async def _handle_client(self) -> None:
        try:
            await super()._handle_client()
        finally:
            self._drop_cycles()

    def _drop_cycles(self) -> None:
        """The session is over: let go of what points back at this protocol (its
        bound ``smtp_*``/``auth_*`` methods and connect callback, the stream
        writer), so reference
        counting frees it at once instead of the cycle collector some time
        later (at 100 sessions at once, ~800 finished ones were waiting)."""
        self._smtp_methods = {}
        self._auth_methods = {}
        self._writer = None
        self._client_connected_cb = None

    def connection_lost(self, error) -> None:
        super().connection_lost(error)
        if self._handler_coroutine is not None:     # see _forget_session_task
            self._handler_coroutine.add_done_callback(self._forget_session_task)

    def _forget_session_task(self, task: asyncio.Task) -> None:
        """A session task that ended by cancellation keeps the exception, whose
        traceback holds the session's frames and so this protocol: drop it."""
        self._handler_coroutine = None

    # ---- replies -------------------------------------------------------------
    async def push(self, status) -> None:
        line = (status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
                if isinstance(status, str) else status)
        self._reply_lines.append(line)
        if line[3:4] == b"-":                       # more of this reply follows
            return
        reply, self._reply_lines = b"\r\n".join(self._reply_lines) + b"\r\n", []
        self._writer.write(reply)
        await self._writer.drain()

    # ---- addresses -----------------------------------------------------------
    def _getaddr(self, arg: str):
        arg = arg.lstrip()
        match = _SIMPLE_PATH.match(arg) if arg else None
        rest = arg[match.end():].lstrip() if match else ""
        if match is None or rest.startswith("("):     # a comment: aiosmtpd's parser
            return super()._getaddr(arg)
        address = match.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    # ---- DATA ----------------------------------------------------------------
    async def read_data(self) -> tuple[bytes | None, str | None]:
        """The message after the 354, up to and without the final dot:
        ``(content, None)``, or ``(None, reply)`` when a limit was passed."""
        reader = self._reader
        reader._limit = 1 << 18        # aiosmtpd sized it for command lines; restored below
        try:
            return await self._read_block(reader)
        finally:
            reader._limit = self.line_length_limit

    async def _read_block(self, reader: asyncio.StreamReader):
        parts: list[bytes] = []
        size = 0
        tail = b"\r\n"      # the last bytes read: DATA begins at the start of a line
        too_much = False
        while True:
            try:
                chunk = await reader.readuntil(b".\r\n")
            except asyncio.LimitOverrunError as exc:
                chunk = await reader.readexactly(exc.consumed)
            size += len(chunk)
            recent = chunk if len(chunk) >= 5 else tail + chunk   # no copy of a big chunk
            ended = recent.endswith(b".\r\n") and recent[-5:-3] == b"\r\n"
            tail = recent[-4:]
            if too_much or (self.data_size_limit and size - 3 * ended > self.data_size_limit):
                too_much = True
                parts.clear()
            else:
                parts.append(chunk)
            if ended:
                break
        if too_much:
            return None, "552 Error: Too much mail data"
        parts[-1] = memoryview(parts[-1])[:-3]         # the final ".CRLF", without a copy
        data = b"".join(parts)
        large_buffer_used(len(data))
        if has_long_line(data, self.line_length_limit - 2):
            return None, "500 Line too long (see RFC5321 4.5.3.1.6)"
        led = data.startswith(b".")
        if led:
            data = data[1:]
        content = data.replace(b"\r\n.", b"\r\n")
        self.dot_led_lines = led or len(content) != len(data)
        return content, None

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content, refusal = await self.read_data()
        if refusal is not None:
            await self.push(refusal)
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = content
        self.envelope.dot_led_lines = self.dot_led_lines
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)
