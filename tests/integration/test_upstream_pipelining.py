"""The upstream courier's own SMTP transaction (``gateway.delivery.smtp_wire``):
with PIPELINING one write for MAIL, RCPT and DATA, without it one command at a
time; the bytes on the wire are aiosmtplib ``sendmail``'s, outcomes per recipient
as before, and a connection in an unknown state is never reused.

Peers: the aiosmtpd sink (``tests/peers/sink.py``, PIPELINING on request),
Postfix's ``smtp-sink`` for a server that hangs up mid-pipeline or refuses DATA,
and ``Wiretap``, a TCP relay in front of the sink that records what the courier
wrote and can hold, or cut, the sink's replies.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess

import aiosmtplib
import pytest

from gateway.config.models import UpstreamConfig
from gateway.delivery.smtp import UpstreamCourier
from gateway.model import Delivered, Permanent, Transient
from tests.peers import missing_peer, stop_process
from tests.peers.ports import free_port
from tests.peers.wait import until

FROM = "frontdesk@smiledental.example"
A, B, C = "a@partner.example", "b@partner.example", "c@partner.example"
# leading dots (one line is a lone "."), bare LF, bare CR, 8-bit, no final line end
MESSAGE = (b".leading dot\nbare LF\r\n..two dots\r\nbare CR\rend\r\n"
           b"8-bit: caf\xc3\xa9 \xff\r\n.\r\nlast line")
# what the sink must hold: CRLF everywhere, a final CRLF, dots as sent
RECEIVED = (b".leading dot\r\nbare LF\r\n..two dots\r\nbare CR\r\nend\r\n"
            b"8-bit: caf\xc3\xa9 \xff\r\n.\r\nlast line\r\n")


class Wiretap:
    """A TCP relay on loopback in front of a sink. ``sessions`` holds what the
    client wrote on each connection. ``hold`` withholds the sink's replies from
    a MAIL command on until the client has also written DATA ("data": only a
    pipelining client gets them) or for good ("forever"). ``cut = n`` hangs up
    both sides of the next transaction after the first ``n`` replies to it."""

    def __init__(self, target: int):
        self.target = target
        self.sessions: list[bytearray] = []
        self.client_closed = 0
        self.hold: str | None = None
        self.cut: int | None = None
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _relay(self, client_r, client_w) -> None:
        sink_r, sink_w = await asyncio.open_connection("127.0.0.1", self.target)
        sent = bytearray()
        self.sessions.append(sent)
        gate = asyncio.Event()
        gate.set()
        cut: list[int] = []            # [replies still to pass] while a cut is armed

        def hang_up() -> None:
            client_w.close()
            sink_w.close()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                sent.extend(data)
                mail = sent.rfind(b"MAIL FROM:")
                if mail != -1 and self.hold and (self.hold == "forever"
                                                 or b"\r\nDATA\r\n" not in sent[mail:]):
                    gate.clear()
                else:
                    gate.set()
                if b"MAIL FROM:" in data and self.cut is not None:
                    cut.append(self.cut)
                    self.cut = None
                sink_w.write(data)
            self.client_closed += 1
            gate.set()                   # let a held reply go, so this session can end
            sink_w.close()

        async def downstream() -> None:
            while data := await sink_r.read(65536):
                await gate.wait()
                if cut:
                    lines = data.splitlines(keepends=True)
                    for n, line in enumerate(lines):
                        if cut[0] == 0:
                            client_w.write(b"".join(lines[:n]))
                            hang_up()
                            return
                        if line[3:4] != b"-":
                            cut[0] -= 1
                client_w.write(data)
            client_w.close()

        try:
            await asyncio.gather(upstream(), downstream())
        except (ConnectionError, OSError):
            hang_up()


@pytest.fixture
async def wiretap_factory():
    taps: list[Wiretap] = []

    async def make(target: int) -> Wiretap:
        tap = Wiretap(target)
        await tap.start()
        taps.append(tap)
        return tap

    yield make
    for tap in taps:
        await tap.stop()


@pytest.fixture
async def postfix_sink():
    """Start ``smtp-sink`` with the given flags on a free port; return the port."""
    binary = shutil.which("smtp-sink", path=os.environ.get("PATH", "") + ":/usr/sbin")
    processes: list[subprocess.Popen] = []

    async def start(*flags: str) -> int:
        if binary is None:
            missing_peer("Postfix's smtp-sink (Debian package postfix) is not installed")
        port = free_port()
        user = ["-u", "postfix"] if os.geteuid() == 0 else []
        processes.append(subprocess.Popen(  # noqa: ASYNC220 — returns at once; waited below
            [binary, *flags, *user, f"127.0.0.1:{port}", "10"], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        def accepts() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False
        await until(accepts, timeout=20, what="smtp-sink listening")
        return port

    yield start
    for process in processes:
        stop_process(process)


def courier_for(port: int, timeout: float = 30) -> UpstreamCourier:
    return UpstreamCourier(UpstreamConfig(host="127.0.0.1", port=port, tls="none",
                                          timeout=timeout), "gateway.test")


async def sendmail_reference(port: int, rcpts: list[str], data: bytes) -> None:
    """What aiosmtplib's own sendmail writes, as the courier did before."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="gateway.test",
                             timeout=30, start_tls=False)
    await client.connect()
    await client.sendmail(FROM, rcpts, data)
    await client.quit()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "sequential"])
async def test_wire_bytes_are_sendmails(sink_factory, wiretap_factory, pipelining):
    sink = await sink_factory(pipelining=pipelining)
    tap = await wiretap_factory(sink.port)
    await sendmail_reference(tap.port, [A, B], MESSAGE)
    courier = courier_for(tap.port)
    assert await courier.send(FROM, [A, B], MESSAGE) == {A: Delivered(), B: Delivered()}
    await courier.close()
    await until(lambda: tap.client_closed == 2, timeout=20, what="both sessions closed")
    reference, ours = tap.sessions
    assert b"PIPELINING" not in reference          # sanity: the request lines only
    assert bytes(ours) == bytes(reference)
    for stuffed in (b"DATA\r\n..leading dot\r\n", b"\r\n...two dots\r\n", b"\r\n..\r\nlast"):
        assert stuffed in ours
    assert [m.data for m in sink.messages] == [RECEIVED, RECEIVED]
    assert sink.messages[1].rcpt_tos == [A, B]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "sequential"])
async def test_starttls_and_auth_then_the_transaction(sink_factory, tmp_path, pipelining):
    """After STARTTLS (the same protocol object, now over TLS) and AUTH (the sink
    takes no MAIL without it)."""
    sink = await sink_factory(tls=True, auth=("relay", "s3cret"), pipelining=pipelining)
    secret = tmp_path / "upstream.pass"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    courier = UpstreamCourier(UpstreamConfig(
        host="127.0.0.1", port=sink.port, tls="starttls", ca_file=sink.ca_file,
        username="relay", password_file=secret), "gateway.test")
    sink.fail_rcpt[B] = "550 5.1.1 No such user"
    for _ in range(2):
        assert await courier.send(FROM, [A, B], MESSAGE) == {
            A: Delivered(), B: Permanent("550 5.1.1 No such user", 550)}
    await courier.close()
    assert [(m.rcpt_tos, m.data, m.tls) for m in sink.messages] == [([A], RECEIVED, True)] * 2
    assert sink.connections == 1


async def test_pipelined_group_is_one_write(sink_factory, wiretap_factory):
    """The sink's replies are held until DATA has arrived: a client that waited
    for the MAIL reply before RCPT would time out. Every reply then comes at once."""
    sink = await sink_factory(pipelining=True)
    tap = await wiretap_factory(sink.port)
    tap.hold = "data"
    courier = courier_for(tap.port, timeout=20)
    for _ in range(3):
        assert await courier.send(FROM, [A, B, C], MESSAGE) == dict.fromkeys([A, B, C],
                                                                          Delivered())
    await courier.close()
    assert len(tap.sessions) == 1 and len(sink.messages) == 3


async def test_sequential_client_would_not_pass_the_hold(sink_factory, wiretap_factory):
    """The counter-check of the test above: without PIPELINING the courier sends
    MAIL alone, the hold keeps its reply, the send times out: Transient, closed."""
    sink = await sink_factory(pipelining=False)
    tap = await wiretap_factory(sink.port)
    tap.hold = "data"
    courier = courier_for(tap.port, timeout=1)
    outcome = (await courier.send(FROM, [A], MESSAGE))[A]
    assert isinstance(outcome, Transient) and "Timeout" in outcome.reason
    await until(lambda: tap.client_closed == 1, timeout=20, what="the courier to hang up")
    await courier.close()
    assert sink.messages == []


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "sequential"])
async def test_mixed_recipients(sink_factory, wiretap_factory, pipelining):
    sink = await sink_factory(pipelining=pipelining)
    sink.fail_rcpt[B] = "550 5.1.1 No such user"
    sink.fail_rcpt[C] = "450 4.2.1 Try later"
    tap = await wiretap_factory(sink.port)
    courier = courier_for(tap.port)
    outcomes = await courier.send(FROM, [A, B, C], MESSAGE)
    assert outcomes[A] == Delivered()
    assert outcomes[B] == Permanent("550 5.1.1 No such user", 550)
    assert outcomes[C] == Transient("450 4.2.1 Try later", 450)
    assert await courier.send(FROM, [A], MESSAGE) == {A: Delivered()}
    await courier.close()
    assert [m.rcpt_tos for m in sink.messages] == [[A], [A]]
    assert len(tap.sessions) == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "sequential"])
async def test_all_refused_no_data_then_same_connection_delivers(sink_factory, wiretap_factory,
                                                                 pipelining):
    sink = await sink_factory(pipelining=pipelining)
    sink.fail_rcpt[B] = "550 5.1.1 No such user"
    sink.fail_rcpt[C] = "450 4.2.1 Try later"
    tap = await wiretap_factory(sink.port)
    courier = courier_for(tap.port)
    assert await courier.send(FROM, [B, C], MESSAGE) == {
        B: Permanent("550 5.1.1 No such user", 550), C: Transient("450 4.2.1 Try later", 450)}
    assert await courier.send(FROM, [A], MESSAGE) == {A: Delivered()}
    await courier.close()
    assert [m.rcpt_tos for m in sink.messages] == [[A]]
    assert len(tap.sessions) == 1 and sink.connections == 1
    first = bytes(tap.sessions[0]).split(b"RSET\r\n")[0]
    assert b"last line" not in first                     # no body for the refused envelope
    assert (b"DATA\r\n" in first) is pipelining          # DATA only inside a pipelined group


async def test_all_refused_but_data_taken_ends_with_a_lone_dot(sink_factory, wiretap_factory):
    """RFC 2920: a server that answers the pipelined DATA with 354 although it
    refused every RCPT gets a lone dot, never the message; then RSET."""
    sink = await sink_factory(pipelining=True)
    sink.sloppy_rcpt = True
    sink.fail_rcpt[B] = "550 5.1.1 No such user"
    tap = await wiretap_factory(sink.port)
    courier = courier_for(tap.port)
    assert await courier.send(FROM, [B], MESSAGE) == {B: Permanent("550 5.1.1 No such user", 550)}
    assert await courier.send(FROM, [A], MESSAGE) == {A: Delivered()}
    await courier.close()
    assert [(m.rcpt_tos, m.data) for m in sink.messages] == [([B], b""), ([A], RECEIVED)]
    assert b"DATA\r\n.\r\nRSET\r\nMAIL FROM:" in tap.sessions[0] and len(tap.sessions) == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "sequential"])
@pytest.mark.parametrize("reply,kind", [("550 5.7.1 Sender refused", Permanent),
                                        ("451 4.3.0 Try later", Transient)])
async def test_mail_refused(sink_factory, wiretap_factory, pipelining, reply, kind):
    sink = await sink_factory(pipelining=pipelining)
    sink.fail_mail = reply
    tap = await wiretap_factory(sink.port)
    courier = courier_for(tap.port)
    code = int(reply[:3])
    assert await courier.send(FROM, [A, B], MESSAGE) == dict.fromkeys([A, B], kind(reply, code))
    sink.fail_mail = None
    assert await courier.send(FROM, [A], MESSAGE) == {A: Delivered()}
    await courier.close()
    assert len(tap.sessions) == 2                    # the refusing session was not reused
    assert tap.sessions[0].endswith(b"QUIT\r\n")     # every reply read: a clean QUIT
    assert [m.rcpt_tos for m in sink.messages] == [[A]]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "sequential"])
async def test_data_refused_after_the_body(sink_factory, wiretap_factory, pipelining):
    sink = await sink_factory(pipelining=pipelining)
    sink.fail_rcpt[B] = "550 5.1.1 No such user"
    sink.fail_data = "554 5.6.0 Message refused"
    tap = await wiretap_factory(sink.port)
    courier = courier_for(tap.port)
    assert await courier.send(FROM, [A, B], MESSAGE) == dict.fromkeys(
        [A, B], Permanent("554 5.6.0 Message refused", 554))
    sink.fail_data = None
    assert await courier.send(FROM, [A], MESSAGE) == {A: Delivered()}
    await courier.close()
    assert len(tap.sessions) == 2 and tap.sessions[0].endswith(b".\r\nQUIT\r\n")
    assert [m.rcpt_tos for m in sink.messages] == [[A]]


async def test_data_refused_before_the_body(postfix_sink):
    port = await postfix_sink("-f", "DATA")        # 5xx to DATA (and no PIPELINING)
    courier = courier_for(port)
    outcomes = await courier.send(FROM, [A, B], MESSAGE)
    await courier.close()
    assert all(isinstance(o, Permanent) and o.code == 500 for o in outcomes.values()), outcomes


async def test_hangup_mid_pipeline_on_a_fresh_connection_is_transient(postfix_sink):
    port = await postfix_sink("-q", "RCPT")        # PIPELINING; 250 to MAIL, then hangs up
    courier = courier_for(port)
    assert await courier.send(FROM, [A, B], MESSAGE) == dict.fromkeys(
        [A, B], Transient("upstream closed the connection"))
    await courier.close()


async def test_hangup_mid_pipeline_on_a_reused_connection_is_retried(sink_factory,
                                                                   wiretap_factory):
    sink = await sink_factory(pipelining=True)
    tap = await wiretap_factory(sink.port)
    courier = courier_for(tap.port)
    assert await courier.send(FROM, [A], MESSAGE) == {A: Delivered()}
    tap.cut = 2                                      # MAIL and the first RCPT answered, then gone
    assert await courier.send(FROM, [A, B], MESSAGE) == {A: Delivered(), B: Delivered()}
    await courier.close()
    assert len(tap.sessions) == 2
    assert [m.rcpt_tos for m in sink.messages] == [[A], [A, B]]


async def test_timeout_mid_pipeline_closes_the_connection(sink_factory, wiretap_factory):
    sink = await sink_factory(pipelining=True)
    tap = await wiretap_factory(sink.port)
    courier = courier_for(tap.port, timeout=1)
    assert await courier.send(FROM, [A], MESSAGE) == {A: Delivered()}
    tap.hold = "forever"
    outcome = (await courier.send(FROM, [A, B], MESSAGE))[A]
    assert isinstance(outcome, Transient) and "Timeout" in outcome.reason
    await until(lambda: tap.client_closed == 1, timeout=20, what="the courier to hang up")
    assert not tap.sessions[0].endswith(b"QUIT\r\n")  # closed, not talked to
    tap.hold = None
    assert await courier.send(FROM, [A], MESSAGE) == {A: Delivered()}
    await courier.close()
    assert len(tap.sessions) == 2 and [m.rcpt_tos for m in sink.messages] == [[A], [A]]


async def test_postfix_sink_pipelined_and_not(postfix_sink):
    """Many messages on pooled connections to Postfix's smtp-sink, with and without PIPELINING."""
    for flags in ((), ("-p",)):
        port = await postfix_sink(*flags)
        courier = courier_for(port)
        results = await asyncio.gather(*(courier.send(FROM, [A, B], MESSAGE) for _ in range(40)))
        await courier.close()
        assert all(r == {A: Delivered(), B: Delivered()} for r in results)
