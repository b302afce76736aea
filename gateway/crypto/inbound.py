"""Open an inbound S/MIME message: decrypt, verify, and say so in headers.

``open_message(raw, identities=…, anchors=…)`` first removes any
``X-Phigate-Decrypted`` / ``X-Phigate-Signature`` fields (at every layer, so
a sender cannot forge them), then peels layers: ``application/pkcs7-mime``
enveloped or authEnveloped data is decrypted with the practice identity a
RecipientInfo names, ``multipart/signed`` and opaque signed-data are
unwrapped, in any nesting (sign then encrypt, encrypt then sign, triple wrap)
up to ``MAX_LAYERS``. Header fields carried inside a layer (a protected
Subject, say) replace the outer fields of the same name.

Signatures are verified once every layer is open, against the From of the
opened message (what the mail client will show). The opened message gets

    X-Phigate-Decrypted: yes | no | failed; reason=<short reason>
    X-Phigate-Signature: valid; signer=<addr>; trusted=yes | invalid; reason=<…> | none

and ``OpenResult.verdict()`` gives the same as content-free data for the
audit log (no subject, no body). Nothing raises: every problem is a verdict.
The work is CPU-bound and synchronous; the daemon runs it in a thread.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import getaddresses
from pathlib import Path

from asn1crypto import cms
from cryptography import x509

from gateway.audit import get_logger
from gateway.crypto.certstore import fingerprint
from gateway.crypto.cms_signature import SignatureError, SignedData
from gateway.crypto.revocation import Mode, load_crl_dir
from gateway.crypto.smime_entity import canonical_crlf, field_name, split_message
from gateway.crypto.smime_in import ENVELOPED_TYPES, DecryptError, DecryptionIdentity, decrypt
from gateway.crypto.smime_parts import Part, PartError, split_signed
from gateway.crypto.verify import SignatureVerdict, TrustSettings, verify_signed

HEADER_DECRYPTED = "X-Phigate-Decrypted"
HEADER_SIGNATURE = "X-Phigate-Signature"
_OURS = {HEADER_DECRYPTED.lower().encode(), HEADER_SIGNATURE.lower().encode()}
MAX_LAYERS = 6
_PKCS7_MIME = ("application/pkcs7-mime", "application/x-pkcs7-mime")
_UNSAFE = re.compile(r"[^\x21-\x3a\x3c-\x7e ]")      # printable ASCII, no ';', no CR/LF
log = get_logger(__name__)


@dataclass
class OpenResult:
    message: bytes                   # the opened message, ready for a mailbox
    content: bytes                   # the innermost entity exactly as unwrapped
    decrypted: str = "no"            # yes | no | failed
    decrypt_reason: str = ""
    decrypt_details: dict = field(default_factory=dict)
    signatures: list[SignatureVerdict] = field(default_factory=list)   # outermost first
    layers: list[str] = field(default_factory=list)

    @property
    def signature(self) -> SignatureVerdict | None:
        """The verdict that counts: the first invalid one, else the innermost."""
        bad = [s for s in self.signatures if not s.valid]
        return bad[0] if bad else (self.signatures[-1] if self.signatures else None)

    def signature_status(self) -> str:
        sig = self.signature
        return "none" if sig is None else "valid" if sig.valid else "invalid"

    def verdict(self) -> dict:
        """Content-free summary for the audit log and ``smime open --json``."""
        sig = self.signature
        return {"decrypted": self.decrypted, "decrypt_reason": self.decrypt_reason,
                **self.decrypt_details, "signature": self.signature_status(),
                **({} if sig is None else {f"signature_{k}": v for k, v in sig.as_dict().items()
                                           if k != "valid"}),
                "layers": list(self.layers)}

    def audit_events(self) -> list[tuple[str, dict]]:
        """(event, fields) pairs within ``gateway.audit.ALLOWED_FIELDS``; add queue_id."""
        events = []
        if self.decrypted != "no":
            events.append(("decrypted", {"status": self.decrypted, "reason": self.decrypt_reason,
                                         "cert_fingerprint": self.decrypt_details.get(
                                             "recipient_fingerprint")}))
        sig = self.signature
        if sig is not None:
            events.append(("verified", {"status": self.signature_status(), "reason": sig.reason,
                                        "signer": sig.signer, "trusted": sig.trusted,
                                        "cert_fingerprint": sig.fingerprint,
                                        "mode": sig.revocation}))
        return events


def open_message(raw: bytes, *, identities: Sequence[DecryptionIdentity],
                 anchors: Sequence[x509.Certificate],
                 intermediates: Sequence[x509.Certificate] = (),
                 crls: Sequence[x509.CertificateRevocationList] = (),
                 crl_dir: Path | None = None,
                 require_email_protection: bool = False, revocation: Mode = "soft",
                 now: dt.datetime | None = None) -> OpenResult:
    """Decrypt and verify ``raw``; see the module docstring. Never raises.
    CRLs are ``crls`` plus every CRL file in ``crl_dir`` (the CRL cache)."""
    trust = TrustSettings(tuple(anchors), tuple(intermediates),
                          (*crls, *load_crl_dir(crl_dir)), require_email_protection,
                          revocation, now)
    try:
        return _Opener(identities, trust).open(raw)
    except Exception as exc:  # noqa: BLE001 — a verdict, never a crash; log the type only
        log.error("smime_open_failed", error=type(exc).__name__)
        split = split_message(raw)
        headers = [f for f in split.outer if field_name(f) not in _OURS]
        result = OpenResult(b"", raw, "failed", "internal error")
        result.message = _assemble(headers, split.inner, result)
        return result


class _Opener:
    def __init__(self, identities: Sequence[DecryptionIdentity], trust: TrustSettings):
        self.identities = identities
        self.trust = trust
        self.pending: list[tuple[SignedData, bytes | None]] = []
        self.early: list[SignatureVerdict] = []     # signatures unreadable while peeling

    def open(self, raw: bytes) -> OpenResult:
        split = split_message(raw)
        headers = [f for f in split.outer if field_name(f) not in _OURS]
        entity = split.inner
        result = OpenResult(b"", entity)
        for _ in range(MAX_LAYERS):
            inner = self._peel(Part.parse(entity), result)
            if inner is None:
                break
            result.content = inner
            nested = split_message(inner)
            names = {field_name(f) for f in nested.outer}
            headers = [f for f in headers if field_name(f) not in names]
            headers += [f for f in nested.outer if field_name(f) not in _OURS]
            entity = nested.inner
        from_address = _from_address(headers)
        result.signatures = self.early + [verify_signed(data, detached, from_address, self.trust)
                                          for data, detached in self.pending]
        result.message = _assemble(headers, entity, result)
        return result

    def _peel(self, part: Part, result: OpenResult) -> bytes | None:
        """The next inner entity, or None when this part is not (usable) S/MIME."""
        ctype, params = part.content_type()
        if ctype == "multipart/signed":
            return self._detached(part, result)
        if ctype not in _PKCS7_MIME:
            return None
        smime_type = params.get("smime-type", "").lower()
        try:
            der = part.decoded_body()
        except PartError:
            der = b""
        kind = _content_type(der) or ("signed_data" if smime_type == "signed-data"
                                      else "enveloped_data")
        if kind in ENVELOPED_TYPES:
            return self._decrypt(der, result)
        if kind == "signed_data":
            return self._opaque(der, result)
        return None                                   # certs-only, compressed …

    def _decrypt(self, der: bytes, result: OpenResult) -> bytes | None:
        try:
            opened = decrypt(der, self.identities)
        except DecryptError as exc:
            result.decrypted, result.decrypt_reason = "failed", exc.reason
            return None
        result.decrypted, result.decrypt_reason = "yes", ""
        result.decrypt_details = {"cipher": opened.cipher, "key_transport": opened.key_transport,
                                  "recipient_fingerprint": fingerprint(opened.recipient)}
        result.layers.append(f"encrypted:{opened.cipher}")
        return canonical_crlf(opened.content)

    def _opaque(self, der: bytes, result: OpenResult) -> bytes | None:
        try:
            data = SignedData.load(der)
        except SignatureError as exc:
            self.early.append(SignatureVerdict(False, exc.reason))
            return None
        if data.content is None:
            self.early.append(SignatureVerdict(False, "signed data without content"))
            return None
        self.pending.append((data, None))
        result.layers.append("signed:opaque")
        return canonical_crlf(data.content)

    def _detached(self, part: Part, result: OpenResult) -> bytes | None:
        try:
            content, signature = split_signed(part)
            data = SignedData.load(signature.decoded_body())
        except PartError:
            self.early.append(SignatureVerdict(False, "malformed multipart/signed"))
            return None
        except SignatureError as exc:
            self.early.append(SignatureVerdict(False, exc.reason))
            return None
        self.pending.append((data, content))
        result.layers.append("signed:detached")
        return content


def _content_type(der: bytes) -> str | None:
    """The ContentInfo type of ``der`` ("enveloped_data" …), None if unreadable."""
    try:
        return cms.ContentInfo.load(der)["content_type"].native
    except (ValueError, TypeError, KeyError):
        return None


def _from_address(headers: Sequence[bytes]) -> str | None:
    """The single From address, or None (missing, several, or unparsable)."""
    values = [Part((f,), b"").value("from") for f in headers if field_name(f) == b"from"]
    addresses = [a for _, a in getaddresses(values) if "@" in a]
    return addresses[0] if len(values) == 1 and len(addresses) == 1 else None


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)


def _assemble(headers: Sequence[bytes], entity: bytes, result: OpenResult) -> bytes:
    decrypted = result.decrypted
    if result.decrypt_reason:
        decrypted += f"; reason={_safe(result.decrypt_reason)}"
    sig = result.signature
    if sig is None:
        signature = "none"
    elif sig.valid:
        signature = f"valid; signer={_safe(sig.signer or '')}; trusted=yes"
        if sig.revocation != "good":
            signature += f"; revocation={sig.revocation}"
    else:
        signature = f"invalid; reason={_safe(sig.reason)}"
        if sig.signer:
            signature += f"; signer={_safe(sig.signer)}"
    ours = (f"{HEADER_DECRYPTED}: {decrypted}\r\n{HEADER_SIGNATURE}: {signature}\r\n")
    return b"".join(headers) + b"MIME-Version: 1.0\r\n" + ours.encode("ascii") + entity
