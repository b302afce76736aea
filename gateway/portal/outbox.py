"""Patients' messages on their way to the provider.

The web app only *enqueues* (``compose_to_provider`` + ``store.enqueue_outgoing``);
``OutboxDelivery`` pushes each queued message into the provider's mailbox by
IMAP APPEND (unread) or through the upstream courier when that provider has no
IMAP mailbox, and marks it sent in the store. Couriers are handed in by the
wiring code. A message retried after an unclear failure is first looked for
in the mailbox by Message-ID, so it is not appended twice.

Rows with ``rcpt`` set (the optional read notice, ``mails.read_notice``) go
through the upstream to that address instead of a provider's mailbox.
"""
from __future__ import annotations

import asyncio
import email.policy
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

import structlog

from gateway.audit import audit
from gateway.config.models import PortalConfig
from gateway.model import Delivered, Permanent
from gateway.portal.store import AttachmentIn, PortalStore

log = structlog.get_logger()


def provider_address(config: PortalConfig, provider: str) -> str:
    address = config.provider_addresses.get(provider) or config.default_provider_address
    if address:
        return address
    mailbox = config.provider_mailboxes.get(provider) or config.default_mailbox
    return mailbox.user if mailbox and "@" in mailbox.user else ""


def compose_to_provider(config: PortalConfig, account: dict, subject: str, body: str,
                        files: list[AttachmentIn], in_reply_to: str = "",
                        domain: str | None = None) -> EmailMessage:
    """The patient's message as mail for the provider (From: the patient, so
    the provider's reply goes back through phigate to the portal)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    name = f"{account['first_name']} {account['last_name']}".strip()
    msg["From"] = formataddr((name, account["email"]))
    msg["To"] = provider_address(config, account["provider"]) or account["email"]
    msg["Subject"] = subject or "Message from the patient portal"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=domain)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg["X-Phigate-Portal"] = "patient message"
    msg.set_content(body or "")
    for f in files:
        maintype, _, subtype = f.content_type.partition("/")
        msg.add_attachment(f.data, maintype=maintype or "application",
                           subtype=subtype or "octet-stream", filename=f.filename)
    return msg


class OutboxDelivery:
    """The delivery loop: ``await run()`` until cancelled; ``wake()`` after enqueueing."""

    def __init__(self, store: PortalStore, config: PortalConfig,
                 mailboxes: Mapping[str, object], default_mailbox=None, upstream=None,
                 sender: str = "", interval: float = 30.0):
        self.store = store
        self.config = config
        self.mailboxes = mailboxes          # provider → ImapCourier-like (send, contains)
        self.default_mailbox = default_mailbox
        self.upstream = upstream            # Courier used when no mailbox is configured
        self.sender = sender
        self.interval = interval
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.deliver_pending()
            except Exception:   # a store outage must not end the loop
                log.exception("portal outbox pass failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                pass

    async def deliver_pending(self) -> int:
        sent = 0
        for row in await self.store.pending_outgoing():
            if await self._deliver(row):
                await self.store.mark_outgoing(row["id"], sent=True)
                audit("delivered", action="portal_outbox", account_id=row["account_id"],
                      message_ref=str(row["id"]))
                sent += 1
            else:
                await self.store.mark_outgoing(row["id"], sent=False)
        return sent

    async def _deliver(self, row: dict) -> bool:
        if row.get("rcpt"):
            if self.upstream is None:
                log.warning("portal outbox: no upstream for a notice", outbox_id=row["id"])
                return False
            target, courier = row["rcpt"], self.upstream
            outcome = (await courier.send(self.sender or target, [target], row["raw"]))[target]
            return isinstance(outcome, Delivered)
        mailbox = self.mailboxes.get(row["provider"]) or self.default_mailbox
        if mailbox is not None:
            if row["attempts"] and await mailbox.contains(row["message_id"]):
                return True
            target, courier = mailbox.address, mailbox
        else:
            target = provider_address(self.config, row["provider"])
            courier = self.upstream
            if not target or courier is None:
                log.warning("portal outbox: no mailbox or address for provider",
                            outbox_id=row["id"])
                return False
        outcome = (await courier.send(self.sender or target, [target], row["raw"]))[target]
        if isinstance(outcome, Permanent):
            log.warning("portal outbox: permanent failure", outbox_id=row["id"],
                        reason=outcome.reason)
        return isinstance(outcome, Delivered)
