"""MailboxAction: a patient's portal message into the practice's mailbox.

The portal queues each reply or new message with a ``mailbox`` plan
(``gateway.portal.mails.to_provider``): the recipient's option ``provider``
names the provider. The message goes by IMAP APPEND (unread) into that
provider's mailbox (``portal.provider_mailboxes``, else
``portal.default_mailbox``), or, when the practice configured no mailbox,
through the upstream courier to the provider's address. A retry after an
unclear APPEND first looks for the Message-ID in the mailbox, so the message
is not appended twice.

Each attempt's end is noted in the portal store's Sent record (delivered,
tried again, or refused for good) so the patient sees the state.
"""
from __future__ import annotations

import email.policy
from collections.abc import Mapping, Sequence
from email.parser import BytesHeaderParser

import aioimaplib

from gateway.model import Action, Delivered, Outcome, Permanent, Transient


def _message_id(raw: bytes) -> str:
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    return str(headers.get("Message-ID", "")).strip()


class MailboxAction:
    action = Action.MAILBOX

    def __init__(self, mailboxes: Mapping[str, object], default_mailbox, upstream, portal_store):
        self.mailboxes = mailboxes          # provider name → guarded ImapCourier
        self.default_mailbox = default_mailbox
        self.upstream = upstream
        self.portal_store = portal_store

    async def execute(self, item, raw: bytes, recipients: Sequence) -> dict[str, Outcome]:
        outcomes = {r.address: await self._one(item, raw, r) for r in recipients}
        for outcome in outcomes.values():
            await self.portal_store.note_delivery(
                item.id, delivered=isinstance(outcome, Delivered),
                failed=isinstance(outcome, Permanent))
        return outcomes

    async def _one(self, item, raw: bytes, recipient) -> Outcome:
        mailbox = self.mailboxes.get(recipient.option("provider") or "") or self.default_mailbox
        if mailbox is None:
            return dict(await self.upstream.send(item.envelope.mail_from, [recipient.address],
                                                 raw))[recipient.address]
        message_id = _message_id(raw)
        if recipient.attempts > 1 and message_id:
            try:
                if await mailbox.contains(message_id):
                    return Delivered("already in the mailbox")
            except (OSError, TimeoutError, aioimaplib.Abort) as exc:   # PermissionError too
                return Transient(f"IMAP check failed: {type(exc).__name__}")
        return dict(await mailbox.send(item.envelope.mail_from, [recipient.address],
                                       raw))[recipient.address]
