"""From SMTP submission to the portal, in one process with the lead's real
parts (listener, classifier, queue, dispatcher, upstream courier): a PHI
message to a patient is queued, deposited in the portal and announced by a
notice at the upstream sink that carries no body or subject text, while the
non-PHI message to the same patient is relayed as usual.

Until ``gateway/app.py`` registers the portal action and a policy engine,
this test adds both the way the wiring will (``build_handlers`` and
``build_policy``); see the portal report for the lines to move into app.py.
"""
from __future__ import annotations

import email
import email.policy
import ssl

import aiosmtplib
import pytest

import gateway.app
from gateway.actions.portal import PortalAction
from gateway.auth.users import UserDirectory
from gateway.config.models import Config
from gateway.model import Action, Decision, Plan
from gateway.policy.classifiers import build_classifier
from tests.portal.conftest import phi_message

PATIENT = "maria.lopez@mail.example"
SENDER = "frontdesk@smiledental.example"


def portal_for_phi(envelope, verdict, raw) -> Plan:
    action = Action.PORTAL if verdict.phi else Action.RELAY
    return Plan(verdict, tuple(Decision(r, action, "phi-to-portal" if verdict.phi else "default")
                               for r in envelope.rcpt_tos))


@pytest.fixture
async def gateway_with_portal(tmp_path, upstream_sink, portal_store, portal_config, monkeypatch):
    classifier = build_classifier()
    monkeypatch.setattr(gateway.app, "build_policy",
                        lambda config: (classifier.classify, portal_for_phi))

    class PortalGateway(gateway.app.Gateway):
        def build_handlers(self) -> dict:
            handlers = super().build_handlers()
            handlers[Action.PORTAL] = PortalAction(portal_store, self.config.portal, self.courier)
            return handlers

    users = tmp_path / "users.yaml"
    UserDirectory.load(users).add("frontdesk", "front desk password", [SENDER])
    config = Config.model_validate({
        "state_dir": str(tmp_path / "state"), "auth": {"users_file": str(users)},
        "listen": {"submission": {"address": "127.0.0.1:0"}},
        "upstream": {"host": "127.0.0.1", "port": upstream_sink.port, "tls": "none"},
        "queue": {"dir": str(tmp_path / "spool")}, "metrics": {"address": None},
        "portal": portal_config.model_dump()})
    gw = PortalGateway(config)
    await gw.start()
    yield gw
    await gw.stop(grace=5)


async def submit(gw, raw: bytes, to: str) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE       # the daemon's self-signed test certificate
    host, port = gw.smtp.address
    async with aiosmtplib.SMTP(hostname=host, port=port, start_tls=True,
                               tls_context=context, timeout=30) as client:
        await client.login("frontdesk", "front desk password")
        await client.sendmail(SENDER, [to], raw)


async def test_phi_submission_becomes_portal_message_and_notice(gateway_with_portal,
                                                                upstream_sink, portal_store):
    subject = "Maria Lopez DOB 03/14/1982 crown tooth #30"
    body = ("Hi Maria, your crown on tooth #30 (D2740) is scheduled. Patient DOB 03/14/1982, "
            "chart 448812. Take amoxicillin 500mg one hour before.")
    await submit(gateway_with_portal, phi_message(PATIENT, subject, body), PATIENT)
    await upstream_sink.wait_for(1, timeout=60)
    notice = upstream_sink.messages[0]
    assert notice.rcpt_tos == [PATIENT]
    parsed = email.message_from_bytes(notice.data, policy=email.policy.default)
    shown = (parsed.get_content() + str(parsed["Subject"])).lower()
    for token in ("maria", "lopez", "crown", "tooth", "d2740", "448812", "amoxicillin", "1982"):
        assert token not in shown, token
    assert "/register/" in shown
    account = await portal_store.account_by_email(PATIENT)
    inbox = await portal_store.inbox(account["id"])
    assert [m["subject"] for m in inbox] == [subject]

    await submit(gateway_with_portal, phi_message(PATIENT, "Office closed Monday",
                                                  "We are closed on Monday for the holiday."),
                 PATIENT)
    await upstream_sink.wait_for(2, timeout=60)
    assert b"closed on Monday" in upstream_sink.messages[1].data       # relayed, not diverted
    assert len(await portal_store.inbox(account["id"])) == 1
