"""Evaluating a rule's ``when`` against one recipient of one message.

``MessageFacts`` holds what conditions may look at, computed lazily from the
raw message: the Subject and a plain single part's attachment types (none) from
a split of the header section that gives the feed parser's fields
(``raw_header_items``); the header parser only when a rule asks for a header
or the Content-Type needs it; the MIME tree only for multipart attachment
types. Every check
is cheap and local: nothing here touches the network; whether a recipient has
a certificate is asked of a lookup the wiring passes in (the certificate
store's in-memory index, ``CertStore.certificate_for``).

``first_failed(when, ...)`` returns the name of the first condition that does
not hold (``None`` when all hold), which is what the explain output shows.

Fail closed: when the headers, the Subject or the MIME tree cannot be parsed,
``MessageFacts.unreadable`` is set and every condition that looks at them
(``subject_keyword``, ``header``, ``attachment_type``) HOLDS, so a protective
rule ("[secure]" in the subject → portal) is never skipped because of a parse
failure; and ``phi: false`` does not hold, so no "no PHI" rule can relay such a
message. A relay rule that would match this way still cannot send PHI in
plaintext (the engine refuses relay of a PHI verdict without
``allow_phi_plaintext``), and the classifier reports the same breakage as an
``unreadable`` finding, which makes the verdict PHI.
"""
from __future__ import annotations

import email.policy
import re
from collections.abc import Callable, Mapping
from email.parser import BytesParser
from functools import cached_property

from gateway.model import Envelope, Verdict
from gateway.model.envelope import address_key, domain_of
from gateway.policy.classifiers.parsing import decode_header_checked, parse
from gateway.policy.rules import When

_PARSER = BytesParser(policy=email.policy.default)
_COMPAT32 = email.policy.compat32  # header values as sent
# The first empty line (a line break right after a line break; CRLF, CR and LF
# all break lines for the parser): the header section ends there.
_BLANK_LINE = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")


def header_section(raw: bytes) -> bytes:
    """``raw`` up to and with its first empty line: what a headers-only parse
    reads (without handing it the whole body to skip)."""
    if raw[:1] in (b"\r", b"\n"):
        return raw[:2]
    blank = _BLANK_LINE.search(raw)
    return raw if blank is None else raw[:blank.end()]

# The header section as the stdlib's feed parser splits it (email.feedparser): lines
# end at CRLF, CR or LF; the section stops at the first line that is neither a field,
# a continuation nor a "From " line; a "From " line is no field (the envelope line
# first, the start of the body last, a defect in between), nor is a line starting
# with ":", and a continuation before any field is dropped. ``tests/unit/test_header_items.py`` compares the two.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_FIELD_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]")
# A Content-Type whose type the header parser cannot read differently (no comments,
# encoded words or escapes) and that names no file (no "name" parameter).
_PLAIN_CONTENT_TYPE = re.compile(
    r"[ \t]*([A-Za-z0-9!#$%&'*+.^_`|~-]+)/[A-Za-z0-9!#$%&'*+.^_`|~-]+[ \t]*"
    r"(?:;[^()\\]*)?\Z")


def raw_header_items(section: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs a headers-only parse of ``section`` stores, values
    as sent (``Message.raw_items()``), without building the message."""
    text = section.decode("ascii", "surrogateescape")
    lines = []
    for line in _LINE.findall(text):
        if not _FIELD_LINE.match(line):
            break
        lines.append(line)
    items: list[tuple[str, str]] = []
    field: list[str] | None = None
    for line in lines:
        if line[0] in " \t":
            if field is not None:
                field.append(line)
            continue
        if field is not None:
            items.append(_COMPAT32.header_source_parse(field))
            field = None
        if not line.startswith("From ") and line.find(":") > 0:
            field = [line]
    if field is not None:
        items.append(_COMPAT32.header_source_parse(field))
    return items


def plain_single_part(items: list[tuple[str, str]]) -> bool | None:
    """True: the header section describes one part that is not an attachment and
    names no file (so it lists no attachment types); False: multipart or
    message/*; None: not certain without the full header parser."""
    disposition = [v for n, v in items if n.lower() == "content-disposition"]
    types = [v for n, v in items if n.lower() == "content-type"]
    if disposition or len(types) > 1:
        return None
    if not types:
        return True                                   # text/plain by default
    value = types[0]
    match = _PLAIN_CONTENT_TYPE.match(value)
    if match is None or "=?" in value or "name" in value.lower():
        return None
    return match.group(1).lower() not in ("multipart", "message")


# address → whether a valid S/MIME certificate for it is on file (the local store)
CertificateLookup = Callable[[str], bool]


class MessageFacts:
    """Per-message facts shared by every recipient's evaluation."""

    def __init__(self, envelope: Envelope, verdict: Verdict, raw: bytes,
                 has_certificate: CertificateLookup | None = None):
        self.envelope = envelope
        self.verdict = verdict
        self.raw = raw
        self.size = len(raw)
        self.has_certificate = has_certificate or (lambda address: False)

        self.unreadable = False  # something a condition needed did not parse (see module doc)

    @cached_property
    def headers(self):
        try:
            return _PARSER.parsebytes(header_section(self.raw), headersonly=True)
        except Exception:  # noqa: BLE001 — malformed headers: conditions on them hold
            self.unreadable = True
            return None

    @cached_property
    def header_items(self) -> list[tuple[str, str]]:
        return raw_header_items(header_section(self.raw))

    @cached_property
    def subject(self) -> str | None:
        """The Subject (all Subject headers joined, RFC 2047 decoded as the classifier does);
        ``None`` when it does not parse or an encoded word does not decode."""
        try:
            # the values as sent, as the compat32 parser would hand them out
            raw = [_COMPAT32.header_fetch_parse(name, value)
                   for name, value in self.header_items if name.lower() == "subject"]
            decoded = [decode_header_checked(v) for v in raw]
        except Exception:  # noqa: BLE001 — an unparseable subject: keyword conditions hold
            decoded = [("", False)]
        if not all(ok for _, ok in decoded):
            self.unreadable = True
            return None
        return " ".join(text for text, _ in decoded)

    @cached_property
    def attachment_types(self) -> frozenset[str] | None:
        """Content types and lower-cased file-name extensions of every non-body part;
        ``None`` when the MIME tree does not parse. A message that is not multipart
        or message/* is one part: its header section says all (the parser would not
        look into its body either)."""
        found: set[str] = set()
        try:
            if plain_single_part(self.header_items):
                return frozenset()
            head = self.headers
            if head is None:
                raise ValueError("header section does not parse")
            single = head.get_content_maintype() not in ("multipart", "message")
            message = head if single else parse(self.raw, email.policy.default)
            for part in message.walk():
                if part.is_multipart():
                    continue
                filename = part.get_filename()
                if part.get_content_disposition() == "attachment" or filename:
                    found.add(part.get_content_type())
                    if filename and "." in filename:
                        found.add("." + filename.rsplit(".", 1)[1].lower())
        except Exception:  # noqa: BLE001 — a broken MIME tree: type conditions hold
            self.unreadable = True
            return None
        return frozenset(found)

    def phi(self) -> bool:
        """The verdict's PHI flag, or True when the headers, Subject or MIME tree do not parse
        (checked here, not left to condition order, so ``phi: false`` cannot run first)."""
        if self.verdict.phi:
            return True
        _ = self.subject, self.attachment_types
        return self.unreadable


def domain_matches(domain: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern.startswith("*."):
            if domain.endswith(pattern[1:]):
                return True
        elif domain == pattern:
            return True
    return False


def in_list(address: str, entries: list[str]) -> bool:
    """A list holds addresses (with @) and domains (without, ``*.`` for subdomains)."""
    return _addresses(address, [e for e in entries if "@" in e]) or domain_matches(
        domain_of(address), [e for e in entries if "@" not in e])


def _addresses(address: str, wanted: list[str]) -> bool:
    return address_key(address) in {address_key(w) for w in wanted}


def _type_matches(types: frozenset[str] | None, wanted: list[str]) -> bool:
    if types is None:
        return True  # unreadable tree: fail closed
    for pattern in (w.lower() for w in wanted):
        if pattern.endswith("/*"):
            if any(t.startswith(pattern[:-1]) for t in types):
                return True
        elif pattern in types:
            return True
    return False


def _header_matches(facts: MessageFacts, wanted: dict[str, str]) -> bool:
    if facts.headers is None:
        return True  # unreadable headers: fail closed
    for name, text in wanted.items():
        try:
            values = [str(v) for v in facts.headers.get_all(name) or []]
        except Exception:  # noqa: BLE001 — a header that does not parse: fail closed
            facts.unreadable = True
            continue
        if not values:
            return False
        if text != "*" and not any(text.lower() in v.lower() for v in values):
            return False
    return True


def _subject_has(facts: MessageFacts, keywords: list[str]) -> bool:
    subject = facts.subject
    return subject is None or matched_keyword(subject, keywords) is not None


def _phi_in(verdict: Verdict, places: list[str]) -> bool:
    """PHI sits in one of ``places``. For the subject that means the subject
    identifies a person (an identifier finding there: a name, date of birth,
    chart number…) in a message that has PHI; a health word alone in a
    subject ("Referral - implant consult"), or a subject addressing the
    recipient about themselves ("your bridge"), does not single anyone out.
    For body and attachments any acted-on finding there counts."""
    if not verdict.phi:
        return False
    for finding in verdict.findings:
        place = finding.location.split(":", 1)[0]
        if finding.shadow or place not in places:
            continue
        if place != "subject" or (finding.category == "identifier"
                                  and finding.detector != "recipient_addressed"):
            return True
    return False


# name → check(value, recipient, facts, lists); the order is the order of evaluation
# (cheap envelope checks first) and the order the explain output reports.
Check = Callable[[object, str, MessageFacts, Mapping[str, list[str]]], bool]
CHECKS: dict[str, Check] = {
    "recipient": lambda v, r, f, lists: _addresses(r, v),
    "recipient_domain": lambda v, r, f, lists: domain_matches(domain_of(r), v),
    "recipient_list": lambda v, r, f, lists: any(in_list(r, lists[n]) for n in v),
    "sender": lambda v, r, f, lists: _addresses(f.envelope.mail_from, v),
    "sender_domain": lambda v, r, f, lists: domain_matches(domain_of(f.envelope.mail_from), v),
    "sender_list": lambda v, r, f, lists: any(in_list(f.envelope.mail_from, lists[n]) for n in v),
    "auth_user": lambda v, r, f, lists: f.envelope.auth_user in v,
    "phi": lambda v, r, f, lists: f.phi() is v,
    "category": lambda v, r, f, lists: bool(f.verdict.categories & set(v)),
    "detector": lambda v, r, f, lists: bool(f.verdict.detectors & set(v)),
    "phi_in": lambda v, r, f, lists: _phi_in(f.verdict, v),
    "recipient_has_certificate": lambda v, r, f, lists: bool(f.has_certificate(r)) is v,
    "size_over": lambda v, r, f, lists: f.size > v,
    "size_under": lambda v, r, f, lists: f.size < v,
    "subject_keyword": lambda v, r, f, lists: _subject_has(f, v),
    "header": lambda v, r, f, lists: _header_matches(f, v),
    "attachment_type": lambda v, r, f, lists: _type_matches(f.attachment_types, v),
}
assert set(CHECKS) == set(When.model_fields), "every condition needs a check"


def matched_keyword(subject: str | None, keywords: list[str]) -> str | None:
    if subject is None:
        return None
    lowered = subject.lower()
    for keyword in keywords:
        if keyword.lower() in lowered:
            return keyword
    return None


def first_failed(when: When, recipient: str, facts: MessageFacts,
                 lists: Mapping[str, list[str]]) -> str | None:
    for name, check in CHECKS.items():
        value = getattr(when, name)
        if value is not None and not check(value, recipient, facts, lists):
            return name
    return None
