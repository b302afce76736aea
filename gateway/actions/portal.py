"""PortalAction: deposit the message as secure WebMail, then notify.

Per recipient, two steps recorded in ``recipient.steps`` so a retry never
repeats one: (1) deposit into the portal store, idempotent per (queue id,
recipient) → ``steps["portal_message_id"]``; (2) only after the deposit is
committed, the plaintext notice is committed to the spool as its own queue
item (``spool.enqueue``) → ``steps["notice_item"]``. The dispatcher delivers
that notice like any mail: retries, give-up, and a DSN to the original
sender (the notice's envelope sender) when the upstream refuses it for good.
The notice comes from an admin-editable template
(``$practice_name``, ``$portal_link``, ``$help_phone``) and carries no text of
the original, not even its subject. A recipient without a portal account
gets one (pending) and a one-time registration link in the notice.
"""
from __future__ import annotations

import email.policy
import string
from collections.abc import Sequence
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, make_msgid
from pathlib import Path

from gateway.audit import audit
from gateway.config.models import PortalConfig
from gateway.model import Action, Delivered, Outcome, Permanent, PermanentKind
from gateway.portal.mails import phi_free
from gateway.portal.store import AttachmentIn, Deposit, PortalStore

DEFAULT_NOTICE = """Hello,

$practice_name has sent you a secure message. To protect your privacy it is
not included in this e-mail. Read it in the secure patient portal:

    $portal_link

$registration_note
Questions? Call us at $help_phone.

$practice_name
"""
REGISTRATION_NOTE = ("This link lets you set your password once; it expires. Have your date\n"
                     "of birth ready.\n")


def _text_of(part) -> str:
    """A text part's content; an unknown charset or a broken encoding is decoded as
    UTF-8 with replacement characters rather than failing the whole deposit."""
    if part is None:
        return ""
    try:
        return part.get_content()
    except (LookupError, UnicodeError, ValueError, AssertionError):
        return (part.get_payload(decode=True) or b"").decode("utf-8", "replace")


def parse_for_portal(queue_id: str, recipient: str, raw: bytes) -> Deposit:
    """The parts of ``raw`` the portal shows: subject, text, HTML, attachments. Parts that
    do not decode are shown best-effort; the original is always attached as message.eml
    when the tree cannot be walked, so the patient can still read what was sent."""
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    files = []
    try:
        text = _text_of(msg.get_body(preferencelist=("plain",)))
        html = _text_of(msg.get_body(preferencelist=("html",)))
        for part in msg.iter_attachments():
            data = part.get_payload(decode=True) or b""
            files.append(AttachmentIn(part.get_filename() or "attachment",
                                      part.get_content_type(), data))
    except Exception:  # noqa: BLE001 — a tree the parser cannot walk: deliver the original
        text, html = "", ""
        files = [AttachmentIn("message.eml", "message/rfc822", raw)]
    return Deposit(queue_id=queue_id, recipient=recipient, sender=str(msg.get("From", "")),
                   message_id=str(msg.get("Message-ID", "")), subject=str(msg.get("Subject", "")),
                   body_text=text, body_html=html, attachments=files)


class NoticeTemplate:
    def __init__(self, config: PortalConfig):
        self.config = config
        path: Path | None = config.notice_template
        self.template = string.Template(path.read_text(encoding="utf-8") if path else DEFAULT_NOTICE)

    def render(self, link: str, registering: bool) -> str:
        return self.template.safe_substitute(
            practice_name=self.config.practice_name, portal_link=link,
            help_phone=self.config.help_phone or "the office",
            registration_note=REGISTRATION_NOTE if registering else "")

    def build(self, sender: str, recipient: str, link: str, registering: bool) -> bytes:
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = sender
        msg["To"] = recipient
        msg["Subject"] = f"Secure message from {self.config.practice_name}"
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
        msg["Auto-Submitted"] = "auto-generated"
        text = self.render(link, registering)
        # 7bit keeps the link on one unbroken line for every mail client.
        msg.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
        return msg.as_bytes()


class PortalAction:
    action = Action.PORTAL

    def __init__(self, store: PortalStore, config: PortalConfig, spool):
        """``spool``: ``enqueue(envelope, raw, plan) -> queue id`` (the dispatcher)."""
        self.store = store
        self.config = config
        self.spool = spool
        self.notice = NoticeTemplate(config)

    async def execute(self, item, raw: bytes, recipients: Sequence) -> dict[str, Outcome]:
        return {r.address: await self._one(item, raw, r) for r in recipients}

    async def _one(self, item, raw: bytes, recipient) -> Outcome:
        account = await self.store.account_by_email(recipient.address)
        if account is not None and account["status"] != "active":
            audit("refused", queue_id=item.id, recipient=recipient.address, action="portal",
                  reason="portal access revoked")
            return Permanent("5.7.1 the recipient's portal access was revoked",
                             kind=PermanentKind.POLICY)
        if account is None:
            account = await self.store.upsert_account(recipient.address)
        if "portal_message_id" not in recipient.steps:
            deposit = parse_for_portal(item.id, recipient.address, raw)
            recipient.steps["portal_message_id"] = await self.store.deposit(
                account["id"], deposit, self.config.retention)
            audit("deposited", queue_id=item.id, recipient=recipient.address,
                  account_id=account["id"], message_ref=recipient.steps["portal_message_id"],
                  count=len(deposit.attachments))
        if recipient.steps.get("notice_sent"):      # sent directly by an older phigate
            return Delivered("deposited in the portal; notice sent")
        if "notice_item" not in recipient.steps:
            recipient.steps["notice_item"] = await self._queue_notice(item, recipient, account)
        return Delivered(f"deposited in the portal; notice queued as {recipient.steps['notice_item']}")

    async def _queue_notice(self, item, recipient, account: dict) -> str:
        base = self.config.base_url.rstrip("/")
        registering = account["password_hash"] is None
        if registering:
            token = await self.store.issue_link(account["id"], "register",
                                                self.config.registration_link_ttl)
            link = f"{base}/register/{token}"
        else:
            link = f"{base}/"
        sender = self.config.notice_from or item.envelope.mail_from
        data = self.notice.build(sender, recipient.address, link, registering)
        # Bounces of the notice go to the original sender, who can fix the address.
        envelope, plan = phi_free(item.envelope.mail_from, recipient.address, "portal-notice",
                                  f"the portal notice of queue item {item.id}", source="notice")
        notice_id = await self.spool.enqueue(envelope, data, plan)
        audit("notice_sent", queue_id=item.id, recipient=recipient.address,
              account_id=account["id"], message_ref=notice_id)
        return notice_id
