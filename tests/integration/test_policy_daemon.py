"""The policy end to end through the daemon (``phigate run`` subprocess, real
SMTP, the aiosmtpd sink upstream): per-recipient split of one PHI message,
reject at DATA with nothing queued, and PHI in the Subject held with its
reason shown by ``phigate queue show``."""
from __future__ import annotations

import asyncio
import email
import email.policy
import json
import signal
import smtplib

import pytest

from gateway.portal.store import open_store, sqlite_url
from tests.integration.test_daemon_relay import message
from tests.peers.daemon import SENDER
from tests.peers.ports import free_port

pytestmark = pytest.mark.slow

STAFF = "dr.smith@smiledental.example"
PATIENT = "maria.lopez@mail.example"
PHI_BODY = ("Hi Maria, your crown on tooth #30 (D2740) is booked for Tuesday. Chart 448812. "
            "Please take amoxicillin 500mg one hour before. Zebraquartz.")
MARKERS = ("Zebraquartz", "448812", "D2740", "amoxicillin")


def portal_settings() -> dict:
    port = free_port()
    return {"enabled": True, "address": f"127.0.0.1:{port}",
            "base_url": f"http://127.0.0.1:{port}", "secure_cookies": False,
            "practice_name": "Smile Dental", "notice_from": "portal@smiledental.example"}


def send(daemon, raw: bytes, rcpts) -> dict:
    with daemon.client() as smtp:
        return smtp.sendmail(SENDER, list(rcpts), raw)


async def test_phi_to_staff_and_patient_splits_relay_and_portal(daemon_factory, upstream_sink):
    daemon = daemon_factory(upstream_sink.port, extra={"portal": portal_settings()})
    raw = message(1, subject="Your appointment", body=PHI_BODY, to=f"{STAFF}, {PATIENT}")
    await asyncio.to_thread(send, daemon, raw, [STAFF, PATIENT])
    await upstream_sink.wait_for(2, timeout=60)

    by_rcpt = {tuple(m.rcpt_tos): m.data for m in upstream_sink.messages}
    assert set(by_rcpt) == {(STAFF,), (PATIENT,)}
    assert by_rcpt[(STAFF,)].endswith(raw)                       # relayed as accepted
    notice = email.message_from_bytes(by_rcpt[(PATIENT,)], policy=email.policy.default)
    shown = notice.as_string()
    for marker in MARKERS + ("appointment",):
        assert marker.lower() not in shown.lower(), marker
    assert "/register/" in shown

    store = open_store(sqlite_url(daemon.dir / "var" / "portal.db"))
    try:
        account = await store.account_by_email(PATIENT)
        assert [m["subject"] for m in await store.inbox(account["id"])] == ["Your appointment"]
    finally:
        store.close()
    log = daemon.log_text()
    assert '"relay:internal"' in log and '"portal:phi-to-others"' in log
    for marker in MARKERS:
        assert marker not in log
    assert await asyncio.to_thread(daemon.stop) == 0


async def test_reject_rule_answers_550_at_data_and_queues_nothing(daemon_factory, upstream_sink,
                                                                  tmp_path):
    policy = tmp_path / "reject.yaml"
    policy.write_text("""
rules:
  - name: no-phi-to-marketing
    description: Patient information may not go to the marketing agency
    when: {phi: true, recipient_domain: agency.example}
    action: reject
default: {action: relay}
""")
    daemon = daemon_factory(upstream_sink.port, extra={"policy": str(policy)})
    raw = message(2, subject="Case study", body=PHI_BODY, to="team@agency.example")
    with pytest.raises(smtplib.SMTPDataError) as info:
        await asyncio.to_thread(send, daemon, raw, ["team@agency.example"])
    assert info.value.smtp_code == 550
    reply = info.value.smtp_error.decode()
    assert reply.startswith("5.7.1") and "no-phi-to-marketing" in reply
    assert "marketing agency" in reply
    for marker in MARKERS:
        assert marker not in reply
    assert daemon.queue_ids() == [] and daemon.queue_ids("hold") == []

    fine = message(3, subject="Lunch", body="Team lunch on Friday.", to="team@agency.example")
    await asyncio.to_thread(send, daemon, fine, ["team@agency.example"])
    await upstream_sink.wait_for(1, timeout=60)
    assert [m.data.endswith(fine) for m in upstream_sink.messages] == [True]
    assert await asyncio.to_thread(daemon.stop) == 0


async def test_phi_in_subject_is_held_with_the_reason_shown(daemon_factory, upstream_sink):
    daemon = daemon_factory(upstream_sink.port)
    raw = message(4, subject="Maria Lopez crown tooth #30 D2740", body=PHI_BODY, to=PATIENT)
    await asyncio.to_thread(send, daemon, raw, [PATIENT])

    async def held() -> list[str]:
        while not daemon.queue_ids("hold"):
            await asyncio.sleep(0.05)
        return daemon.queue_ids("hold")
    (item_id,) = await asyncio.wait_for(held(), 30)
    shown = json.loads(daemon.phigate(["queue", "show", item_id, "--json"]).stdout)
    (recipient,) = shown["recipients"]
    assert recipient["status"] == "held"
    text = daemon.phigate(["queue", "show", item_id]).stdout
    assert "phi-in-subject" in text and "Subject line" in text
    assert await asyncio.to_thread(daemon.stop) == 0
    # Nothing went to the patient; at most the held notice to the sender.
    assert all(m.rcpt_tos == [SENDER] for m in upstream_sink.messages)


async def test_sighup_loads_an_edited_policy_and_keeps_it_when_broken(daemon_factory,
                                                                      upstream_sink, tmp_path):
    policy = tmp_path / "policy.yaml"
    reject = """
rules:
  - {name: closed, description: Mail to this partner is paused, action: reject,
     when: {recipient_domain: agency.example}}
default: {action: relay}
"""
    policy.write_text(reject)
    daemon = daemon_factory(upstream_sink.port, extra={"policy": str(policy)})
    raw = message(5, subject="Lunch", body="Team lunch on Friday.", to="team@agency.example")
    with pytest.raises(smtplib.SMTPDataError):
        await asyncio.to_thread(send, daemon, raw, ["team@agency.example"])

    async def reloads_seen(count: int) -> None:
        while daemon.log_text().count('"config_loaded"') + daemon.log_text().count(
                '"config_rejected"') < count:
            await asyncio.sleep(0.05)

    policy.write_text(reject.replace("action: reject", "action: relay"))
    daemon.proc.send_signal(signal.SIGHUP)
    await asyncio.wait_for(reloads_seen(1), 30)
    await asyncio.to_thread(send, daemon, raw, ["team@agency.example"])
    await upstream_sink.wait_for(1, timeout=60)

    policy.write_text("rules: [}\n")                       # broken: the running policy stays
    daemon.proc.send_signal(signal.SIGHUP)
    await asyncio.wait_for(reloads_seen(2), 30)
    assert '"config_rejected"' in daemon.log_text()
    await asyncio.to_thread(send, daemon, raw, ["team@agency.example"])
    await upstream_sink.wait_for(2, timeout=60)
    assert await asyncio.to_thread(daemon.stop) == 0
