"""One road out, with the real dispatcher, the real upstream courier behind
its guard, and a real SMTP sink:

* the last-step guard holds PHI that an action (broken on purpose) tries to
  send in plaintext, with a clear reason, and lets through what the
  recipient's rule allowed and what is S/MIME enveloped;
* nothing can be sent outside a queue item (no fire-and-forget road);
* 60 portal notices stuck at the upstream (451 each time) do not delay a
  new one (the portal's old outbox read the oldest 50 unsent rows each round).
"""
from __future__ import annotations

import asyncio
import time

import pytest
from structlog.testing import capture_logs

from gateway.actions import relay as relay_module
from gateway.actions.relay import RelayAction
from gateway.config.models import UpstreamConfig
from gateway.delivery.guard import GuardedCourier
from gateway.delivery.smtp import UpstreamCourier
from gateway.model import Action, Decision, Envelope, PermanentKind, Plan, Verdict
from gateway.portal.mails import phi_free
from gateway.queue.dispatcher import Dispatcher
from gateway.queue.item import Status
from gateway.queue.store import HOLD, QUEUE, QueueStore

SENDER = "frontdesk@smiledental.example"
PHI = Verdict(phi=True, reasons=("identifier+clinical in body",))
RAW = (b"From: frontdesk@smiledental.example\r\nTo: x@partner.example\r\n"
       b"Subject: results\r\n\r\nPatient Jane Roe DOB 1980-02-03, D2740 crown.\r\n")
ENVELOPED = (b"From: frontdesk@smiledental.example\r\nTo: x@partner.example\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; "
             b"smime-type=enveloped-data; name=smime.p7m\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQ==\r\n")


@pytest.fixture
async def courier(upstream_sink):
    guarded = GuardedCourier(UpstreamCourier(UpstreamConfig(
        host="127.0.0.1", port=upstream_sink.port, tls="none"), "gateway.test"))
    yield guarded
    await guarded.close()


def dispatcher_with(tmp_path, handlers) -> Dispatcher:
    return Dispatcher(QueueStore(tmp_path / "spool"), handlers, hostname="gateway.test")


async def enqueue(dispatcher, rcpt: str, decision: Decision, verdict=PHI, raw=RAW) -> str:
    envelope = Envelope(SENDER, (rcpt,), received_at=time.time())
    return await dispatcher.enqueue(envelope, raw, Plan(verdict, (decision,)))


class PortalThatRelays:
    """A portal action broken on purpose: it sends the message itself."""
    action = Action.PORTAL

    def __init__(self, courier):
        self.courier = courier

    async def execute(self, item, raw, recipients):
        return dict(await self.courier.send(item.envelope.mail_from,
                                            [r.address for r in recipients], raw))


async def test_guard_holds_phi_a_broken_action_sends_in_plaintext(tmp_path, courier,
                                                                  upstream_sink, monkeypatch):
    monkeypatch.setenv("PHIGATE_STRICT_AUDIT", "1")
    # The relay action's own check broken on purpose: it would relay anything.
    monkeypatch.setattr(relay_module, "plaintext_allowed", lambda item, r: True)
    dispatcher = dispatcher_with(tmp_path, {Action.RELAY: RelayAction(courier),
                                            Action.PORTAL: PortalThatRelays(courier)})
    with capture_logs() as logs:
        relayed = await enqueue(dispatcher, "x@partner.example",
                                Decision("x@partner.example", Action.RELAY, "phi-anyone"))
        diverted = await enqueue(dispatcher, "pat@mail.example",
                                 Decision("pat@mail.example", Action.PORTAL, "phi-portal"))
        assert await dispatcher.drain() == 2
    assert upstream_sink.messages == []                     # nothing left in plaintext
    store = dispatcher.store
    assert store.ids(HOLD) == sorted([relayed, diverted]) and store.ids(QUEUE) == []
    for queue_id in (relayed, diverted):
        [r] = store.load(queue_id, HOLD).recipients
        assert r.status is Status.HELD
        assert "last check" in r.last_error and "plaintext" in r.last_error
    held = [e for e in logs if e["event"] == "held"]
    assert {e["queue_id"] for e in held} == {relayed, diverted}
    assert all(e["reason"] == "plaintext guard" for e in held)
    assert "Jane" not in repr(logs) and "D2740" not in repr(logs)


async def test_guard_lets_through_what_the_rule_allowed_and_encrypted_mail(
        tmp_path, courier, upstream_sink, monkeypatch):
    monkeypatch.setattr(relay_module, "plaintext_allowed", lambda item, r: True)
    dispatcher = dispatcher_with(tmp_path, {Action.RELAY: RelayAction(courier),
                                            Action.PORTAL: PortalThatRelays(courier)})
    await enqueue(dispatcher, "dr@smiledental.example",
                  Decision("dr@smiledental.example", Action.RELAY, "internal",
                           options={"allow_phi_plaintext": True}))
    await enqueue(dispatcher, "x@partner.example",
                  Decision("x@partner.example", Action.PORTAL, "phi-portal"), raw=ENVELOPED)
    await enqueue(dispatcher, "y@partner.example",
                  Decision("y@partner.example", Action.RELAY, "no-phi"), verdict=Verdict(False))
    # A classifier error counts as PHI even without a finding (fail closed).
    unreadable = await enqueue(dispatcher, "z@partner.example",
                               Decision("z@partner.example", Action.RELAY, "no-phi"),
                               verdict=Verdict(False, errors=("classifier: timeout",)))
    assert await dispatcher.drain() == 4
    await upstream_sink.wait_for(3, timeout=30)
    assert sorted(m.rcpt_tos[0] for m in upstream_sink.messages) == [
        "dr@smiledental.example", "x@partner.example", "y@partner.example"]
    assert dispatcher.store.ids(HOLD) == [unreadable]


@pytest.mark.parametrize("broken", [False, True])
async def test_a_fallback_does_not_carry_the_rules_plaintext_permission(
        tmp_path, courier, upstream_sink, monkeypatch, broken):
    """The permission belongs to the action the rule chose; the state in
    effect, not the plan's original action, is what counts: for the relay
    action's own check and, with that check broken, for the guard."""
    if broken:
        monkeypatch.setattr(relay_module, "plaintext_allowed", lambda item, r: True)
    dispatcher = dispatcher_with(tmp_path, {Action.RELAY: RelayAction(courier)})
    queue_id = await enqueue(dispatcher, "x@partner.example", Decision(
        "x@partner.example", Action.SMIME, "phi-partner", (Action.RELAY,),
        options={"allow_phi_plaintext": True}))
    # No S/MIME handler here: "not available" moves the recipient to its fallback.
    assert await dispatcher.drain() == 1
    [r] = dispatcher.store.load(queue_id, HOLD).recipients
    assert r.action is Action.RELAY and "allow_phi_plaintext" not in r.options
    assert r.status is Status.HELD and upstream_sink.messages == []
    assert ("last check" in r.last_error) is broken


async def test_nothing_leaves_outside_a_queue_item(courier, upstream_sink):
    outcome = (await courier.send(SENDER, ["x@partner.example"], b"Subject: hi\r\n\r\nhi\r\n"))
    assert outcome["x@partner.example"].kind is PermanentKind.POLICY
    assert upstream_sink.messages == []


async def test_sixty_stuck_items_do_not_delay_a_new_one(tmp_path, courier, upstream_sink):
    upstream_sink.fail_rcpt["stuck@mail.example"] = "451 4.3.0 mailbox busy"
    dispatcher = dispatcher_with(tmp_path, {Action.RELAY: RelayAction(courier)})

    async def notice(to: str) -> str:
        envelope, plan = phi_free(SENDER, to, "portal-notice", "a portal notice",
                                  source="notice")
        return await dispatcher.enqueue(envelope, b"Subject: Secure message\r\n\r\nx\r\n",
                                        plan)
    stuck = [await notice("stuck@mail.example") for _ in range(60)]
    assert await dispatcher.drain() == 60                   # each tried once, each deferred
    for queue_id in stuck:
        [r] = dispatcher.store.load(queue_id).recipients
        assert r.status is Status.PENDING and r.attempts == 1 and r.last_error.startswith("451")
    loop = asyncio.create_task(dispatcher.run())
    try:
        fresh = await notice("ok@mail.example")
        await upstream_sink.wait_for(1, timeout=30)
    finally:
        await dispatcher.stop(grace=30)          # lets the attempt in flight finish
        await loop
    assert upstream_sink.messages[0].rcpt_tos == ["ok@mail.example"]
    # Delivered on its first attempt while all 60 still wait for their backoff.
    assert fresh not in dispatcher.store.ids(QUEUE)
    assert sorted(dispatcher.store.ids(QUEUE)) == sorted(stuck)
    assert all(dispatcher.store.load(i).recipients[0].attempts == 1 for i in stuck)
