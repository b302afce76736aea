"""Every mail the portal writes, and the queue plan each one leaves with.

The portal never delivers: it hands each mail with its plan to the spool
(``spool.enqueue(envelope, raw, plan)``, the dispatcher in the daemon or
``RemoteSpool`` in a separate portal process), which answers once the item
is durable; the dispatcher then delivers it like any other mail.

* PHI-free mails (the password-reset link a patient asked for, the optional
  "your message was read" notice): a relay plan with a PHI-free verdict.
  Neither carries any text of a message, a subject, a patient's name or (in
  the read notice) the patient's address.
* A patient's reply or new message to the practice (``compose_to_provider``):
  counted as PHI (nobody classified it), with a ``mailbox`` plan that allows
  it in plaintext only into the practice's own mailbox (IMAP APPEND, or the
  provider's address through the upstream when no mailbox is configured).
"""
from __future__ import annotations

import email.policy
import re
import time
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid, parseaddr

from gateway.config.models import PortalConfig
from gateway.model import Action, Decision, Envelope, Plan, Verdict
from gateway.portal.store import AttachmentIn

PHI_FREE = Verdict(phi=False, reasons=("written by phigate from a template; no message text",))
PATIENT_MAIL = Verdict(phi=True, reasons=("a patient's portal message: treated as PHI",))


def phi_free(mail_from: str, to: str, rule: str, reason: str,
             source: str = "portal") -> tuple[Envelope, Plan]:
    """Envelope and plan of a PHI-free mail phigate wrote for ``to``."""
    envelope = Envelope(mail_from=mail_from, rcpt_tos=(to,), received_at=time.time(),
                        source=source)
    return envelope, Plan(PHI_FREE, (Decision(to, Action.RELAY, rule, reason=reason),))


def provider_address(config: PortalConfig, provider: str) -> str:
    address = config.provider_addresses.get(provider) or config.default_provider_address
    if address:
        return address
    mailbox = config.provider_mailboxes.get(provider) or config.default_mailbox
    return mailbox.user if mailbox and "@" in mailbox.user else ""


def to_provider(config: PortalConfig, account: dict) -> tuple[Envelope, Plan] | None:
    """Envelope and plan of a patient's mail to their provider; None when the
    practice configured neither a mailbox nor an address for that provider."""
    provider = account["provider"]
    mailbox = config.provider_mailboxes.get(provider) or config.default_mailbox
    target = provider_address(config, provider) or (mailbox.user if mailbox else "")
    if not target:
        return None
    envelope = Envelope(mail_from=account["email"], rcpt_tos=(target,),
                        received_at=time.time(), source="portal")
    decision = Decision(target, Action.MAILBOX, "portal-to-provider",
                        reason="a patient's message to the practice's own mailbox",
                        options={"allow_phi_plaintext": True, "provider": provider})
    return envelope, Plan(PATIENT_MAIL, (decision,))


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

_MSGID = re.compile(r"<[^<>\s]{1,900}>")


def _from(config: PortalConfig, domain: str | None) -> str:
    return config.notice_from or f"portal@{domain or 'localhost'}"


def reset_mail(config: PortalConfig, to: str, link: str, domain: str | None = None) -> EmailMessage:
    """The one-time reset link for ``to`` (who asked for it on the login page)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = _from(config, domain)
    msg["To"] = to
    msg["Subject"] = f"Reset your {config.practice_name} portal password"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    minutes = max(1, round(config.reset_link_ttl / 60))
    text = (f"Hello,\n\n"
            f"Someone asked to reset the password of your {config.practice_name} patient\n"
            f"portal account. To choose a new password, open this link within {minutes} minutes.\n"
            f"It works once:\n\n    {link}\n\n"
            f"If you did not ask for this, ignore this e-mail: your password stays as it is.\n"
            f"Questions? Call us at {config.help_phone or 'the office'}.\n\n"
            f"{config.practice_name}\n")
    # 7bit keeps the link on one unbroken line for every mail client.
    msg.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
    return msg


def read_notice(config: PortalConfig, message: dict, read_at: float,
                domain: str | None = None) -> tuple[str, EmailMessage] | None:
    """The "your message was read" notice for the sender of ``message``:
    (sender address, mail), or None when the sender has no address. It carries
    no text of the original (not even the subject) and no patient name or
    address: only the practice, the time and the original Message-ID (in
    In-Reply-To too, so the sender's mail client threads it with what was sent)."""
    to = parseaddr(message["sender"])[1]
    if "@" not in to:
        return None
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = _from(config, domain)
    msg["To"] = to
    msg["Subject"] = "Your secure message was read"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=domain)
    original = message["message_id"].strip()
    if not _MSGID.fullmatch(original):
        original = ""
    if original:
        msg["In-Reply-To"] = original
        msg["References"] = original
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Phigate-Portal"] = "read notice"
    when = formatdate(read_at, usegmt=True)
    reference = original or f"portal queue id {message['queue_id']}"
    msg.set_content(
        f"The secure message you sent through the {config.practice_name} patient portal\n"
        f"was opened by its recipient on {when}.\n\n"
        f"Message: {reference}\n\n"
        "This notice was generated automatically; it contains no part of the message.\n")
    return to, msg
