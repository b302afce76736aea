"""PHI-free mails about the queue itself: the held notice to a sender and the
administrator's digest.

Neither carries any text of a message: no subject, no body, no header but
the addresses the sender already knows. The held notice names the held
recipients, the reason (the rule's description in policy terms, or the
gateway's own check) and what to do; its text is a template an
administrator may replace (``held_notice.template``). The digest lists held,
shunted and failed items by queue id and rule, and certificates about to
expire.
"""
from __future__ import annotations

import email.utils
import string
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HELD = """This is the mail gateway at $hostname.

Your message was NOT sent to the recipients below. It is held at the gateway
(queue id $queue_id):

$held

What you can do:
  - If the subject names a patient or holds health details, send the message
    again with a neutral subject (no patient name, no dates of birth, no
    treatment), so the gateway can protect it.
  - Or ask your administrator to release it (give them the queue id above).

This notice was written automatically; it contains no part of your message.
"""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def mail_bytes(sender: str, to: str, subject: str, text: str, hostname: str,
               now: float, auto: str = "auto-generated") -> bytes:
    """A short text/plain mail (CRLF) with the headers every sent mail needs."""
    body = text.replace("\r\n", "\n").replace("\n", "\r\n")
    headers = [
        f"From: Mail Gateway <{sender}>",
        f"To: <{to}>",
        f"Subject: {subject}",
        f"Date: {email.utils.formatdate(now)}",
        f"Message-ID: {email.utils.make_msgid(domain=hostname or None)}",
        f"Auto-Submitted: {auto}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")


class HeldNotice:
    """Builds the held notice from ``template`` (None: the built-in text).
    Placeholders: ``$hostname``, ``$queue_id``, ``$held`` (one line per held
    recipient: address and reason)."""

    def __init__(self, hostname: str, template: Path | None = None):
        self.hostname = hostname
        self.template = string.Template(
            template.read_text(encoding="utf-8") if template else DEFAULT_HELD)

    def render(self, queue_id: str, held: Sequence) -> str:
        lines = "\n".join(f"  {r.address}: {_one_line(r.last_error) or 'held by policy'}"
                          for r in held)
        return self.template.safe_substitute(hostname=self.hostname, queue_id=queue_id,
                                             held=lines)

    def build(self, item, held: Sequence, sender: str, now: float) -> bytes:
        subject = f"Held, not sent: your message to {len(held)} recipient(s)"
        return mail_bytes(sender, item.envelope.mail_from, subject,
                          self.render(item.id, held), self.hostname, now, "auto-replied")


@dataclass(frozen=True)
class DigestLine:
    queue_id: str
    area: str                # queue (held recipients) | hold | shunt | failed
    age: float
    recipients: int
    rules: str               # rule names, comma-separated
    reason: str              # the first reason: ours or the upstream's reply


@dataclass(frozen=True)
class ExpiringCert:
    fingerprint: str
    addresses: str
    not_after: float


def summarize(item, area: str, now: float) -> DigestLine:
    from gateway.queue.item import Status
    wanted = Status.FAILED if area == "failed" else Status.HELD
    chosen = [r for r in item.recipients if r.status is wanted] or list(item.recipients)
    reasons = [r.last_error for r in chosen if r.last_error]
    return DigestLine(item.id, area, now - item.created_at, len(chosen),
                      ",".join(sorted({r.rule for r in chosen if r.rule})) or "-",
                      _one_line(reasons[0])[:120] if reasons else "")


def age_text(seconds: float) -> str:
    """A duration as people read it in a table: 45s, 12m, 3h, 2d."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def digest_text(hostname: str, lines: Iterable[DigestLine], certs: Iterable[ExpiringCert],
                cert_window_days: int) -> str:
    lines, certs = list(lines), list(certs)
    out = [f"Daily report of the mail gateway at {hostname}.", ""]
    for area, title, hint in (
            ("hold", "Held (waiting for you)", "phigate queue show ID; release or drop"),
            ("shunt", "Shunted (a delivery attempt crashed)", "phigate queue show ID"),
            ("failed", "Failed (the sender got a delivery report)", "phigate queue show ID")):
        chosen = [x for x in lines if x.area == area]
        out.append(f"{title}: {len(chosen)}" + (f"   ({hint})" if chosen else ""))
        out += [f"  {x.queue_id}  {age_text(x.age):>4}  {x.recipients} rcpt  rule {x.rules}"
                + (f"  {x.reason}" if x.reason else "") for x in chosen]
        out.append("")
    out.append(f"S/MIME certificates expiring within {cert_window_days} days: {len(certs)}")
    out += [f"  {c.fingerprint[:16]}  {time.strftime('%Y-%m-%d', time.gmtime(c.not_after))}"
            f"  {c.addresses or '-'}" for c in certs]
    out += ["", "This report was written automatically; it contains no message content."]
    return "\n".join(out) + "\n"
