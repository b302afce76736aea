"""Short PHI-free mails the portal itself writes: the password-reset link a
patient asked for on the login page, and the optional "your message was read"
notice to a message's sender. Neither carries any text of a message, a
subject, a patient's name or (in the read notice) the patient's address.
"""
from __future__ import annotations

import email.policy
import re
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from gateway.config.models import PortalConfig

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
