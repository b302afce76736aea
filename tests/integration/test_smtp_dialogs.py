"""Scripted SMTP dialogs against the real submission listener.

The gateway runs in-process (``gateway.app.Gateway``: the real aiosmtpd
listener, Submission, QueueStore and dispatcher) and relays to the aiosmtpd
sink on loopback; the client is ``tests.peers.dialog.Dialog``, which sends
raw lines so every byte on the wire is the test's choice. One dialog (SIGTERM
during DATA) needs a real process and uses the ``Daemon`` fixture.
"""
from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.auth.users import UserDirectory
from gateway.config import Config
from tests.peers import daemon as daemon_peer
from tests.peers.dialog import Dialog
from tests.peers.wait import until

USER, PASSWORD = "frontdesk", "front desk password"
SENDER = "frontdesk@smiledental.example"
RCPT = "patient@partner.example"
MAX_SIZE = 20_000
QUEUED = re.compile(r"^2\.0\.0 Ok: queued as ([0-9a-f]{32})$")


def body(text: str = "Hello.") -> bytes:
    return (f"From: {SENDER}\r\nTo: {RCPT}\r\nSubject: dialog test\r\n\r\n{text}\r\n").encode()


def spool_files(gw: Gateway) -> list[str]:
    """Files of queued mail (the shards' lock files and the empty names reserved
    ahead, ``queue/<id>.new``, are not mail)."""
    root = Path(gw.config.queue.dir)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not p.name.startswith("lock-")
                  and not (p.suffix == ".new" and p.stat().st_size == 0))


@pytest.fixture
async def gateway_factory(tmp_path, upstream_sink):
    running: list[Gateway] = []
    UserDirectory.load(tmp_path / "users.yaml").add(USER, PASSWORD, [SENDER])

    async def make(**overrides) -> Gateway:
        root = tmp_path / f"gw{len(running)}"
        settings = {
            "state_dir": str(root / "var"), "auth": {"users_file": str(tmp_path / "users.yaml")},
            "listen": {"submission": {"address": "127.0.0.1:0"}},
            "upstream": {"host": "127.0.0.1", "port": upstream_sink.port, "tls": "none"},
            "queue": {"dir": str(root / "spool"), "retry": {"min": "1s", "max": "2s"}},
            "metrics": {"address": None}, "smtp": {"hostname": "gw.smiledental.example"},
            "limits": {"max_message_size": MAX_SIZE, "max_recipients": 3, "max_connections": 3},
        }
        for key, value in overrides.items():
            settings[key] = {**settings.get(key, {}), **value}
        gw = Gateway(Config.model_validate(settings))
        await gw.start()
        running.append(gw)
        return gw

    yield make
    for gw in running:
        await gw.stop(grace=5)


@pytest.fixture
async def gw(gateway_factory):
    return await gateway_factory()


async def authed(gw: Gateway) -> Dialog:
    host, port = gw.smtp.address
    dialog = await Dialog.open(host, port)
    await dialog.session(USER, PASSWORD)
    return dialog


async def send_one(gw: Gateway, text: str = "Barrier.") -> str:
    """A complete, valid submission; returns the queue id from the 250."""
    d = await authed(gw)
    assert (await d.cmd(f"MAIL FROM:<{SENDER}>"))[0] == 250
    assert (await d.cmd(f"RCPT TO:<{RCPT}>"))[0] == 250
    code, text = await d.data(body(text))
    await d.close()
    match = QUEUED.match(text)
    assert code == 250 and match, (code, text)
    return match.group(1)


async def assert_nothing_queued_then_barrier(gw: Gateway, sink) -> None:
    """After a refused or abandoned transaction: once the server has dropped
    every session, the spool is empty; then one good message goes through and
    it is the only one the sink ever sees."""
    await until(lambda: gw.smtp.active_connections == 0 and gw.smtp.transactions == 0,
                what="the server to finish every session")
    assert spool_files(gw) == []
    await send_one(gw)
    await sink.wait_for(1, timeout=30)
    assert len(sink.messages) == 1 and b"Barrier." in sink.messages[0].data


# ---- EHLO, STARTTLS, AUTH ---------------------------------------------------------
async def test_ehlo_advertises_extensions_and_auth_only_after_tls(gw):
    d = await Dialog.open(*gw.smtp.address)
    code, before = await d.greet()
    assert code == 250
    assert "STARTTLS" in before.splitlines() and not any(
        line.startswith("AUTH") for line in before.splitlines())
    code, after = await d.starttls()
    assert code == 250
    lines = after.splitlines()
    assert "STARTTLS" not in lines and "AUTH LOGIN PLAIN" in lines
    for keyword in ("8BITMIME", "SMTPUTF8", "PIPELINING", "ENHANCEDSTATUSCODES",
                    f"SIZE {MAX_SIZE}"):
        assert keyword in lines, (keyword, lines)
        assert keyword in before.splitlines(), (keyword, before)
    assert d.banner[0] == 220 and "Python" not in d.banner[1]
    await d.close()


async def test_auth_and_mail_before_starttls_are_refused(gw):
    d = await Dialog.open(*gw.smtp.address)
    await d.greet()
    code, text = await d.cmd("AUTH PLAIN AGZyb250ZGVzawBmcm9udCBkZXNrIHBhc3N3b3Jk")
    assert code in (530, 538), text
    code, text = await d.cmd(f"MAIL FROM:<{SENDER}>")
    assert code == 530, text
    assert (await d.cmd("QUIT"))[0] == 221
    await d.close()


async def test_mail_before_auth_is_refused_after_tls(gw):
    d = await Dialog.open(*gw.smtp.address)
    await d.greet()
    await d.starttls()
    code, text = await d.cmd(f"MAIL FROM:<{SENDER}>")
    assert (code, text.split()[0]) == (530, "5.7.0")
    code, text = await d.auth_plain(USER, "wrong password!")
    assert code == 535, text
    await d.close()


async def test_sender_the_login_may_not_use_gets_553(gw, upstream_sink):
    d = await authed(gw)
    code, text = await d.cmd("MAIL FROM:<someone.else@other.example>")
    assert (code, text.split()[0]) == (553, "5.7.1")
    assert (await d.cmd(f"MAIL FROM:<{SENDER}>"))[0] == 250   # the session goes on
    await d.close()
    await assert_nothing_queued_then_barrier(gw, upstream_sink)


# ---- limits -------------------------------------------------------------------------
async def test_declared_size_over_limit_gets_552(gw, upstream_sink):
    d = await authed(gw)
    code, text = await d.cmd(f"MAIL FROM:<{SENDER}> SIZE={MAX_SIZE + 1}")
    assert (code, text.split()[0]) == (552, "5.3.4"), text
    await d.close()
    await assert_nothing_queued_then_barrier(gw, upstream_sink)


async def test_undeclared_oversize_data_gets_552_and_nothing_is_queued(gw, upstream_sink):
    d = await authed(gw)
    assert (await d.cmd(f"MAIL FROM:<{SENDER}>"))[0] == 250
    assert (await d.cmd(f"RCPT TO:<{RCPT}>"))[0] == 250
    code, text = await d.data(body("x" * 70 + "\r\n") * (MAX_SIZE // 60))
    assert (code, text.split()[0]) == (552, "5.3.4"), text
    assert (await d.cmd("NOOP"))[0] == 250
    await d.close()
    await assert_nothing_queued_then_barrier(gw, upstream_sink)


async def test_recipients_over_the_limit_get_452_and_the_rest_are_delivered(gw, upstream_sink):
    d = await authed(gw)
    assert (await d.cmd(f"MAIL FROM:<{SENDER}>"))[0] == 250
    replies = [await d.cmd(f"RCPT TO:<r{i}@partner.example>") for i in range(5)]
    assert [c for c, _ in replies] == [250, 250, 250, 452, 452]
    assert replies[3][1].startswith("4.5.3")
    code, text = await d.data(body())
    assert code == 250, text
    await d.close()
    await upstream_sink.wait_for(1, timeout=30)
    assert upstream_sink.messages[0].rcpt_tos == [f"r{i}@partner.example" for i in range(3)]


async def test_line_longer_than_the_limit_gets_500_after_the_dot(gw, upstream_sink):
    limit = gw.config.limits.max_line_length
    d = await authed(gw)
    assert (await d.cmd(f"MAIL FROM:<{SENDER}>"))[0] == 250
    assert (await d.cmd(f"RCPT TO:<{RCPT}>"))[0] == 250
    code, text = await d.data(body("a" * (limit + 1)))
    assert code == 500 and "Line too long" in text, (code, text)
    assert (await d.cmd("NOOP"))[0] == 250
    await d.close()
    await assert_nothing_queued_then_barrier(gw, upstream_sink)


async def test_line_of_exactly_the_limit_is_accepted(gw, upstream_sink):
    limit = gw.config.limits.max_line_length
    d = await authed(gw)
    assert (await d.cmd(f"MAIL FROM:<{SENDER}>"))[0] == 250
    assert (await d.cmd(f"RCPT TO:<{RCPT}>"))[0] == 250
    code, text = await d.data(body("a" * limit))
    assert code == 250, text
    await d.close()
    await upstream_sink.wait_for(1, timeout=30)
    assert b"\r\n" + b"a" * limit + b"\r\n" in upstream_sink.messages[0].data


async def test_over_max_connections_gets_421(gw):
    limit = gw.config.limits.max_connections
    open_ = [await Dialog.open(*gw.smtp.address) for _ in range(limit)]
    for d in open_:
        assert (await d.reply())[0] == 220
    extra = await Dialog.open(*gw.smtp.address)
    code, text = await extra.reply()
    assert (code, text.split()[0]) == (421, "4.7.0")
    await extra.close()
    await open_.pop().close()
    await until(lambda: gw.smtp.active_connections < limit, what="a free connection slot")
    again = await Dialog.open(*gw.smtp.address)
    assert (await again.reply())[0] == 220
    for d in [*open_, again]:
        await d.close()


# ---- DATA: queue id, pipelining, bare line ends, smuggling, hang-up ---------------
async def test_250_after_data_carries_the_queue_id(gw, upstream_sink):
    queue_id = await send_one(gw, "With an id.")
    await upstream_sink.wait_for(1, timeout=30)
    received = upstream_sink.messages[0].data.split(b"\r\n\r\n")[0]
    assert f" id {queue_id};".encode() in received


async def test_pipelined_envelope_and_data(gw, upstream_sink):
    d = await authed(gw)
    await d.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RCPT}>\r\nRCPT TO:<b@partner.example>\r\n"
                 "DATA\r\n")
    assert [(await d.reply())[0] for _ in range(4)] == [250, 250, 250, 354]
    await d.send(body("Pipelined.") + b".\r\nQUIT\r\n")
    code, text = await d.reply()
    assert code == 250 and QUEUED.match(text), text
    assert (await d.reply())[0] == 221
    await d.close()
    await upstream_sink.wait_for(1, timeout=30)
    assert upstream_sink.messages[0].rcpt_tos == [RCPT, "b@partner.example"]


async def test_bare_lf_and_cr_are_normalized_to_crlf(gateway_factory, upstream_sink):
    gw = await gateway_factory(smtp={"bare_line_endings": "normalize"})
    d = await authed(gw)
    assert (await d.cmd(f"MAIL FROM:<{SENDER}>"))[0] == 250
    assert (await d.cmd(f"RCPT TO:<{RCPT}>"))[0] == 250
    code, text = await d.data(body("one\ntwo\rthree\r\nfour"))
    assert code == 250, text
    await d.close()
    await upstream_sink.wait_for(1, timeout=30)
    data = upstream_sink.messages[0].data
    assert b"\r\none\r\ntwo\r\nthree\r\nfour\r\n" in data
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", data) is None


async def test_bare_lf_is_refused_with_550_in_reject_mode(gateway_factory, upstream_sink):
    gw = await gateway_factory(smtp={"bare_line_endings": "reject"})
    d = await authed(gw)
    assert (await d.cmd(f"MAIL FROM:<{SENDER}>"))[0] == 250
    assert (await d.cmd(f"RCPT TO:<{RCPT}>"))[0] == 250
    code, text = await d.data(body("one\ntwo"))
    assert (code, text.split()[0]) == (550, "5.6.2"), text
    assert (await d.cmd(f"MAIL FROM:<{SENDER}>"))[0] == 250   # transaction was reset
    await d.close()
    await assert_nothing_queued_then_barrier(gw, upstream_sink)


SMUGGLE = (f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<victim@evil.example>\r\nDATA\r\n"
           "Subject: smuggled\r\n\r\nsmuggled\r\n").encode()


@pytest.mark.parametrize("mode", ["normalize", "reject"])
@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r"],
                         ids=["LF.LF", "CRLF.LF", "LF.CRLF", "CR.CR"])
async def test_smuggled_end_of_data_does_not_end_the_message(gateway_factory, upstream_sink,
                                                             mode, fake_end):
    gw = await gateway_factory(smtp={"bare_line_endings": mode})
    d = await authed(gw)
    assert (await d.cmd(f"MAIL FROM:<{SENDER}>"))[0] == 250
    assert (await d.cmd(f"RCPT TO:<{RCPT}>"))[0] == 250
    code, text = await d.data(body("hello") + b"carrier" + fake_end + SMUGGLE)
    # exactly one reply for the whole data: the next reply answers our NOOP,
    # not a smuggled MAIL/RCPT/DATA
    if mode == "reject":
        assert (code, text.split()[0]) == (550, "5.6.2"), text
    else:
        assert code == 250 and QUEUED.match(text), text
    assert await d.cmd("NOOP") == (250, "2.0.0 OK")
    await d.close()
    if mode == "reject":
        await assert_nothing_queued_then_barrier(gw, upstream_sink)
        return
    await upstream_sink.wait_for(1, timeout=30)
    await until(lambda: gw.store.size == 0, what="delivery to finish")
    assert len(upstream_sink.messages) == 1
    got = upstream_sink.messages[0]
    assert got.rcpt_tos == [RCPT]
    assert b"RCPT TO:<victim@evil.example>\r\n" in got.data      # just text in the one message
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", got.data) is None


async def test_client_hanging_up_mid_data_queues_nothing(gw, upstream_sink):
    d = await authed(gw)
    assert (await d.cmd(f"MAIL FROM:<{SENDER}>"))[0] == 250
    assert (await d.cmd(f"RCPT TO:<{RCPT}>"))[0] == 250
    assert (await d.cmd("DATA"))[0] == 354
    await d.send(body("half of a message") + b"more lines\r\n" * 20)
    await until(lambda: gw.smtp.transactions == 1, what="the server to be in DATA")
    d.writer.transport.abort()                     # no QUIT, no final dot: a dropped link
    await assert_nothing_queued_then_barrier(gw, upstream_sink)


# ---- a real process: SIGTERM while a DATA transaction is in flight ------------------
async def test_sigterm_during_data_completes_the_transaction_and_exits_0(daemon_factory,
                                                                         upstream_sink):
    daemon = daemon_factory(upstream_sink.port)
    d = await Dialog.open("127.0.0.1", daemon.port)
    await d.session(daemon_peer.USER, daemon_peer.PASSWORD)
    assert (await d.cmd(f"MAIL FROM:<{daemon_peer.SENDER}>"))[0] == 250
    assert (await d.cmd(f"RCPT TO:<{RCPT}>"))[0] == 250
    assert (await d.cmd("DATA"))[0] == 354
    await d.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    daemon.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(daemon.notify.wait_for, "STOPPING=1", 30, daemon.proc)
    await until_refused("127.0.0.1", daemon.port)     # no longer accepting connections
    await d.send(b"second half\r\n.\r\n")
    code, text = await d.reply()
    assert code == 250 and QUEUED.match(text), text
    queue_id = QUEUED.match(text).group(1)
    await d.close()
    assert await asyncio.to_thread(daemon.proc.wait, 60) == 0
    delivered = any(b"second half" in m.data for m in upstream_sink.messages)
    assert delivered or queue_id in daemon.queue_ids(), "an acknowledged message was lost"


async def until_refused(host: str, port: int, timeout: float = 30) -> None:
    """Until a new connection to ``host:port`` is refused."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        except OSError:
            return
        writer.close()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{host}:{port} still accepts connections")


@pytest.mark.parametrize(("networks", "trusted"), [(["127.0.0.0/8"], True),
                                                   (["10.0.0.0/8", "::1/128"], False)])
async def test_trusted_networks_submit_without_tls_and_auth(gateway_factory, networks, trusted):
    """A client in ``auth.trusted_networks`` may submit in plaintext without AUTH,
    on every connection (the answer is remembered per address); any other must
    STARTTLS first."""
    gw = await gateway_factory(auth={"trusted_networks": networks})
    for _ in range(2):
        d = await Dialog.open(*gw.smtp.address)
        await d.greet()
        await d.cmd("EHLO client.example")
        code, text = await d.cmd(f"MAIL FROM:<{SENDER}>")
        assert (code == 250) is trusted and (code == 530) is not trusted, text
        await d.cmd("QUIT")
        await d.close()
