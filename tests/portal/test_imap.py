"""Patients' messages land unread in the provider's mailbox on a real Dovecot
(IMAP APPEND over implicit TLS), exactly once even when a retry follows an
APPEND whose answer was lost."""
from __future__ import annotations

from gateway.config.models import PortalMailbox
from gateway.delivery.imap import ImapCourier
from gateway.model import Delivered, Transient
from gateway.portal.outbox import OutboxDelivery, compose_to_provider

PROVIDER = "dr.smith@smiledental.example"


def courier_for(dovecot, tmp_path, password="imap-secret") -> ImapCourier:
    secret = tmp_path / "imap.pw"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    return ImapCourier.from_config(PortalMailbox(host="127.0.0.1", port=dovecot.port,
                                                 user=PROVIDER, password_file=secret,
                                                 ca_file=dovecot.ca_file))


async def test_append_is_unread_and_verified(dovecot, tmp_path):
    dovecot.add_user(PROVIDER, "imap-secret")
    courier = courier_for(dovecot, tmp_path)
    data = b"Message-ID: <a1@portal.test>\r\nSubject: Re: visit\r\n\r\nSee you\r\n"
    assert isinstance((await courier.send("x@y", [PROVIDER], data))[PROVIDER], Delivered)
    stored = await dovecot.messages(PROVIDER, "imap-secret")
    assert len(stored) == 1 and "\\Seen" not in stored[0][0] and b"See you" in stored[0][1]
    assert await courier.contains("<a1@portal.test>")
    assert not await courier.contains("<other@portal.test>")


async def test_wrong_password_and_untrusted_certificate(dovecot, tmp_path):
    dovecot.add_user(PROVIDER, "imap-secret")
    wrong = courier_for(dovecot, tmp_path, password="nope")
    outcome = (await wrong.send("x@y", [PROVIDER], b"Subject: x\r\n\r\nx\r\n"))[PROVIDER]
    assert not isinstance(outcome, Delivered)
    untrusted = ImapCourier("127.0.0.1", dovecot.port, PROVIDER, "imap-secret")
    outcome = (await untrusted.send("x@y", [PROVIDER], b"Subject: x\r\n\r\nx\r\n"))[PROVIDER]
    assert isinstance(outcome, Transient)
    assert await dovecot.messages(PROVIDER, "imap-secret") == []


async def test_outbox_retry_does_not_append_twice(dovecot, tmp_path, portal_store, portal_config):
    dovecot.add_user(PROVIDER, "imap-secret")
    courier = courier_for(dovecot, tmp_path)
    account = await portal_store.upsert_account("pat@mail.example", first_name="Pat",
                                                provider="Dr Smith")
    msg = compose_to_provider(portal_config, account, "Question", "Is Tuesday fine?", [])
    await portal_store.enqueue_outgoing(account["id"], "Dr Smith", msg["Message-ID"],
                                        msg.as_bytes())
    # The APPEND happened but the gateway died before marking it sent.
    await courier.send("x", [PROVIDER], msg.as_bytes())
    row = (await portal_store.pending_outgoing())[0]
    await portal_store.mark_outgoing(row["id"], sent=False)
    outbox = OutboxDelivery(portal_store, portal_config, {"Dr Smith": courier})
    assert await outbox.deliver_pending() == 1
    assert await outbox.deliver_pending() == 0
    stored = await dovecot.messages(PROVIDER, "imap-secret")
    assert len(stored) == 1 and b"Is Tuesday fine?" in stored[0][1]
