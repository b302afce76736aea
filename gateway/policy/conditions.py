"""Evaluating a rule's ``when`` against one recipient of one message.

``MessageFacts`` holds what conditions may look at, computed lazily from the
raw message (headers parsed only if a rule asks for the subject or a header,
the MIME tree walked only if a rule asks for attachment types). Every check
is cheap and local: nothing here touches the network; whether a recipient has
a certificate is asked of a lookup the wiring passes in (the certificate
store's in-memory index, ``CertStore.certificate_for``).

``first_failed(when, ...)`` returns the name of the first condition that does
not hold (``None`` when all hold), which is what the explain output shows.
"""
from __future__ import annotations

import email.policy
from collections.abc import Callable, Mapping
from email.parser import BytesParser
from functools import cached_property

from gateway.model import Envelope, Verdict
from gateway.model.envelope import address_key, domain_of
from gateway.policy.rules import When

_PARSER = BytesParser(policy=email.policy.default)

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

    @cached_property
    def headers(self):
        try:
            return _PARSER.parsebytes(self.raw, headersonly=True)
        except Exception:  # noqa: BLE001 — malformed headers: conditions on them do not hold
            return None

    @cached_property
    def subject(self) -> str:
        try:
            return str(self.headers.get("Subject", "") or "") if self.headers else ""
        except Exception:  # noqa: BLE001 — an undecodable subject matches no keyword
            return ""

    @cached_property
    def attachment_types(self) -> frozenset[str]:
        """Content types and lower-cased file-name extensions of every non-body part."""
        found: set[str] = set()
        try:
            message = _PARSER.parsebytes(self.raw)
            for part in message.walk():
                if part.is_multipart():
                    continue
                filename = part.get_filename()
                if part.get_content_disposition() == "attachment" or filename:
                    found.add(part.get_content_type())
                    if filename and "." in filename:
                        found.add("." + filename.rsplit(".", 1)[1].lower())
        except Exception:  # noqa: BLE001 — a broken MIME tree is itself a fact
            found.add("application/x-unparseable")
        return frozenset(found)


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


def _type_matches(types: frozenset[str], wanted: list[str]) -> bool:
    for pattern in (w.lower() for w in wanted):
        if pattern.endswith("/*"):
            if any(t.startswith(pattern[:-1]) for t in types):
                return True
        elif pattern in types:
            return True
    return False


def _header_matches(facts: MessageFacts, wanted: dict[str, str]) -> bool:
    if facts.headers is None:
        return False
    for name, text in wanted.items():
        try:
            values = facts.headers.get_all(name) or []
        except Exception:  # noqa: BLE001 — a header that does not parse does not match
            values = []
        if not values:
            return False
        if text != "*" and not any(text.lower() in str(v).lower() for v in values):
            return False
    return True


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
    "phi": lambda v, r, f, lists: f.verdict.phi is v,
    "category": lambda v, r, f, lists: bool(f.verdict.categories & set(v)),
    "detector": lambda v, r, f, lists: bool(f.verdict.detectors & set(v)),
    "phi_in": lambda v, r, f, lists: _phi_in(f.verdict, v),
    "recipient_has_certificate": lambda v, r, f, lists: bool(f.has_certificate(r)) is v,
    "size_over": lambda v, r, f, lists: f.size > v,
    "size_under": lambda v, r, f, lists: f.size < v,
    "subject_keyword": lambda v, r, f, lists: matched_keyword(f.subject, v) is not None,
    "header": lambda v, r, f, lists: _header_matches(f, v),
    "attachment_type": lambda v, r, f, lists: _type_matches(f.attachment_types, v),
}
assert set(CHECKS) == set(When.model_fields), "every condition needs a check"


def matched_keyword(subject: str, keywords: list[str]) -> str | None:
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
