"""``gateway.delivery.smtp_wire``: the body and the addresses are byte for byte
what aiosmtplib's ``sendmail`` sends (and fail where it fails); the protocol
keeps every reply of a pipelined group however the bytes arrive."""
from __future__ import annotations

import asyncio
import random
import re
import socket

import aiosmtplib.smtp
import pytest
from aiosmtplib.email import quote_address

from gateway.delivery.smtp_wire import PipeliningProtocol, body, envelope, quote, wire_ready

LINE_ENDINGS = re.compile(rb"(?:\r\n|\n|\r(?!\n))")     # aiosmtplib 5.x protocol.py
PERIOD = re.compile(rb"(?m)^\.")


def aiosmtplib_body(message: bytes) -> tuple[bytes, int]:
    """``execute_data_command``'s bytes after the 354, and sendmail's SIZE."""
    message = LINE_ENDINGS.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return PERIOD.sub(b"..", message) + b".\r\n", len(message)


def test_body_is_aiosmtplibs():
    assert aiosmtplib.protocol.PERIOD_REGEX.pattern == PERIOD.pattern
    rng = random.Random(7)
    alphabet = [b"\r", b"\n", b"\r\n", b"a", b".", b"..", b"\xff", b"\r\n.", b"\n.\n", b". "]
    for _ in range(5000):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        pieces, size = body(data)
        assert (b"".join(pieces), size) == aiosmtplib_body(data), data


def test_a_wire_ready_message_is_sent_as_it_is():
    """For the very object named in ``wire_ready`` (CRLF line ends only, no line
    starting with a dot) the scans are skipped and the bytes are still aiosmtplib's;
    an equal message that is another object takes the full path."""
    rng = random.Random(11)
    alphabet = [b"a", b"b. ", b"\r\n", b"\r\nx.", b"\xff", b" .."]
    for _ in range(3000):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        if data.startswith(b"."):
            continue
        token = wire_ready.set(data)
        try:
            pieces, size = body(data)
            assert pieces[0] is data or not data.endswith(b"\r\n")
            assert (b"".join(pieces), size) == aiosmtplib_body(data), data
        finally:
            wire_ready.reset(token)
    token = wire_ready.set(b"x\r\n.y\r\n")
    try:                              # a different object: stuffed as usual
        assert b"".join(body(bytes(bytearray(b"x\r\n.y\r\n")))[0]) == b"x\r\n..y\r\n.\r\n"
    finally:
        wire_ready.reset(token)


PLAIN = ["a@b.c", "first.last+tag@mail.example.org", "o'brien@x-y.example",
         "x!#$%&'*+/=?^_`{|}~-@example"]
UNUSUAL = ["", "Name <a@b.c>", '"quoted local"@example.org', "a@[127.0.0.1]", " a@b.c ",
           "a..b@c.d", ".a@b.c", "a@b..c", "a@b.c.", "a@b.c>\r\nRCPT TO:<x@y.z"]


@pytest.mark.parametrize("address", PLAIN + UNUSUAL)
def test_quote_is_aiosmtplibs(address):
    assert quote(address) == quote_address(address).encode("ascii")


@pytest.mark.parametrize("address", ["a b@c.d", "a@b.c\x00",
                                     "a\x7f@b.c", "ä@b.c", "a@bü.c"])
def test_quote_refuses_what_aiosmtplib_refuses(address):
    with pytest.raises(ValueError):
        quote(address)


def test_envelope_lines():
    assert envelope(b"<a@b.c>", [b"<d@e.f>", b"<g@h.i>"], 42) == [
        b"MAIL FROM:<a@b.c> size=42\r\n", b"RCPT TO:<d@e.f>\r\n", b"RCPT TO:<g@h.i>\r\n",
        b"DATA\r\n"]
    assert envelope(b"<>", [b"<d@e.f>"], None)[0] == b"MAIL FROM:<>\r\n"


async def connected_protocol() -> tuple[PipeliningProtocol, socket.socket]:
    ours, theirs = socket.socketpair()
    protocol = PipeliningProtocol(loop=asyncio.get_running_loop())
    await asyncio.get_running_loop().create_connection(lambda: protocol, sock=ours)
    return protocol, theirs


async def test_installed_for_every_aiosmtplib_client():
    assert aiosmtplib.smtp.SMTPProtocol is PipeliningProtocol


async def test_replies_arriving_while_one_waits_for_pickup_are_kept():
    """Several deliveries before the reader runs again (the base class parses
    the first and drops the rest), one delivery with several replies, a reply
    split mid-line, a multi-line reply."""
    protocol, peer = await connected_protocol()
    protocol.expect(5)
    protocol.data_received(b"250 2.1.0 Ok\r\n")
    protocol.data_received(b"250 2.1.5 Ok\r\n550 5.1.1 No")
    protocol.data_received(b" such user\r\n450-4.2.1 busy\r\n450 4.2.1 later\r\n")
    replies = [await protocol.read_response(timeout=5) for _ in range(4)]
    assert [(r.code, r.message) for r in replies] == [
        (250, "2.1.0 Ok"), (250, "2.1.5 Ok"), (550, "5.1.1 No such user"),
        (450, "4.2.1 busy\n4.2.1 later")]
    assert not protocol.clean
    peer.sendall(b"354 go ahead\r\n")                   # this one has to be waited for
    assert (await protocol.read_response(timeout=5)).code == 354
    assert protocol.clean
    protocol.expect(1)
    peer.sendall(b"250 2.0.0 queued\r\n")
    assert (await protocol.read_response(timeout=5)).code == 250
    assert protocol.clean
    protocol.transport.close()
    peer.close()


async def test_unasked_bytes_leave_the_connection_unclean():
    protocol, peer = await connected_protocol()
    protocol.expect(1)
    protocol.data_received(b"250 Ok\r\n250 surprise\r\n")
    assert (await protocol.read_response(timeout=5)).code == 250
    assert not protocol.clean
    protocol.transport.close()
    peer.close()
