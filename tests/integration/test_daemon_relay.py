"""End to end through the real daemon (`phigate run` in a subprocess) into a
real upstream sink on loopback: byte-exact relay, per-recipient refusals with
a DSN, an upstream outage, kill -9 during 500 submissions, no message content
in any log line, the systemd notify protocol, and SIGHUP reload."""
import asyncio
import email
import email.policy
import json
import os
import signal
import smtplib
import subprocess
import threading
from email.message import EmailMessage

import pytest

from tests.peers.daemon import SENDER
from tests.peers.ports import free_port

pytestmark = pytest.mark.slow


def message(i: int, subject: str = "", body: str = "", to: str = "patient@partner.example") -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = to
    msg["Subject"] = subject or f"hello {i}"
    msg["Message-ID"] = f"<m{i}@client.smiledental.example>"
    msg["Date"] = "Fri, 04 Dec 2026 10:00:00 +0000"   # complete: nothing for phigate to add
    msg.set_content(body or f"Message number {i}.\n")
    return msg.as_bytes(policy=email.policy.SMTP)


def as_sent(data: bytes) -> bytes:
    """What a relayed message holds after phigate's Received header (3 lines)."""
    received_end = data.index(b"\r\n", data.index(b"\r\n\t", data.index(b"\r\n\t") + 1) + 1) + 2
    return data[received_end:]


def message_ids(sink) -> list[str]:
    out = []
    for m in sink.messages:
        parsed = email.message_from_bytes(m.data)
        out.append(parsed["Message-ID"])
    return out


async def submit(daemon, messages, rcpts=("patient@partner.example",)):
    """Send each message over one authenticated STARTTLS session (in a thread:
    smtplib blocks, the sink runs in this event loop)."""
    def run():
        replies = []
        with daemon.client() as smtp:
            for data in messages:
                smtp.sendmail(SENDER, list(rcpts), data)
                replies.append(smtp.noop())
        return replies
    return await asyncio.to_thread(run)


async def test_relay_is_byte_exact_after_one_received_header(daemon_factory, upstream_sink):
    """With lines the client dot-stuffed, and without (the message then goes
    upstream as it was stored: ``Envelope.wire_ready``)."""
    daemon = daemon_factory(upstream_sink.port)
    sent = [message(1, body="Line one.\nLine two with trailing spaces   \n.\n..leading dots\n"),
            message(2, body="No line here starts with a dot.\nNot even this one.\n")]
    await submit(daemon, sent)
    await upstream_sink.wait_for(2, timeout=30)
    for data, got in zip(sent, upstream_sink.messages, strict=True):
        assert got.mail_from == SENDER and list(got.rcpt_tos) == ["patient@partner.example"]
        header = got.data.partition(b"\r\n\t")[0]
        assert header.startswith(b"Received: from client.smiledental.example ([127.0.0.1])")
        assert as_sent(got.data) == data      # everything after it is exactly what was sent
    assert await asyncio.to_thread(daemon.stop) == 0


async def test_wire_ready_only_when_the_client_stuffed_no_line(daemon_factory):
    daemon = daemon_factory(free_port())          # no upstream: the items stay queued
    await submit(daemon, [message(30, body="No line starts with a dot.\n")],
                 rcpts=("plain@partner.example",))
    await submit(daemon, [message(31, body="A line below does.\n.hidden\n")],
                 rcpts=("dotted@partner.example",))
    flags = {}
    for path in (daemon.spool / "queue").glob("*.msg"):
        envelope = json.loads(path.read_bytes().partition(b"\n")[0])["envelope"]
        flags[envelope["rcpt_tos"][0]] = envelope["wire_ready"]
    assert flags == {"plain@partner.example": True, "dotted@partner.example": False}
    assert daemon.stop() == 0


async def test_one_refused_recipient_others_delivered_and_dsn(daemon_factory, upstream_sink):
    upstream_sink.fail_rcpt["nobody@partner.example"] = "550 5.1.1 No such user"
    daemon = daemon_factory(upstream_sink.port)
    await submit(daemon, [message(2)], rcpts=("patient@partner.example", "nobody@partner.example"))
    await upstream_sink.wait_for(2, timeout=30)   # the message + the DSN to the sender
    by_rcpt = {tuple(m.rcpt_tos): m for m in upstream_sink.messages}
    assert ("patient@partner.example",) in by_rcpt
    dsn = by_rcpt[(SENDER,)]
    assert dsn.mail_from in ("", "<>")          # the null reverse-path
    assert b"nobody@partner.example" in dsn.data and b"550 5.1.1" in dsn.data
    assert b"Message number 2" not in dsn.data and b"hello 2" not in dsn.data
    assert await asyncio.to_thread(daemon.stop) == 0


async def test_upstream_outage_then_all_100_delivered(daemon_factory, upstream_sink):
    port = upstream_sink.port
    await upstream_sink.stop()
    daemon = daemon_factory(port)
    await submit(daemon, [message(i) for i in range(100)])
    assert len(upstream_sink.messages) == 0
    assert len(daemon.queue_ids()) == 100       # all waiting in the queue
    await upstream_sink.start()
    await upstream_sink.wait_for(100, timeout=120)
    assert sorted(message_ids(upstream_sink)) == sorted(
        f"<m{i}@client.smiledental.example>" for i in range(100))
    assert await asyncio.to_thread(daemon.stop) == 0


async def test_kill_9_during_500_submissions_loses_nothing(daemon_factory, upstream_sink):
    daemon = daemon_factory(upstream_sink.port)
    accepted: set[int] = set()
    lock = threading.Lock()
    kill_now = threading.Event()
    total, connections = 500, 10

    def client(worker: int) -> None:
        numbers = list(range(worker, total, connections))
        try:
            with daemon.client(timeout=20) as smtp:
                for i in numbers:
                    smtp.sendmail(SENDER, ["patient@partner.example"], message(i))
                    with lock:                      # sendmail returned: we saw the 250
                        accepted.add(i)
                        if len(accepted) >= 150:
                            kill_now.set()
        except (OSError, smtplib.SMTPException):
            return                                  # the daemon died under us

    def run_clients() -> None:
        threads = [threading.Thread(target=client, args=(w,)) for w in range(connections)]
        for t in threads:
            t.start()
        kill_now.wait(120)
        daemon.kill()
        for t in threads:
            t.join(60)

    await asyncio.to_thread(run_clients)
    assert 150 <= len(accepted) < total
    daemon.start()                                 # recovery
    expected = {f"<m{i}@client.smiledental.example>" for i in accepted}

    async with asyncio.timeout(180):
        while not expected <= set(message_ids(upstream_sink)):
            await upstream_sink.wait_for(len(upstream_sink.messages) + 1, timeout=180)
    got = message_ids(upstream_sink)
    lost = expected - set(got)
    duplicates = len(got) - len(set(got))
    print(f"\ncrash test: accepted={len(accepted)} delivered={len(set(got))} "
          f"lost={len(lost)} duplicates={duplicates}")
    assert not lost
    # byte-exact, whichever spool file (new, or a finished item's reused) held it; and
    # duplicates are at most the deliveries in flight at the kill (queue.concurrency, 50
    # by default), not the finished items a reused file held (up to 192 spares)
    for m in upstream_sink.messages:
        number = int(email.message_from_bytes(m.data)["Message-ID"][2:].partition("@")[0])
        assert as_sent(m.data) == message(number)
    assert duplicates <= 50
    # In a thread: the sink runs on this loop and must answer the daemon's last
    # delivery (a message committed but never acknowledged to a client) and QUITs.
    assert await asyncio.to_thread(daemon.stop) == 0


async def test_no_subject_or_body_text_in_any_log_line(daemon_factory, upstream_sink):
    """PHI through every path of the shipped policy: relayed to staff, into the
    portal for the patient, held when the subject names the patient."""
    port = free_port()
    daemon = daemon_factory(upstream_sink.port, extra={"portal": {
        "enabled": True, "address": f"127.0.0.1:{port}", "base_url": f"http://127.0.0.1:{port}",
        "secure_cookies": False}})
    markers = [f"zqmarker{i}x{os.getpid()}" for i in range(6)]
    subjects = [f"Re: {markers[0]} crown #14", f"Re: {markers[2]} crown #14",
                f"Patient {markers[4].capitalize()} Smith crown #14"]
    bodies = [message(10 + i, subject=subjects[i],
                      body=f"Patient {markers[2 * i + 1]} DOB 04/12/1961, SSN 123-45-6789, "
                           f"D2740 crown on tooth 14.\n")
              for i in range(3)]
    await submit(daemon, bodies, rcpts=("dr@smiledental.example", "patient@partner.example"))
    await upstream_sink.wait_for(3, timeout=30)

    async def settled():
        while daemon.queue_ids():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(settled(), 60)
    assert await asyncio.to_thread(daemon.stop) == 0
    logs = daemon.log_text()
    for event in ("queued", "delivered", "deposited", "held"):
        assert f'"event": "{event}"' in logs, event
    for token in markers + ["123-45-6789", "04/12/1961", "crown"]:
        assert token not in logs, f"{token} leaked into the logs"


async def test_notify_ready_watchdog_and_stopping(daemon_factory, upstream_sink, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "400000")    # the daemon should ping every 0.2 s
    daemon = daemon_factory(upstream_sink.port)
    ready = daemon.notify.wait_for("READY=1", 5)
    assert "STATUS=" in ready
    daemon.notify.wait_for("WATCHDOG=1", 30, daemon.proc)
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.notify.wait_for("STOPPING=1", 30)
    assert daemon.proc.wait(60) == 0


async def test_sighup_keeps_running_config_when_new_one_is_bad(daemon_factory, upstream_sink):
    daemon = daemon_factory(upstream_sink.port)
    good = daemon.config_path.read_text()
    daemon.config_path.write_text(good + "upstream: {port: 70000}\n")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("RELOADING=1", 30, daemon.proc)
    daemon.notify.wait_for("READY=1", 30, daemon.proc, count=2)
    assert '"event": "config_rejected"' in daemon.log_text()
    await submit(daemon, [message(30)])           # still accepting with the old config
    await upstream_sink.wait_for(1, timeout=30)
    daemon.config_path.write_text(good)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("READY=1", 30, daemon.proc, count=3)
    assert '"event": "config_loaded"' in daemon.log_text()
    assert await asyncio.to_thread(daemon.stop) == 0


def test_swaks_submits_through_phigate(daemon_factory, tmp_path):
    """swaks (an independent SMTP client) → phigate → local outbox."""
    daemon = daemon_factory(None)
    run = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(daemon.port), "--tls",
         "--tls-verify", "--tls-ca-path", str(daemon.dir / "var" / "tls" / "cert.pem"),
         "--auth", "PLAIN", "--auth-user", "frontdesk", "--auth-password",
         "correct horse battery staple", "--from", SENDER, "--to", "lab@partner.example",
         "--header", "Subject: swaks test", "--body", "hello from swaks"],
        capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "queued as" in run.stdout
    daemon.stop()
    outbox = list((daemon.dir / "var" / "outbox").glob("*.eml"))
    assert len(outbox) == 1
    assert b"hello from swaks" in outbox[0].read_bytes()
