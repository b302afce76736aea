"""Hostile input through the real daemon (``phigate run``, the shipped policy, the portal on,
the aiosmtpd sink upstream): PHI hidden in every place a person can see, malformed MIME of
every kind, odd encodings and charsets, zip/gzip/PDF/XML bombs and 20 MB attachments, all
generated at test time by ``tests/mimegen.py``, each carrying a PHI sentence with a unique
chart number.

Every message is answered (an SMTP reply) or queued; the daemon neither crashes nor hangs;
no message's chart number reaches the sink in plaintext (PHI and PHI-suspect mail is held or
deposited in the portal, whose notice carries no PHI); the log never holds it either; the
daemon's peak RSS (VmHWM) is printed and stays within 512 MiB; and an unreadable message's
reason shows in ``phigate queue show`` and ``phigate policy test``."""

from __future__ import annotations

import asyncio
import email
import email.policy
import email.utils
import random
import smtplib
from pathlib import Path

import pytest

from tests import mimegen
from tests.integration.test_policy_daemon import portal_settings
from tests.leaks import shown_tokens
from tests.peers.daemon import SENDER

STAFF_ADDRESS = email.utils.parseaddr(mimegen.STAFF)[1]

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RSS_LIMIT_MIB = 512


def send_each(daemon, messages) -> dict[str, str]:
    """name -> "queued" or the SMTP reply code; a dropped connection fails the test."""
    answers = {}
    for index, (name, raw, _) in enumerate(messages):
        rcpt = f"patient{index}@mail.example"
        try:
            with daemon.client(timeout=120) as smtp:
                refused = smtp.sendmail(SENDER, [rcpt], raw)
            answers[name] = "queued" if not refused else f"refused {refused}"
        except smtplib.SMTPResponseException as exc:
            answers[name] = str(exc.smtp_code)
        except smtplib.SMTPServerDisconnected as exc:
            raise AssertionError(f"{name}: the daemon dropped the connection ({exc})") from exc
        assert daemon.proc.poll() is None, f"the daemon died on {name}"
    return answers


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def worker_peaks_mib(pid: int) -> list[float]:
    """VmHWM of the daemon's classifier workers (its child processes still alive)."""
    peaks = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                peaks.append(peak_rss_mib(int(child)))
            except (OSError, AssertionError):
                continue
    return peaks


def texts_of(data: bytes) -> list[bytes]:
    """The delivered bytes and every decoded part, to look for PHI however it was encoded."""
    found = [data]
    for part in email.message_from_bytes(data).walk():
        if not part.is_multipart():
            found.append(part.get_payload(decode=True) or b"")
    return found


async def test_hostile_mail_never_leaves_in_plaintext_and_memory_stays_bounded(
        daemon_factory, upstream_sink, tmp_path):
    messages = await asyncio.to_thread(mimegen.hostile, random.Random(20261205))
    markers = {name: marker for name, _, marker in messages}
    daemon = daemon_factory(upstream_sink.port, extra={
        "policy": str(ROOT / "policies" / "default.yaml"),
        "portal": portal_settings(),
        "limits": {"max_message_size": 40_000_000},
        "auth": {"shared_senders": [STAFF_ADDRESS]},   # the generated mail's header From
    })
    answers = await asyncio.to_thread(send_each, daemon, messages)
    del messages
    queued = [name for name, answer in answers.items() if answer == "queued"]
    print("\nanswers:", {a: sum(1 for v in answers.values() if v == a)
                         for a in set(answers.values())})
    refused = {name: answer for name, answer in answers.items() if answer != "queued"}
    assert refused == {"long_line": "500"}, refused  # a 2 MB line: refused by SMTP itself

    def parked() -> int:  # held for an administrator, or shunted for a human (never sent)
        return len(daemon.queue_ids("hold")) + len(daemon.queue_ids("shunt"))

    async def settled() -> None:
        while len(upstream_sink.messages) + parked() < len(queued):
            await asyncio.sleep(0.1)
    await asyncio.wait_for(settled(), 300)

    rss = peak_rss_mib(daemon.proc.pid)
    print(f"classifier workers' peak RSS (VmHWM, live ones): "
          f"{[round(p) for p in worker_peaks_mib(daemon.proc.pid)]} MiB")
    print(f"daemon peak RSS (VmHWM): {rss:.0f} MiB over {len(answers)} hostile messages "
          f"({len(queued)} queued: {len(daemon.queue_ids('hold'))} held, "
          f"{len(daemon.queue_ids('shunt'))} shunted, {len(upstream_sink.messages)} portal "
          f"notices)")
    assert rss <= RSS_LIMIT_MIB

    for received in upstream_sink.messages:
        # only phigate's own notices (portal, held) leave: never a relayed message
        head = email.message_from_bytes(received.data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
        assert head["Auto-Submitted"] in ("auto-generated", "auto-replied"), received.rcpt_tos
        for text in texts_of(received.data):
            assert shown_tokens(text, markers.values()) == [], "reached the sink in plaintext"
    assert shown_tokens(daemon.log_text(), markers.values()) == [], "a chart number is logged"
    assert daemon.proc.poll() is None
    assert await asyncio.to_thread(daemon.stop) == 0


async def test_unreadable_reason_shows_in_queue_show_and_policy_test(daemon_factory,
                                                                     upstream_sink, tmp_path):
    rng = random.Random(8)
    phi = mimegen.phi_sentence(rng)
    raw = mimegen.place("broken_boundary", phi, rng)
    daemon = daemon_factory(upstream_sink.port, extra={
        "policy": str(ROOT / "policies" / "default.yaml"),
        "auth": {"shared_senders": [STAFF_ADDRESS]}})
    path = tmp_path / "broken.eml"
    path.write_bytes(raw)
    shown = daemon.phigate(["policy", "test", str(path), "--from", SENDER,
                            "--to", "pat@mail.example"]).stdout
    assert "unreadable (multipart boundary not found) in body" in shown
    assert shown_tokens(shown, [phi.marker]) == []

    held = mimegen.message(mimegen.text("See attached."),
                           subject="=?x-unknown?q?" + phi.text.replace(" ", "_")[:50] + "?=")
    await asyncio.to_thread(send_each, daemon, [("held", held, phi.marker)])

    async def hold() -> list[str]:
        while not daemon.queue_ids("hold"):
            await asyncio.sleep(0.05)
        return daemon.queue_ids("hold")
    (item_id,) = await asyncio.wait_for(hold(), 60)
    text = daemon.phigate(["queue", "show", item_id]).stdout
    assert "unreadable (subject does not decode) in subject" in text
    assert shown_tokens(text, [phi.marker]) == []
    # nothing relayed: the only mail out is the PHI-free held notice to the sender
    assert [m.rcpt_tos for m in upstream_sink.messages] in ([], [[SENDER]])
    assert all(shown_tokens(m.data, [phi.marker]) == [] for m in upstream_sink.messages)
    assert await asyncio.to_thread(daemon.stop) == 0
