"""LeanSMTP against aiosmtpd's own SMTP: the same state after construction, the
same addresses, and — over real loopback sockets — the same replies and the
same message content for every shape of DATA (split anywhere, dot-stuffed,
pipelined, over the line and size limits)."""
from __future__ import annotations

import asyncio
import logging
import random

import pytest
from aiosmtpd.smtp import SMTP

from gateway.ingress.lean import LeanSMTP, has_long_line
from tests.peers.wait import until

LIMIT = 200           # data_size_limit for the size cases


class Recorder:
    def __init__(self):
        self.contents: list[bytes] = []
        self.dot_led: list[bool] = []

    async def handle_DATA(self, server, session, envelope):
        self.contents.append(envelope.original_content)
        self.dot_led.append(getattr(envelope, "dot_led_lines", True))
        return "250 OK"

    async def auth_PLAIN(self, server, args):          # a handler-defined mechanism
        return None


def kwargs(**extra):
    return dict(hostname="mx.test", ident="ESMTP test", data_size_limit=None, timeout=30,
                enable_SMTPUTF8=True, auth_required=False, command_call_limit={"*": 1000},
                **extra)


async def test_construction_matches_aiosmtpd():
    handler = Recorder()
    theirs = SMTP(handler, decode_data=False, **kwargs())
    ours = LeanSMTP(handler, **kwargs())
    assert set(vars(ours)) == set(vars(theirs)) | {"_reply_lines", "_deadline"}
    assert ours._smtp_methods.keys() == theirs._smtp_methods.keys()
    assert all(method.__func__ is getattr(LeanSMTP, "smtp_" + command)
               for command, method in ours._smtp_methods.items())
    assert {k: v.__func__ for k, v in ours._handle_hooks.items()} == {
        k: v.__func__ for k, v in theirs._handle_hooks.items()}
    assert {k: (v.method.__func__, v.is_builtin) for k, v in ours._auth_methods.items()} == {
        k: (v.method.__func__, v.is_builtin) for k, v in theirs._auth_methods.items()}
    for name in ("_call_limit_base", "_call_limit_default", "_enforce_call_limit",
                 "require_starttls", "_auth_required", "_auth_require_tls", "_ehlo_hook_ver",
                 "data_size_limit", "hostname", "__ident__", "_timeout_duration"):
        assert getattr(ours, name) == getattr(theirs, name), name


@pytest.mark.parametrize("arg", [
    "<a@b.example>", " <a@b.example> SIZE=100", "<first.last+tag@sub.b-c.example> BODY=8BITMIME",
    "<a@b.example>SIZE=1", "<\"quoted local\"@b.example>", "<@route.example:a@b.example>",
    "a@b.example", "<a..b@b.example>", "<.a@b.example>", "<a@b..example>", "<a@[127.0.0.1]>",
    "<>", "<a@b.example", "<a b@c.example>", "", "<a@b.example>\tSIZE=5", "<ü@b.example>",
    "<a@b.example> (comment) SIZE=1", "<a@b.example>  SIZE=1 "])
async def test_addresses_match_aiosmtpd(arg):
    handler = Recorder()
    assert (LeanSMTP(handler, **kwargs())._getaddr(arg)
            == SMTP(handler, decode_data=False, **kwargs())._getaddr(arg))


async def serve(factory):
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def dialogue(port: int, data: bytes, pieces: int, rng: random.Random) -> list[bytes]:
    """EHLO, MAIL, RCPT, DATA, then ``data`` in ``pieces`` writes, then QUIT in
    the same write as the last piece; every reply line read until the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = [await reader.readline()]
    for line in (b"EHLO c.test", b"MAIL FROM:<a@c.test>", b"RCPT TO:<b@d.test>", b"DATA"):
        writer.write(line + b"\r\n")
        while True:
            reply = await reader.readline()
            replies.append(reply)
            if reply[3:4] != b"-":
                break
    stream = data + b"QUIT\r\n"
    cuts = sorted(rng.sample(range(1, len(stream)), min(pieces - 1, len(stream) - 1)))
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        writer.write(stream[start:end])        # one send() each: the buffer is empty
        await asyncio.sleep(0)
    while reply := await reader.readline():
        replies.append(reply)
    writer.close()
    return replies


BASE64_LINE = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n"
CASES = {
    "empty": b".\r\n",
    "one line": b"Subject: x\r\n\r\nhello\r\n.\r\n",
    "sentences end with dots": b"One.\r\nTwo.\r\n\r\nThree.\r\n.\r\n",
    "dot-stuffed": b"..leading\r\n...\r\n.x\r\nend\r\n.\r\n",
    "first line stuffed": b"..\r\nx\r\n.\r\n",
    "dot inside a line": b"a .\r\n b.\r\n\r\n.\r\n",
    "bare LF dot": b"a\n.\nb\r\n.\r\n",
    "no trailing CRLF before the dot is still a line": b"x\r\n\r\n.\r\n",
    "large base64": BASE64_LINE * 5000 + b".\r\n",
    "a line at the limit": b"x" * 998 + b"\r\n.\r\n",
    "a line over the limit": b"x" * 999 + b"\r\n.\r\n",
    "a long line without end": b"y" * 300_000 + b"\r\n.\r\n",
}


class Theirs(SMTP):
    line_length_limit = 1000        # as the submission listener sets it (998 + CRLF)


class Ours(LeanSMTP):
    line_length_limit = 1000


@pytest.mark.parametrize("name", sorted(CASES))
async def test_data_matches_aiosmtpd(name):
    rng = random.Random(name)
    data = CASES[name]
    results = []
    for cls, extra in ((Theirs, {"decode_data": False}), (Ours, {})):
        handler = Recorder()
        server, port = await serve(lambda cls=cls, extra=extra, handler=handler:
                                   cls(handler, **kwargs(**extra)))
        try:
            runs = [await dialogue(port, data, pieces, rng) for pieces in (1, 3, 17)]
        finally:
            server.close()
        results.append((runs, handler.contents))
    assert results[0] == results[1]
    # LeanSMTP's note for the courier: False only when no line starts with a dot
    for content, led in zip(handler.contents, handler.dot_led, strict=True):
        assert led or not (content.startswith(b".") or b"\r\n." in content), name
        assert led == (b"\r\n." in b"\r\n" + data[:-3]), name  # a line the client stuffed


async def test_size_limit_and_the_session_goes_on():
    handler = Recorder()
    server, port = await serve(lambda: LeanSMTP(handler, **{**kwargs(), "data_size_limit": LIMIT}))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        script = (b"HELO c.test\r\nMAIL FROM:<a@c.test>\r\nRCPT TO:<b@d.test>\r\nDATA\r\n"
                  + b"z" * 90 + b"\r\n") * 1
        writer.write(script)
        for _ in range(4):
            await reader.readline()
        writer.write(b"z" * 90 + b"\r\n" + b"z" * 90 + b"\r\n.\r\n")
        assert (await reader.readline()).startswith(b"552")
        writer.write(b"MAIL FROM:<a@c.test>\r\nRCPT TO:<b@d.test>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n")
        replies = [await reader.readline() for _ in range(5)]
        assert [r[:3] for r in replies] == [b"250", b"250", b"354", b"250", b"221"]
        assert handler.contents == [b"small\r\n"]
        writer.close()
    finally:
        server.close()


def test_long_line_check_agrees_with_splitting_every_line():
    """has_long_line jumps between CRLFs; splitting at every CRLF is the definition."""
    rng = random.Random(20261205)
    for _ in range(5000):
        pieces = [bytes(rng.choice(b"ab\r\n.") for _ in range(rng.randint(0, 14)))
                  for _ in range(rng.randint(0, 8))]
        data = b"\r\n".join(pieces)
        longest = rng.randint(1, 10)
        expected = any(len(line) > longest for line in data.split(b"\r\n"))
        assert has_long_line(data, longest) == expected, (data, longest)


async def test_a_finished_session_is_freed_without_the_cycle_collector():
    """With the cycle collector off, no protocol of a finished session is left
    (aiosmtpd's own SMTP leaves every one of them to the collector)."""
    import gc

    handler = Recorder()
    server, port = await serve(lambda: Ours(handler, **kwargs()))
    gc.collect()
    gc.disable()
    try:
        rng = random.Random(7)
        for _ in range(5):
            await dialogue(port, CASES["one line"], 1, rng)
        await until(lambda: not [o for o in gc.get_objects() if isinstance(o, Ours)], 10,
                    "the finished sessions to be freed")
    finally:
        gc.enable()
        server.close()
    assert len(handler.contents) == 5


async def test_the_idle_timer_follows_the_last_command_and_a_shorter_timeout():
    """The timer is re-armed lazily: a session that keeps talking outlives the
    timeout, an idle one is closed, and a shorter timeout (DATA's, say) takes
    effect at once."""
    server, port = await serve(lambda: Ours(Recorder(), **{**kwargs(), "timeout": 1.0}))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < 2.2:              # past two timeouts, never idle
            writer.write(b"NOOP\r\n")
            assert (await reader.readline()).startswith(b"250")
            await asyncio.sleep(0.05)
        assert await asyncio.wait_for(reader.read(), 30) == b""   # then idle: closed
        writer.close()
    finally:
        server.close()

    protocol = Ours(Recorder(), **kwargs())
    protocol._reset_timeout(600)
    protocol._reset_timeout(0.5)
    assert protocol._timeout_handle.when() <= protocol.loop.time() + 0.5
    protocol._timeout_handle.cancel()


def test_command_lines_are_logged_only_when_the_log_would_keep_them(caplog):
    import aiosmtpd.smtp

    logger = logging.getLogger("mail.log")
    with caplog.at_level(logging.ERROR, logger="mail.log"):
        aiosmtpd.smtp.sanitized_log(logger.info, "%r >> %r", ("peer", 1), b"MAIL FROM:<a@b>")
    assert caplog.records == []
    with caplog.at_level(logging.INFO, logger="mail.log"):
        aiosmtpd.smtp.sanitized_log(logger.info, "%r >> %r", ("peer", 1), b"MAIL FROM:<a@b>")
    assert [r.getMessage() for r in caplog.records] == ["('peer', 1) >> b'MAIL FROM:<a@b>'"]
