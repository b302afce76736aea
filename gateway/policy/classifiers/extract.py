"""Walk a raw RFC 5322 message into the places the detectors scan.

Produces ``Segment``s of UTF-8 text labelled ``subject``, ``body`` (text and
HTML-as-text parts of the top-level message) or ``attachment:<n>`` (n counts the
non-body leaves in walk order; the file name is never used as a label), plus
attachment marks (DICOM, radiograph image) and the few header facts scoring
needs: the names in From/To/Cc (staff and recipients are not "a patient named in the
text"), the address domains (practice names), and whether the mail goes to one
person outside the sender's domain (so "your crown" means the recipient's
crown) rather than to a list or a colleague.

Nested message/rfc822 parts are walked to ``Budget.max_depth``; their text parts
become attachment segments. Uses the compat32 parser: several times faster than
``policy.default`` and enough for decoding payloads.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.message
import email.utils
import re
from dataclasses import dataclass, field

from gateway.policy.classifiers.attachments import Budget, Unscannable, html_to_text, inspect

BULK_WORDS = (
    "list",
    "members",
    "subscribers",
    "newsletter",
    "all staff",
    "everyone",
    "patients",
    "undisclosed",
)
BULK_LOCALPARTS = (
    "news",
    "newsletter",
    "members",
    "list",
    "marketing",
    "info",
    "noreply",
    "no-reply",
    "all",
    "staff",
    "team",
    "announce",
    "updates",
    "mailer",
)


@dataclass
class Segment:
    location: str
    text: bytes


@dataclass
class Extracted:
    segments: list[Segment] = field(default_factory=list)
    marks: list[tuple[str, str]] = field(default_factory=list)  # (mark, location)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (location, why) — unscannable
    errors: list[str] = field(default_factory=list)  # "<stage>: <ExceptionClass>"
    sender_tokens: frozenset[str] = frozenset()
    header_tokens: frozenset[str] = frozenset()
    recipient_tokens: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()  # header address domains: names of businesses, not patients
    to_one_person: bool = False
    bulk: bool = False  # a list, newsletter or a wide distribution


def decode_header(value: str | None) -> str:
    if not value:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return value


def _text_of(part: email.message.Message) -> bytes:
    payload = part.get_payload(decode=True) or b""
    charset = (part.get_content_charset() or "utf-8").lower()
    if charset not in ("utf-8", "utf8", "us-ascii", "ascii"):
        try:
            payload = payload.decode(charset, "replace").encode("utf-8")
        except LookupError:
            payload = payload.decode("latin-1").encode("utf-8")
    if part.get_content_type() == "text/html":
        return html_to_text(payload)
    return payload


def _is_attachment(part: email.message.Message) -> bool:
    disposition = (part.get("Content-Disposition") or "").lower()
    return disposition.startswith("attachment") or bool(part.get_filename())


def _recipients(msg: email.message.Message) -> list[tuple[str, str]]:
    pairs = email.utils.getaddresses(msg.get_all("To", []) + msg.get_all("Cc", []))
    return [(decode_header(name).lower(), addr.lower()) for name, addr in pairs if "@" in addr]


def _is_bulk(msg: email.message.Message) -> bool:
    """Newsletters, lists, wide distributions: nobody in particular is addressed."""
    if (
        msg.get("List-Id")
        or msg.get("List-Unsubscribe")
        or (msg.get("Precedence") or "").lower() in ("bulk", "list", "junk")
    ):
        return True
    recipients = _recipients(msg)
    return (
        not recipients
        or len(recipients) > 5
        or any(
            any(w in name for w in BULK_WORDS) or addr.split("@", 1)[0] in BULK_LOCALPARTS
            for name, addr in recipients
        )
    )


def _to_one_outsider(msg: email.message.Message, bulk: bool) -> bool:
    """Exactly one recipient, outside the sender's domain (a colleague's "you" is not a patient)."""
    recipients = _recipients(msg)
    if bulk or len(recipients) != 1:
        return False
    domain = recipients[0][1].rsplit("@", 1)[1]
    _, sender = email.utils.parseaddr(decode_header(msg.get("From")))
    return not sender.lower().endswith("@" + domain)


def _name_tokens(msg: email.message.Message, headers: tuple[str, ...]) -> frozenset[str]:
    values = [decode_header(v) for h in headers for v in msg.get_all(h, [])]
    return frozenset(
        t.strip(".,\"'")
        for name, _ in email.utils.getaddresses(values)
        for t in name.split()
        if len(t) > 2
    )


def _recipient_tokens(msg: email.message.Message) -> frozenset[str]:
    """To display-name words plus name-like parts of the address ("tova_oroz84" -> Tova)."""
    values = [decode_header(v) for v in msg.get_all("To", [])]
    local_words = {
        word.capitalize()
        for _, addr in email.utils.getaddresses(values)
        for word in re.findall(r"[a-z]{3,}", addr.split("@", 1)[0].lower())
    }
    return _name_tokens(msg, ("To",)) | local_words


def _domains(msg: email.message.Message) -> tuple[str, ...]:
    headers = [v for h in ("From", "To", "Cc", "Reply-To", "Sender") for v in msg.get_all(h, [])]
    return tuple(
        sorted(
            {
                addr.rsplit("@", 1)[1].lower()
                for _, addr in email.utils.getaddresses(headers)
                if "@" in addr
            }
        )
    )


def extract(raw: bytes, budget: Budget | None = None) -> Extracted:
    budget = budget or Budget()
    msg = email.message_from_bytes(raw)
    bulk = _is_bulk(msg)
    out = Extracted(
        sender_tokens=_name_tokens(msg, ("From",)),
        header_tokens=_name_tokens(msg, ("From", "To", "Cc")),
        recipient_tokens=_recipient_tokens(msg),
        domains=_domains(msg),
        to_one_person=_to_one_outsider(msg, bulk),
        bulk=bulk,
    )
    subject = decode_header(msg.get("Subject"))
    if subject:
        out.segments.append(Segment("subject", subject.encode("utf-8", "replace")))
    counter = [0]
    _walk(msg, out, budget, counter, depth=0, body_location="body")
    return out


def _walk(
    part: email.message.Message,
    out: Extracted,
    budget: Budget,
    counter: list[int],
    depth: int,
    body_location: str | None,
) -> None:
    """Text parts of a message body go to ``body_location``; every other leaf is a new "
    "attachment."""
    ctype = part.get_content_type()
    if ctype == "message/rfc822" or (part.is_multipart() and ctype.startswith("message/")):
        location = _next_location(counter)
        if depth + 1 > budget.max_depth:
            out.failures.append((location, "nesting limit"))
            return
        for inner in part.get_payload() or []:
            # The attached message's author and subject are part of what it discloses.
            author = decode_header(inner.get("From"))
            subject = decode_header(inner.get("Subject"))
            heading = f"From: {author}\nSubject: {subject}\n".encode("utf-8", "replace")
            out.segments.append(Segment(location, heading))
            _walk(inner, out, budget, counter, depth + 1, body_location=location)
        return
    if part.is_multipart():
        for child in part.get_payload() or []:
            _walk(child, out, budget, counter, depth, body_location)
        return
    if body_location and ctype in ("text/plain", "text/html") and not _is_attachment(part):
        text = _text_of(part)
        budget.spend(len(text))
        out.segments.append(Segment(body_location, text))
        return
    location = _next_location(counter)
    try:
        payload = part.get_payload(decode=True) or b""
        result = inspect(payload, ctype, decode_header(part.get_filename()), budget, depth)
    except Unscannable as why:
        out.failures.append((location, str(why)))
        return
    except Exception as exc:  # noqa: BLE001 — any parser failure fails closed, by type only
        out.errors.append(f"attachment: {type(exc).__name__}")
        out.failures.append((location, "unreadable"))
        return
    out.segments.extend(Segment(location, text) for text in result.texts)
    out.marks.extend((mark, location) for mark in result.marks)


def _next_location(counter: list[int]) -> str:
    location = f"attachment:{counter[0]}"
    counter[0] += 1
    return location
