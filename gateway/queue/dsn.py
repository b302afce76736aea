"""Delivery status notifications (RFC 3464) that carry no PHI.

The report names the queue id, the failed recipients and the reasons (the
upstream's reply or ours); for mail phigate wrote on the sender's behalf (a
portal notice) also what it was, in the rule's words. It never includes the original body, subject or
headers: a sender who needs the message still has it in their Sent folder.
"""
from __future__ import annotations

import email.utils
import secrets
import time

from gateway.queue.item import QueueItem, RecipientState


def _status_code(reason: str) -> str:
    parts = reason.split()
    if len(parts) > 1 and parts[0].isdigit() and parts[1].count(".") == 2:
        return parts[1]
    return "5.0.0"


def build_dsn(item: QueueItem, failed: list[RecipientState], reporting_host: str,
              sender: str, now: float | None = None) -> bytes:
    """A multipart/report DSN for ``failed`` recipients of ``item`` (CRLF lines)."""
    now = time.time() if now is None else now
    boundary = f"=_phigate_dsn_{secrets.token_hex(8)}"
    human = [
        f"This is the mail gateway at {reporting_host}.",
        "",
        "Your message could not be delivered to the recipients below.",
        f"Gateway queue id: {item.id} (give this to your administrator).",
        "For privacy the message itself is not attached; it is in your Sent folder.",
        "",
        *(f"  {r.address}: {_one_line(r.last_error) or 'delivery failed'}" for r in failed),
        # mail phigate wrote for the sender (a portal notice): say which
        *([f"This was {failed[0].reason}."]
          if item.envelope.source != "smtp" and failed[0].reason else []),
    ]
    status = [
        f"Reporting-MTA: dns; {reporting_host}",
        f"X-Phigate-Queue-ID: {item.id}",
        f"Arrival-Date: {email.utils.formatdate(item.created_at)}",
    ]
    for r in failed:
        status += ["", f"Final-Recipient: rfc822; {r.address}", "Action: failed",
                   f"Status: {_status_code(r.last_error)}",
                   f"Diagnostic-Code: smtp; {_one_line(r.last_error) or 'delivery failed'}"]
    lines = [
        f"From: Mail Delivery System <{sender}>",
        f"To: <{item.envelope.mail_from}>",
        "Subject: Undelivered mail returned to sender",
        f"Date: {email.utils.formatdate(now)}",
        f"Message-ID: {email.utils.make_msgid(domain=reporting_host or None)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        *human,
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        *status,
        "",
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


def _one_line(text: str) -> str:
    return " ".join(text.split())
