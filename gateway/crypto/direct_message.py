"""The Direct message format (Applicability Statement for Secure Health Transport).

* ``build_direct(raw, identity, certificates, …)``: the original message is
  wrapped whole as ``message/rfc822`` (RFC 5751 §3.1), signed (SHA-256,
  detached, signer certificate and its chain included) and encrypted to every
  certificate (AES-CBC, one RecipientInfo each) with the pieces of
  ``smime_out``; the outer header copies From, To, Cc, Subject, Date and
  Message-ID (and every other non-MIME field) of the original. Notification
  requests (``Disposition-Notification-To`` and, when asked,
  ``Disposition-Notification-Options: X-DIRECT-FINAL-DESTINATION-DELIVERY=
  optional,true``) are added to the original before wrapping and to the outer
  header, and a Message-ID is added when the original has none.
* ``build_mdn(…)``: an RFC 3798 disposition notification (processed,
  dispatched with the Direct extension field, failed); it carries no text of
  the original (no subject), only its Message-ID.
* ``unwrap(opened)``: the message a mailbox gets from an opened Direct
  message: the wrapped original with the ``X-Phigate-*`` result fields of
  ``inbound.open_message`` (the same as ``smime open``).
* ``read_report(message)``: an incoming MDN or DSN read into a ``Report``.
* ``signer_certificates(raw, identities)``: the certificates in the
  signature of a received Direct message, for the Direct trust check;
  ``domain_signed`` marks a message whose signer the Direct validator bound
  to the From's domain.
"""
from __future__ import annotations

import email.utils
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from gateway.crypto.certstore import Identity
from gateway.crypto.cms_signature import SignatureError, SignedData
from gateway.crypto.inbound import HEADER_DECRYPTED, HEADER_SIGNATURE
from gateway.crypto.smime_entity import canonical_crlf, field_name, split_message
from gateway.crypto.smime_in import DecryptError, decrypt
from gateway.crypto.smime_out import encrypt_entity, sign_entity
from gateway.crypto.smime_parts import Part, PartError, split_signed

FINAL_DELIVERY = "X-DIRECT-FINAL-DESTINATION-DELIVERY"
FINAL_DELIVERY_REQUEST = f"{FINAL_DELIVERY}=optional,true"
_OURS = {HEADER_DECRYPTED.lower().encode(), HEADER_SIGNATURE.lower().encode()}
MDN_DISPOSITIONS = ("processed", "dispatched", "failed", "denied", "displayed", "deleted")


def _field(name: str, value: str) -> bytes:
    return f"{name}: {value}\r\n".encode("ascii", "replace")


def header_value(raw: bytes, name: str) -> str | None:
    """The unfolded value of the top-level header field ``name`` of ``raw``."""
    return Part((split_message(raw).header(name) or b"",), b"").value(name)


def message_id(raw: bytes) -> str | None:
    """The Message-ID of ``raw`` (angle brackets kept), or None."""
    value = header_value(raw, "message-id")
    return value.split()[0] if value else None


def build_direct(raw: bytes, identity: Identity, certificates: Sequence[x509.Certificate], *,
                 cipher: str = "aes128", notify_to: str | None = None,
                 final_delivery: bool = False, hostname: str = "localhost",
                 fallback_id: str | None = None) -> tuple[bytes, str]:
    """(the Direct message, its Message-ID). ``notify_to`` asks for MDNs to
    that address; ``final_delivery`` also asks for the ``dispatched`` one.
    A message without a Message-ID gets ``fallback_id`` (stable across
    retries, so tracking keeps one record), or a new one."""
    split = split_message(raw)
    names = {field_name(f) for f in split.outer}
    added = b""
    msgid = message_id(raw)
    if msgid is None:
        msgid = fallback_id or email.utils.make_msgid(domain=hostname)
        added += _field("Message-ID", msgid)
    if notify_to and b"disposition-notification-to" not in names:
        added += _field("Disposition-Notification-To", f"<{notify_to}>")
    if notify_to and final_delivery and b"disposition-notification-options" not in names:
        added += _field("Disposition-Notification-Options", FINAL_DELIVERY_REQUEST)
    original = split.outer_with() + added + b"MIME-Version: 1.0\r\n" + split.inner
    wrapped = b"Content-Type: message/rfc822\r\n\r\n" + original
    entity = encrypt_entity(sign_entity(wrapped, identity), certificates, cipher)
    return split.outer_with() + added + b"MIME-Version: 1.0\r\n" + entity, msgid


def build_mdn(*, reporter: str, to: str, original_id: str | None, disposition: str,
              hostname: str, final_delivery: bool = False, failure: str = "") -> bytes:
    """An MDN from ``reporter`` (the Direct address that received the
    original) to ``to`` (its Disposition-Notification-To or sender).
    ``final_delivery`` adds the Direct extension field (``dispatched`` only)."""
    boundary = "=_phigate_mdn_" + os.urandom(8).hex()
    text = {"processed": "The message was received and processed by the recipient's gateway.",
            "dispatched": "The message was delivered to the recipient's mailbox.",
            "failed": "The message could not be delivered to the recipient."}[disposition]
    report = [f"Reporting-UA: {hostname}; phigate",
              f"Final-Recipient: rfc822; {reporter}"]
    if original_id:
        report.append(f"Original-Message-ID: {original_id}")
    report.append(f"Disposition: automatic-action/MDN-sent-automatically; {disposition}")
    if failure:
        report.append(f"Failure: {' '.join(failure.split())}")
    if final_delivery and disposition == "dispatched":
        report.append(f"{FINAL_DELIVERY}: ")
    lines = [f"From: <{reporter}>", f"To: <{to}>",
             f"Subject: Disposition notification ({disposition})",
             f"Date: {email.utils.formatdate()}",
             f"Message-ID: {email.utils.make_msgid(domain=hostname)}",
             *([f"In-Reply-To: {original_id}"] if original_id else []),
             "Auto-Submitted: auto-replied", "MIME-Version: 1.0",
             "Content-Type: multipart/report; report-type=disposition-notification;",
             f' boundary="{boundary}"', "",
             f"--{boundary}", "Content-Type: text/plain; charset=us-ascii", "", text, "",
             f"--{boundary}", "Content-Type: message/disposition-notification", "",
             *report, "", f"--{boundary}--", ""]
    return "\r\n".join(lines).encode("ascii", "replace")


def unwrap(message: bytes) -> bytes:
    """``message`` (what ``open_message`` made) with a wrapped original
    (``message/rfc822`` body) taken out: the original's header fields, then
    the result fields, then its body. Anything else comes back unchanged."""
    split = split_message(message)
    part = Part.parse(split.inner)
    if part.content_type()[0] != "message/rfc822":
        return message
    ours = b"".join(f for f in split.outer if field_name(f) in _OURS)
    inner = split_message(part.body)
    headers = b"".join(f for f in inner.outer if field_name(f) not in _OURS)
    return headers + b"MIME-Version: 1.0\r\n" + ours + inner.inner


def signer_certificates(raw: bytes, identities) -> tuple[x509.Certificate, ...]:
    """The certificates carried by the signature of a Direct message (sign,
    then encrypt): decrypted again with ``identities``. Empty when the
    message is not in that shape."""
    try:
        outer = Part.parse(split_message(raw).inner)
        signed = Part.parse(canonical_crlf(decrypt(outer.decoded_body(), identities).content))
        _content, signature = split_signed(signed)
        return SignedData.load(signature.decoded_body()).certificates
    except (PartError, DecryptError, SignatureError):
        return ()


def domain_signed(message: bytes, address: str, revocation: str) -> bytes:
    """``message`` (opened) with its ``X-Phigate-Signature`` field saying
    valid for a signer bound to the From's domain (Direct domain-bound
    certificate), after the Direct validator accepted it."""
    value = f"valid; signer={address.lower()}; trusted=yes; binding=domain"
    if revocation != "good":
        value += f"; revocation={revocation}"
    split = split_message(message)
    wanted = HEADER_SIGNATURE.lower().encode()
    fields = [_field(HEADER_SIGNATURE, value) if field_name(f) == wanted else f
              for f in split.outer]
    return b"".join(fields) + b"MIME-Version: 1.0\r\n" + split.inner


def header_address(raw: bytes, name: str) -> str | None:
    """The single address in header ``name`` of ``raw`` (lower-cased domain), or None."""
    found = [a for _, a in email.utils.getaddresses([header_value(raw, name) or ""]) if "@" in a]
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class Report:
    """An incoming MDN (kind "mdn") or DSN (kind "dsn"), content-free."""
    kind: str
    original_id: str | None
    recipients: tuple[tuple[str, str], ...]   # (final recipient, disposition or DSN action)
    final_delivery: bool = False              # the MDN carries the Direct extension field


def _report_fields(body: bytes) -> list[tuple[str, str]]:
    fields = []
    for line in body.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ").split(b"\r\n"):
        name, sep, value = line.decode("utf-8", "replace").partition(":")
        if sep and name.strip():
            fields.append((name.strip().lower(), value.strip()))
    return fields


def _address(value: str) -> str:
    return value.partition(";")[2].strip().strip("<>") if ";" in value else value.strip("<> ")


def _parts(part: Part) -> list[Part]:
    ctype, params = part.content_type()
    boundary = params.get("boundary")
    if not ctype.startswith("multipart/") or not boundary:
        return []
    delimiter = b"\r\n--" + boundary.encode()
    chunks = (b"\r\n" + part.body).split(delimiter)[1:]
    out = []
    for chunk in chunks:
        if chunk.startswith(b"--"):
            break
        out.append(Part.parse(chunk.partition(b"\r\n")[2]))
    return out


def read_report(message: bytes) -> Report | None:
    """The MDN or DSN in ``message``, None when it is neither."""
    split = split_message(message)
    try:
        top = Part.parse(split.inner)
        ctype, params = top.content_type()
        if ctype != "multipart/report":
            return None
        kind = {"disposition-notification": "mdn",
                "delivery-status": "dsn"}.get(params.get("report-type", "").lower())
        if kind is None:
            return None
        parts = _parts(top)
    except PartError:
        return None
    wanted = "message/disposition-notification" if kind == "mdn" else "message/delivery-status"
    status = next((p for p in parts if p.content_type()[0] == wanted), None)
    if status is None:
        return None
    fields = _report_fields(status.body)
    if kind == "mdn":
        values = dict(fields)
        disposition = values.get("disposition", "").rpartition(";")[2].strip().lower()
        disposition = disposition.partition("/")[0].strip()
        original = values.get("original-message-id")
        recipient = _address(values.get("final-recipient", ""))
        return Report("mdn", original.split()[0] if original else None,
                      ((recipient.lower(), disposition),),
                      any(n == FINAL_DELIVERY.lower() for n, _ in fields))
    recipients, current = [], None
    for name, value in fields:
        if name == "final-recipient":
            current = _address(value).lower()
        elif name == "action" and current:
            recipients.append((current, value.lower()))
    original = None
    for p in parts:
        if p.content_type()[0] in ("message/rfc822", "text/rfc822-headers"):
            body = p.body if p.content_type()[0] == "message/rfc822" else p.body + b"\r\n\r\n"
            original = message_id(body)
    return Report("dsn", original, tuple(recipients))
