"""Patients' messages land unread in the provider's mailbox on a real Dovecot
(IMAP APPEND over implicit TLS), exactly once even when a retry follows an
APPEND whose answer was lost."""
from __future__ import annotations

from gateway.actions.mailbox import MailboxAction
from gateway.config.models import PortalMailbox
from gateway.delivery.guard import GuardedCourier, delivering
from gateway.delivery.imap import ImapCourier
from gateway.model import Delivered, Transient
from gateway.portal.mails import compose_to_provider, to_provider
from gateway.queue.item import QueueItem

PROVIDER = "dr.smith@smiledental.example"


def mailbox_for(dovecot, tmp_path, password="imap-secret") -> PortalMailbox:
    secret = tmp_path / "imap.pw"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    return PortalMailbox(host="127.0.0.1", port=dovecot.port, user=PROVIDER,
                         password_file=secret, ca_file=dovecot.ca_file)


def courier_for(dovecot, tmp_path, password="imap-secret") -> ImapCourier:
    return ImapCourier.from_config(mailbox_for(dovecot, tmp_path, password))


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


async def test_mailbox_retry_does_not_append_twice(dovecot, tmp_path, portal_store,
                                                  portal_config):
    dovecot.add_user(PROVIDER, "imap-secret")
    mailbox = mailbox_for(dovecot, tmp_path)
    courier = GuardedCourier(ImapCourier.from_config(mailbox))
    config = portal_config.model_copy(update={"default_provider_address": "",
                                              "provider_mailboxes": {"Dr Smith": mailbox}})
    account = await portal_store.upsert_account("pat@mail.example", first_name="Pat",
                                                provider="Dr Smith")
    msg = compose_to_provider(config, account, "Question", "Is Tuesday fine?", [])
    item = QueueItem.new("a" * 32, *to_provider(config, account))
    await portal_store.record_sent(account["id"], item.id, "Question")
    action = MailboxAction({"Dr Smith": courier}, None, None, portal_store)
    token = delivering.set(item)                 # as the dispatcher names the item
    try:
        first = await action.execute(item, msg.as_bytes(), item.pending())
        # The APPEND happened but the gateway died before saving that: the retry
        # (a second attempt) finds the Message-ID in the mailbox.
        item.recipients[0].attempts = 2
        again = await action.execute(item, msg.as_bytes(), item.pending())
    finally:
        delivering.reset(token)
    assert isinstance(first[PROVIDER], Delivered) and isinstance(again[PROVIDER], Delivered)
    stored = await dovecot.messages(PROVIDER, "imap-secret")
    assert len(stored) == 1 and b"Is Tuesday fine?" in stored[0][1]
    [line] = portal_store.sent_sync(account["id"])
    assert line["delivered_at"] is not None and line["attempts"] == 2
