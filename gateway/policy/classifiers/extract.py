"""Walk a raw RFC 5322 message into the places the detectors scan, and say what it could not read.

Produces ``Segment``s of UTF-8 text labelled with a location:

* ``subject`` — every Subject header, RFC 2047 decoded;
* ``body`` — text and HTML parts of the top-level message (both alternatives; HTML
  as its text, comments and visible attribute values). A quoted earlier message
  below a reply (``>`` lines, "-----Original Message-----", "On … wrote:", an
  Outlook ``From:/Sent:`` block, a forwarded-message banner) becomes a segment of
  its own, unquoted, so the reply's signature does not hide it;
* ``attachment:<n>`` — every other leaf (n counts them in walk order), its file
  names (``filename``, ``name``, RFC 2231 ``filename*``, names inside archives)
  as words, and attached messages (``message/rfc822`` in any transfer encoding,
  recursively, with their From/To/Cc/Subject);
* ``raw`` — only when the MIME tree is broken: the whole message with
  quoted-printable and base64 runs decoded best-effort, so what it says is
  still read.

Coverage: every part is either understood or recorded in ``Extracted.unreadable``
as (location, reason) with a short fixed reason (never message text): a broken
tree (no boundary, a boundary that matches no delimiter, one declared twice or
reused by a nested part, a type without subtype, an unclosed multipart…), an
unknown transfer encoding or charset, undecodable base64, a fragment or
external body, an attachment over a limit, encrypted or in a format it cannot
open, a decoder failure, the deadline. The classifier turns each into an
``unreadable`` finding, which makes the message PHI (fail closed).

Also the few header facts scoring needs: the names in From/To/Cc (staff and
recipients are not "a patient named in the text"), the address domains
(practice names), and whether the mail goes to one person outside the sender's
domain (so "your crown" means the recipient's crown) rather than to a list or a
colleague. Uses the compat32 parser: several times faster than
``policy.default`` and enough for decoding payloads.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.errors
import email.feedparser
import email.header
import email.message
import email.policy
import email.utils
import functools
import itertools
import re
from dataclasses import dataclass, field

import re2

from gateway.policy.classifiers.attachments import (
    Budget,
    Unscannable,
    html_to_text,
    inspect,
    name_text,
)
from gateway.policy.classifiers.parsing import decode_header, decode_header_checked, parse

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
RAW_SCAN_MAX = 8 << 20  # a broken tree larger than this is not read raw (it is PHI anyway)
MAX_PARTS = 2_000  # MIME parts in one message
MAX_MULTIPART_DEPTH = 40
TRANSFER_ENCODINGS = frozenset(
    {
        "7bit",
        "8bit",
        "binary",
        "base64",
        "quoted-printable",
        "x-uuencode",
        "uuencode",
        "x-uue",
        "uue",
    }
)
IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
ATTACHED_MESSAGE_HEADERS = ("From", "To", "Cc", "Subject")
# Headers read elsewhere (addresses, subject) or written by machines (routing, ids, MIME,
# signatures, spam scores); every other header's value is scanned as ``header`` text.
MACHINE_HEADERS = (
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "sender",
    "reply-to",
    "return-path",
    "delivered-to",
    "received",
    "dkim-",
    "arc-",
    "authentication-results",
    "received-spf",
    "message-id",
    "references",
    "in-reply-to",
    "content-",
    "mime-version",
    "list-",
    "precedence",
    "auto-submitted",
    "x-ms-",
    "x-microsoft-",
    "x-google-",
    "x-gm-",
    "x-received",
    "x-mailer",
    "user-agent",
    "thread-index",
    "thread-topic",
    "x-originating",
    "x-forefront-",
    "x-exchange-",
    "x-mimeole",
    "x-priority",
    "importance",
    "priority",
    "feedback-id",
    "x-spam",
    "x-virus",
    "x-ses-",
    "x-sg-",
    "x-mailgun-",
    "x-proofpoint-",
    "x-cloudmark-",
    "accept-language",
    "x-has-attach",
    "x-tnef-correlator",
    "x-auto-response",
    "x-ms-exchange",
    "x-mc-",
    "x-report-abuse",
    "x-campaign",
    "x-feedback",
    "x-mailchimp",
    "x-ymail",
    "x-apple-",
    "x-uniform-type",
    "x-universally-unique",
    "openpgp",
    "autocrypt",
    "disposition-notification-to",
    "return-receipt-to",
    "errors-to",
    "x-original-",
    "x-envelope-",
    "x-source",
    "x-php-",
    "x-csa-",
    "x-forwarded-",
    "resent-",
    "x-beenthere",
    "x-mailman-",
    "x-loop",
    "x-phigate",
)

_DEFECT_REASONS = {
    email.errors.NoBoundaryInMultipartDefect: "multipart without boundary",
    email.errors.StartBoundaryNotFoundDefect: "multipart boundary not found",
    email.errors.MultipartInvariantViolationDefect: "multipart boundary not found",
    email.errors.CloseBoundaryNotFoundDefect: "multipart not closed",
    email.errors.FirstHeaderLineIsContinuationDefect: "headers do not parse",
    email.errors.MissingHeaderBodySeparatorDefect: "headers do not parse",
    email.errors.MisplacedEnvelopeHeaderDefect: "headers do not parse",
    email.errors.InvalidMultipartContentTransferEncodingDefect: "encoded multipart",
    email.errors.InvalidBase64PaddingDefect: "undecodable base64",
    email.errors.InvalidBase64CharactersDefect: "undecodable base64",
    email.errors.InvalidBase64LengthDefect: "undecodable base64",
}
# Where a quoted earlier message starts below a reply.
_QUOTE_START = re2.compile(
    rb"(?m)^(?:[ \t]*-{2,}[ \t]*(?:Original Message|Forwarded message|Mensaje original"
    rb"|Mensaje reenviado)[ \t]*-{2,}|Begin forwarded message:|_{10,}[ \t]*\r?$"
    rb"|On [^\n]{4,200}wrote:[ \t]*\r?$|El [^\n]{4,200}escribi\xc3\xb3:[ \t]*\r?$"
    rb"|(?:From|De):[^\n]*\r?\n(?:Sent|Enviado|Date|Fecha):|>[^\n]*\r?\n>)"
)
# The stdlib's re, not RE2: google-re2's sub() runs Python code for every match (~4 us a
# quoted line), re's is C. The pattern cannot backtrack more than one line's leading blanks,
# and has no empty match, so both engines remove the same text.
_QUOTE_PREFIX = re.compile(rb"(?m)^[ \t]*(?:>[ \t]?)+")
_BASE64_LINE = re.compile(rb"^[A-Za-z0-9+/]{8,}={0,2}$")


@dataclass
class Segment:
    location: str
    text: bytes


@dataclass
class Extracted:
    segments: list[Segment] = field(default_factory=list)
    marks: list[tuple[str, str]] = field(default_factory=list)  # (mark, location)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (location, reason)
    failures: list[tuple[str, str]] = field(default_factory=list)  # unused: see ``unreadable``
    errors: list[str] = field(default_factory=list)  # "<stage>: <ExceptionClass>"
    sender_tokens: frozenset[str] = frozenset()
    header_tokens: frozenset[str] = frozenset()
    recipient_tokens: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()  # header address domains: names of businesses, not patients
    to_one_person: bool = False
    bulk: bool = False  # a list, newsletter or a wide distribution

    def cannot_read(self, location: str, reason: str) -> None:
        if (location, reason) not in self.unreadable:
            self.unreadable.append((location, reason))


def _charset_text(payload: bytes, charset: str | None) -> tuple[bytes, bool]:
    """UTF-8 text of a payload in ``charset`` (BOMs win); False when the charset is unknown."""
    if payload[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return payload.decode("utf-16", "replace").encode("utf-8"), True
    charset = (charset or "utf-8").lower()
    if charset in ("utf-8", "utf8", "us-ascii", "ascii"):
        return payload, True
    try:
        return payload.decode(charset, "replace").encode("utf-8"), True
    except LookupError:
        return payload.decode("latin-1").encode("utf-8"), False


def _filenames(part: email.message.Message) -> list[str]:
    """Every name a client might show: Content-Disposition filename (RFC 2231 too) and
    Content-Type name, each RFC 2047-decoded."""
    names = []
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        try:
            value = part.get_param(param, None, header)
        except Exception:  # noqa: BLE001 — a parameter that does not parse is read raw below
            value = None
        if value is not None:
            value = email.utils.collapse_rfc2231_value(value)
            names.append(decode_header(value))
    return [n for n in dict.fromkeys(names) if n.strip()]


def _is_attachment(part: email.message.Message, names: list[str]) -> bool:
    disposition = (part.get("Content-Disposition") or "").lower()
    return disposition.startswith("attachment") or bool(names)


def _getaddresses(values: list) -> tuple[tuple[str, str], ...]:
    """``email.utils.getaddresses``, parsed once per distinct list of header
    values (one message asks for the same To/From/Cc several times)."""
    key = tuple(str(v) for v in values)
    return _getaddresses_of(key)


@functools.lru_cache(maxsize=16)
def _getaddresses_of(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(email.utils.getaddresses(list(values)))


class _Fields:
    """A message's own header fields by lower-cased name, read once: ``Message.get_all``
    lower-cases every field on each call, and the header facts below ask ~30 times. Values
    are what ``get_all`` returns (``Message.items`` applies the same policy)."""

    def __init__(self, msg: email.message.Message):
        self._values: dict[str, list] = {}
        for name, value in msg.items():
            self._values.setdefault(name.lower(), []).append(value)

    def get_all(self, name: str, failobj=None):
        values = self._values.get(name.lower())
        return list(values) if values else failobj

    def get(self, name: str, failobj=None):
        values = self._values.get(name.lower())
        return values[0] if values else failobj


def _recipients(msg: _Fields) -> list[tuple[str, str]]:
    pairs = _getaddresses(msg.get_all("To", []) + msg.get_all("Cc", []))
    return [(decode_header(name).lower(), addr.lower()) for name, addr in pairs if "@" in addr]


def _is_bulk(msg: _Fields) -> bool:
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


def _to_one_outsider(msg: _Fields, bulk: bool) -> bool:
    """Exactly one recipient, outside the sender's domain (a colleague's "you" is not a patient)."""
    recipients = _recipients(msg)
    if bulk or len(recipients) != 1:
        return False
    domain = recipients[0][1].rsplit("@", 1)[1]
    _, sender = email.utils.parseaddr(decode_header(msg.get("From")))
    return not sender.lower().endswith("@" + domain)


def _name_tokens(msg: _Fields, headers: tuple[str, ...]) -> frozenset[str]:
    values = [decode_header(v) for h in headers for v in msg.get_all(h, [])]
    return frozenset(
        t.strip(".,\"'")
        for name, _ in _getaddresses(values)
        for t in name.split()
        if len(t) > 2
    )


def _recipient_tokens(msg: _Fields) -> frozenset[str]:
    """To display-name words plus name-like parts of the address ("tova_oroz84" -> Tova)."""
    values = [decode_header(v) for v in msg.get_all("To", [])]
    local_words = {
        word.capitalize()
        for _, addr in _getaddresses(values)
        for word in re.findall(r"[a-z]{3,}", addr.split("@", 1)[0].lower())
    }
    return _name_tokens(msg, ("To",)) | local_words


def _domains(msg: _Fields) -> tuple[str, ...]:
    headers = [v for h in ("From", "To", "Cc", "Reply-To", "Sender") for v in msg.get_all(h, [])]
    return tuple(
        sorted(
            {
                addr.rsplit("@", 1)[1].lower()
                for _, addr in _getaddresses(headers)
                if "@" in addr
            }
        )
    )


def extract(raw: bytes, budget: Budget | None = None) -> Extracted:
    budget = budget or Budget().started()
    try:
        msg = parse(raw)
        fields = _Fields(msg)
        bulk = _is_bulk(fields)
        out = Extracted(
            sender_tokens=_name_tokens(fields, ("From",)),
            header_tokens=_name_tokens(fields, ("From", "To", "Cc")),
            recipient_tokens=_recipient_tokens(fields),
            domains=_domains(fields),
            to_one_person=_to_one_outsider(fields, bulk),
            bulk=bulk,
        )
    except (RecursionError, MemoryError, ValueError, TypeError, IndexError) as exc:
        out = Extracted(errors=[f"parse: {type(exc).__name__}"])
        out.cannot_read("body", "message does not parse")
        _scan_raw(raw, out, budget)
        return out
    custom = _custom_headers(msg)
    if custom:
        out.segments.append(Segment("header", custom))
    subjects = [decode_header_checked(v) for v in msg.get_all("Subject", [])]
    for subject, decoded in subjects:
        if subject:
            out.segments.append(Segment("subject", subject.encode("utf-8", "replace")))
        if not decoded:
            out.cannot_read("subject", "subject does not decode")
    walker = _Walker(out, budget)
    try:
        walker.walk(msg, depth=0, body_location="body", boundaries=())
    except Unscannable as why:
        out.cannot_read("body", str(why))
    except RecursionError:
        out.cannot_read("body", "nesting limit")
        walker.broken = True
    if walker.broken:
        _scan_raw(raw, out, budget)
    return out


class _Walker:
    """One message's walk; ``broken`` is set when the tree itself cannot be trusted."""

    def __init__(self, out: Extracted, budget: Budget):
        self.out = out
        self.budget = budget
        self.counter = 0
        self.parts = 0
        self.broken = False

    def next_location(self) -> str:
        location = f"attachment:{self.counter}"
        self.counter += 1
        return location

    def structure(self, part: email.message.Message, location: str, boundaries: tuple) -> None:
        """Record what makes this part's structure untrustworthy (clients may read it otherwise)."""
        reasons = [_DEFECT_REASONS.get(type(d), "malformed part") for d in part.defects]
        declared = part.get_all("Content-Type") or []
        if len(declared) > 1:
            reasons.append("content type declared twice")
        if declared:
            ctype = str(declared[0]).split(";", 1)[0].strip().lower()
            main, _, sub = ctype.partition("/")
            if not main or not sub or not sub.strip():
                reasons.append("content type without subtype")
        if part.get_content_maintype() == "multipart":
            found = [v for k, v in (part.get_params(None) or [])[1:] if k.lower() == "boundary"]
            if len(found) > 1:
                reasons.append("boundary declared twice")
            if found and found[0] in boundaries:
                reasons.append("boundary reused by a nested part")
        cte = part.get_all("Content-Transfer-Encoding") or []
        if len(cte) > 1:
            reasons.append("transfer encoding declared twice")
        for reason in reasons:
            if reason == "undecodable base64":
                self.out.cannot_read(location, reason)
                continue
            self.broken = True
            self.out.cannot_read(location, reason)

    def walk(
        self,
        part: email.message.Message,
        depth: int,
        body_location: str | None,
        boundaries: tuple[str, ...],
    ) -> None:
        """Text parts of a message body go to ``body_location``; every other leaf is a new
        attachment."""
        self.parts += 1
        if self.parts > MAX_PARTS or len(boundaries) > MAX_MULTIPART_DEPTH:
            raise Unscannable("part limit")
        self.budget.tick()
        ctype = part.get_content_type()
        if ctype in ("message/partial", "message/external-body"):
            # a piece of a message, or one stored elsewhere: what is here is read, the rest
            # cannot be
            location = body_location or self.next_location()
            self.out.cannot_read(location, "message fragment or external body")
            for inner in part.get_payload() if part.is_multipart() else []:
                self.walk(inner, depth + 1, location, boundaries)
            if not part.is_multipart():
                self.leaf(part, depth, location, boundaries)
            return
        if ctype.split("/")[0] == "message":  # get_content_maintype(), without a second lookup
            self.attached_message(part, depth)
            return
        if part.is_multipart():
            self.structure(part, body_location or "attachment", boundaries)
            inner = boundaries + ((part.get_boundary() or ""),)
            for child in part.get_payload() or []:
                self.walk(child, depth, body_location, inner)
            return
        self.leaf(part, depth, body_location, boundaries)

    def attached_message(self, part: email.message.Message, depth: int) -> None:
        location = self.next_location()
        self.structure(part, location, ())
        if depth + 1 > self.budget.max_depth:
            self.out.cannot_read(location, "nesting limit")
            return
        cte = (part.get("Content-Transfer-Encoding") or "7bit").strip().lower()
        payload = part.get_payload()
        if cte not in IDENTITY_ENCODINGS or not isinstance(payload, list):
            inner = self.decoded_message(part, cte, location)
            if inner is None:
                return
            payload = [inner]
        for inner in payload:
            self.heading(inner, location)
            self.walk(inner, depth + 1, body_location=location, boundaries=())

    def decoded_message(self, part: email.message.Message, cte: str, location: str):
        """An attached message sent base64/QP encoded (the parser read the encoded text as if
        it were the message): decode it and parse again."""
        payload = part.get_payload()
        encoded = (
            payload[0].as_bytes()
            if isinstance(payload, list) and payload
            else str(payload or "").encode("ascii", "surrogateescape")
        )
        try:
            if cte == "base64":
                data = b"".join(encoded.split())
                data = base64.b64decode(data.rstrip(b"=") + b"=" * (-len(data.rstrip(b"=")) % 4))
            elif cte == "quoted-printable":
                data = binascii.a2b_qp(encoded)
            elif cte in IDENTITY_ENCODINGS:
                data = encoded
            else:
                self.broken = True
                self.out.cannot_read(location, "unknown transfer encoding")
                return None
        except (binascii.Error, ValueError):
            self.broken = True
            self.out.cannot_read(location, "undecodable base64")
            return None
        self.budget.spend(len(data))
        return parse(data)

    def heading(self, inner: email.message.Message, location: str) -> None:
        """The attached message's author, recipients and subject are part of what it discloses."""
        lines = []
        for name in ATTACHED_MESSAGE_HEADERS:
            for value in inner.get_all(name, []):
                text, decoded = decode_header_checked(value)
                if not decoded:
                    self.out.cannot_read(location, "subject does not decode")
                lines.append(f"{name}: {text}\n")
        text = "".join(lines).encode("utf-8", "replace") + _custom_headers(inner)
        if text:
            self.out.segments.append(Segment(location, text))

    def leaf(
        self,
        part: email.message.Message,
        depth: int,
        body_location: str | None,
        boundaries: tuple[str, ...],
    ) -> None:
        ctype = part.get_content_type()
        maintype = ctype.split("/")[0]  # get_content_maintype(), without a second lookup
        names = _filenames(part)
        in_body = bool(body_location) and (
            ctype in ("text/plain", "text/html") or maintype == "multipart"
        )  # a multipart the parser could not split is read as the body it came in
        location = (
            body_location if in_body and not _is_attachment(part, names) else self.next_location()
        )
        self.structure(part, location, boundaries)
        cte = (part.get("Content-Transfer-Encoding") or "7bit").strip().lower()
        if cte not in TRANSFER_ENCODINGS:
            self.broken = True
            self.out.cannot_read(location, "unknown transfer encoding")
        for name in names:
            self.out.segments.append(Segment(location, name_text(name)))
        try:
            payload = part.get_payload(decode=True) or b""
            for defect in part.defects:
                if _DEFECT_REASONS.get(type(defect)) == "undecodable base64":
                    self.out.cannot_read(location, "undecodable base64")
            if maintype == "text":
                payload, known = _charset_text(payload, part.get_content_charset())
                if not known:
                    self.out.cannot_read(location, "unknown charset")
            if location == body_location:
                text = html_to_text(payload) if ctype == "text/html" else payload
                self.budget.spend(len(text))
                self.out.segments.extend(Segment(location, t) for t in split_quoted(text))
                return
            result = inspect(payload, ctype, names[0] if names else "", self.budget, depth)
        except Unscannable as why:
            self.out.cannot_read(location, str(why))
            return
        except Exception as exc:  # noqa: BLE001 — any parser failure fails closed, by type only
            self.out.errors.append(f"attachment: {type(exc).__name__}")
            self.out.cannot_read(location, "decoder error")
            return
        self.out.segments.extend(Segment(location, text) for text in result.texts)
        self.out.marks.extend((mark, location) for mark in result.marks)


def _custom_headers(msg: email.message.Message) -> bytes:
    """ "Name: value" lines of the headers a person or a practice system added (not the
    machine ones in ``MACHINE_HEADERS``), RFC 2047 decoded."""
    lines = [
        f"{name}: {decode_header(str(value))}\n"
        for name, value in msg.items()
        if not name.lower().startswith(MACHINE_HEADERS)
    ]
    return "".join(lines).encode("utf-8", "replace")


def split_quoted(text: bytes) -> list[bytes]:
    """The reply, then each quoted earlier message as its own piece, ``>`` prefixes removed."""
    starts: list[int] = []
    for match in _QUOTE_START.finditer(text):
        start = match.start()
        line_before = text.rfind(b"\n", 0, max(start - 1, 0)) + 1
        # a ">" line continues the quote (or the "wrote:" line) right above it
        if text.startswith(b">", start) and (
            text[line_before:start].lstrip().startswith(b">")
            or (starts and starts[-1] >= line_before)
        ):
            continue
        starts.append(start)
    if not starts:
        return [text]
    cuts = [0, *starts, len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(cuts) if b > a]
    return [_QUOTE_PREFIX.sub(b"", p) if b">" in p else p for p in pieces]


def _scan_raw(raw: bytes, out: Extracted, budget: Budget) -> None:
    """A tree that cannot be trusted is still read: the raw bytes with quoted-printable
    decoded, markup reduced to text, and base64 runs decoded (and inspected if binary)."""
    if len(raw) > RAW_SCAN_MAX:
        out.cannot_read("raw", "size limit")
        return
    try:
        budget.spend(len(raw))
        text = html_to_text(binascii.a2b_qp(raw))
        budget.spend(len(text))
        out.segments.append(Segment("raw", text))
        for run in _base64_runs(raw):
            data = base64.b64decode(run + b"=" * (-len(run) % 4))
            try:
                result = inspect(data, "", "", budget)
            except Unscannable as why:
                out.cannot_read("raw", str(why))
                continue
            out.segments.extend(Segment("raw", t) for t in result.texts)
            out.marks.extend((mark, "raw") for mark in result.marks)
    except Unscannable as why:
        out.cannot_read("raw", str(why))
    except Exception as exc:  # noqa: BLE001 — best-effort reading; the message is PHI already
        out.errors.append(f"raw: {type(exc).__name__}")


def _base64_runs(raw: bytes) -> list[bytes]:
    """Consecutive base64-looking lines joined (``=`` padding stripped), or one long line."""
    runs: list[bytes] = []
    current: list[bytes] = []
    for line in raw.splitlines():
        line = line.strip()
        if _BASE64_LINE.match(line):
            current.append(line.rstrip(b"="))
            if line.endswith(b"="):
                runs.append(b"".join(current))
                current = []
            continue
        if len(current) > 1 or (current and len(current[0]) >= 40):
            runs.append(b"".join(current))
        current = []
    if current:
        runs.append(b"".join(current))
    return [r[: len(r) - (len(r) % 4 == 1)] for r in runs]
