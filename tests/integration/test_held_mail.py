"""Held mail is never silent, through the real daemon (``phigate run``
subprocess) and the aiosmtpd sink upstream:

* a message held because the subject names the patient brings its sender a
  PHI-free held notice (which recipient, the rule's description, what to
  do), itself a queue item;
* ``phigate queue digest`` queues the administrator's PHI-free digest to
  ``admin.address``: the held item, a failed one, and an S/MIME certificate
  that expires within the warning window (one valid for a year is left out).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import json

import pytest

from tests.crypto.pki import TestPKI, write_pem
from tests.integration.test_daemon_relay import message
from tests.leaks import shown_tokens
from tests.peers.daemon import SENDER

pytestmark = pytest.mark.slow

ADMIN = "it@smiledental.example"
PATIENT = "maria.lopez@mail.example"
GONE = "gone@partner.example"
POLICY = """\
rules:
  - name: phi-in-subject
    description: Patient information in the Subject line; subjects are never encrypted
    when: {phi_in: subject}
    action: hold
default: {action: relay}
"""
SUBJECT = "Maria Lopez crown tooth #30 D2740"
BODY = "Hi Maria, your crown on tooth #30 (D2740) is booked. Chart 448812. Zebraquartz."
PRIVATE = ("maria lopez", "crown", "d2740", "448812", "zebraquartz", "tooth")


def send(daemon, raw: bytes, rcpt: str) -> None:
    with daemon.client() as smtp:
        smtp.sendmail(SENDER, [rcpt], raw)


def parsed(received):
    return email.message_from_bytes(received.data, policy=email.policy.default)


def mails_to(sink, rcpt: str) -> list:
    return [m for m in sink.messages if m.rcpt_tos == [rcpt]]


async def wait_mail(sink, rcpt: str, subject_start: str, timeout: float = 30):
    """The first mail to ``rcpt`` whose Subject starts so (bounded wait)."""
    async with asyncio.timeout(timeout):
        while True:
            for m in mails_to(sink, rcpt):
                if str(parsed(m)["Subject"]).startswith(subject_start):
                    return m
            await sink.wait_for(len(sink.messages) + 1, timeout)


async def in_area(daemon, area: str, timeout: float = 30) -> list[str]:
    """The ids in a spool area once there are any (polling the spool, bounded)."""
    async with asyncio.timeout(timeout):
        while not daemon.queue_ids(area):
            await asyncio.sleep(0.05)
    return daemon.queue_ids(area)


def assert_phi_free(text: str) -> None:
    assert shown_tokens(text, PRIVATE) == []


async def test_held_notice_and_digest(daemon_factory, upstream_sink, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    daemon = daemon_factory(upstream_sink.port, extra={"policy": str(policy),
                                                       "admin": {"address": ADMIN}})
    pki = TestPKI()
    soon = pki.leaf("partner@surgery.example",
                    not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=10))
    later = pki.leaf("other@surgery.example")
    for name, issued in (("soon", soon), ("later", later)):
        daemon.phigate(["certs", "import", str(write_pem(tmp_path / f"{name}.pem", issued.cert))])

    upstream_sink.fail_rcpt[GONE] = "550 5.1.1 no such user"
    await asyncio.to_thread(send, daemon, message(1, subject=SUBJECT, body=BODY, to=PATIENT),
                            PATIENT)
    notice = await wait_mail(upstream_sink, SENDER, "Held, not sent")
    await asyncio.to_thread(send, daemon, message(2, subject="Office hours"), GONE)
    await wait_mail(upstream_sink, SENDER, "Undelivered mail")        # the DSN
    [held_id] = await in_area(daemon, "hold")
    [failed_id] = await in_area(daemon, "failed")       # moved just after its DSN was queued

    assert notice.mail_from in ("", "<>")                # no bounce loops
    mail = parsed(notice)
    assert mail["Auto-Submitted"] == "auto-replied" and mail["Date"] and mail["Message-ID"]
    text = mail.get_content().replace("\r\n", "\n")
    assert PATIENT in text and held_id in text
    assert "Patient information in the Subject line" in text       # the rule's description
    assert "neutral subject" in text and "release" in text         # what to do
    assert_phi_free(text + str(mail["Subject"]))
    assert mails_to(upstream_sink, PATIENT) == []

    out = daemon.phigate(["queue", "digest", "--json"]).stdout
    digest_id = json.loads(out)["id"]
    digest = await wait_mail(upstream_sink, ADMIN, "Mail gateway daily report")
    body = parsed(digest).get_content().replace("\r\n", "\n")
    held_part, _, rest = body.partition("Shunted")
    assert "Held (waiting for you): 1" in held_part and held_id in held_part
    assert "phi-in-subject" in held_part
    assert "Shunted (a delivery attempt crashed): 0" in body
    assert "Failed (the sender got a delivery report): 1" in rest and failed_id in rest
    expiring = body.split("S/MIME certificates expiring within 30 days: ", 1)[1]
    assert expiring.startswith("1\n") and "partner@surgery.example" in expiring
    assert "other@surgery.example" not in expiring
    assert_phi_free(body + str(parsed(digest)["Subject"]))
    assert PATIENT not in body                            # ids and rules, no addresses
    log = daemon.log_text()
    assert f'"queue_id": "{digest_id}"' in log and '"action": "digest"' in log
    assert await asyncio.to_thread(daemon.stop) == 0


def test_digest_needs_admin_address(daemon_factory, upstream_sink):
    daemon = daemon_factory(upstream_sink.port)
    result = daemon.phigate(["queue", "digest"], check=False)
    assert result.returncode == 1 and "admin.address" in result.stderr
    assert daemon.stop() == 0


async def test_held_notice_can_be_turned_off(daemon_factory, upstream_sink, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    daemon = daemon_factory(upstream_sink.port, extra={"policy": str(policy),
                                                       "held_notice": {"enabled": False}})
    await asyncio.to_thread(send, daemon, message(1, subject=SUBJECT, body=BODY, to=PATIENT),
                            PATIENT)

    await in_area(daemon, "hold")
    assert await asyncio.to_thread(daemon.stop) == 0
    # A notice would be queued in the same attempt that held the message.
    assert daemon.queue_ids() == [] and upstream_sink.messages == []
    assert '"action": "held_notice"' not in daemon.log_text()
