"""Verify S/MIME SignedData, detached (multipart/signed) or opaque, end to end.

For each SignerInfo until one passes: the CMS signature (``cms_signature``),
then the signer's certificate: not a CA, RSA keys of at least 2048 bits,
valid now (and at its signingTime when the signer states one), KeyUsage
allows signing, EKU emailProtection
(when the extension is present it must name it; when absent, only if
``require_email_protection``), a path to one of the trust anchors
(``cryptography.x509.verification``, intermediates from the message and the
store), revocation from CRLs (``revocation``; ``hard`` fails when a
certificate of the path has no current CRL) and finally the binding of the
signer to the From address (SAN rfc822Name; the subject emailAddress only for
certificates without one, RFC 8550 §3).

Why this is hand-written rather than pyHanko: docs/crypto-verification.md.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import verification as v
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.crypto.certstore import MIN_RSA_BITS, cert_emails, fingerprint, is_ca
from gateway.crypto.cms_signature import CheckedSigner, SignatureError, SignedData, check_signer
from gateway.crypto.revocation import Mode, check_chain

_EMAIL_EKUS = (ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE)


@dataclass(frozen=True)
class TrustSettings:
    """What decides trust in a signer: anchors, extra intermediates, CRLs, policy."""
    anchors: Sequence[x509.Certificate]
    intermediates: Sequence[x509.Certificate] = ()
    crls: Sequence[x509.CertificateRevocationList] = ()
    require_email_protection: bool = False
    revocation: Mode = "soft"
    now: dt.datetime | None = None

    def at(self) -> dt.datetime:
        return self.now or dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class SignatureVerdict:
    valid: bool
    reason: str = ""                           # short, content-free; "" when valid
    signer: str | None = None                  # signer address (From when bound)
    fingerprint: str | None = None             # SHA-256 of the signer certificate
    trusted: bool = False                      # a path to a trust anchor was found
    revocation: str = "not checked"            # good | revoked | unknown | not checked
    details: dict = field(default_factory=dict)   # digest, algorithm, chain length

    def as_dict(self) -> dict:
        return {"valid": self.valid, "reason": self.reason, "signer": self.signer,
                "fingerprint": self.fingerprint, "trusted": self.trusted,
                "revocation": self.revocation, **self.details}


def verify_signed(data: SignedData, detached: bytes | None, from_address: str | None,
                  trust: TrustSettings) -> SignatureVerdict:
    """``detached``: the exact bytes of a multipart/signed's first part, or None
    for opaque signed-data (the content is then the encapsulated one)."""
    if detached is not None and data.content is not None:
        return SignatureVerdict(False, "detached signature carries content")
    content = data.content if detached is None else detached
    if content is None:
        return SignatureVerdict(False, "signed data without content")
    return _verify(data, content, from_address, trust)


def _verify(data: SignedData, content: bytes, from_address: str | None,
            trust: TrustSettings) -> SignatureVerdict:
    first: SignatureVerdict | None = None
    for si in data.signer_infos():
        try:
            signer = check_signer(data, si, content, trust.intermediates)
        except SignatureError as exc:
            verdict = _failed(exc.reason, exc.signer)
        else:
            verdict = _judge(signer, data.certificates, from_address, trust)
        if verdict.valid:
            return verdict
        first = first or verdict
    return first or SignatureVerdict(False, "no signer")


def _failed(reason: str, cert: x509.Certificate | None, **kw) -> SignatureVerdict:
    if cert is None:
        return SignatureVerdict(False, reason, **kw)
    return SignatureVerdict(False, reason, _first_address(cert), fingerprint(cert), **kw)


def _judge(signer: CheckedSigner, message_certs: Sequence[x509.Certificate],
           from_address: str | None, trust: TrustSettings) -> SignatureVerdict:
    cert, now = signer.cert, trust.at()
    problem = _certificate_problem(signer, now, trust.require_email_protection)
    if problem:
        return _failed(problem, cert)
    try:
        chain = _verifier(trust.anchors, now).verify(
            cert, [c for c in (*message_certs, *trust.intermediates) if c != cert]).chain
    except (v.VerificationError, ValueError):      # ValueError: no anchors at all
        return _failed("signer not trusted", cert)
    status = check_chain(chain, trust.crls, now)
    if status.status == "revoked":
        return _failed("signer revoked", cert, trusted=True, revocation="revoked")
    if status.status == "unknown" and trust.revocation == "hard":
        return _failed("revocation status unknown", cert, trusted=True, revocation="unknown")
    addresses = signer_addresses(cert)
    if from_address is None or from_address.lower() not in addresses:
        return _failed("signer address does not match From", cert, trusted=True,
                       revocation=status.status)
    return SignatureVerdict(True, "", from_address.lower(), fingerprint(cert), True,
                            status.status, {"digest": signer.digest,
                                            "algorithm": signer.algorithm,
                                            "chain_length": len(chain)})


def _certificate_problem(signer: CheckedSigner, now: dt.datetime,
                         require_email_protection: bool) -> str | None:
    cert = signer.cert
    if is_ca(cert):
        return "signer certificate is a CA"
    if now > cert.not_valid_after_utc:
        return "signer certificate expired"
    if now < cert.not_valid_before_utc:
        return "signer certificate not yet valid"
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return "signer key too weak"
    when = signer.signing_time
    if when is not None and not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        return "signing time outside certificate validity"
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not (ku.digital_signature or ku.content_commitment):
            return "key usage does not allow signing"
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if not any(oid in eku for oid in _EMAIL_EKUS):
            return "no emailProtection EKU"
    except x509.ExtensionNotFound:
        if require_email_protection:
            return "no emailProtection EKU"
    return None


def signer_addresses(cert: x509.Certificate) -> tuple[str, ...]:
    """SAN rfc822Names (lower case); the subject emailAddress only when there
    are none (``certstore.cert_emails``, the rule outbound uses too)."""
    return cert_emails(cert)


def _first_address(cert: x509.Certificate) -> str | None:
    found = signer_addresses(cert)
    return found[0] if found else None


def _ca_basic_constraints(policy, cert, bc: x509.BasicConstraints) -> None:
    if not bc.ca:
        raise ValueError("issuer is not a CA")


def _ca_key_usage(policy, cert, ku: x509.KeyUsage | None) -> None:
    if ku is not None and not ku.key_cert_sign:
        raise ValueError("issuer key usage lacks keyCertSign")


def _verifier(anchors: Sequence[x509.Certificate], now: dt.datetime):
    """Path building for e-mail certificates. The WebPKI CA profile would turn
    away many practice and HISP CAs, so CAs need only basicConstraints cA and
    (when KeyUsage is present) keyCertSign; the end entity was checked above."""
    ca = (v.ExtensionPolicy.permit_all()
          .require_present(x509.BasicConstraints, v.Criticality.AGNOSTIC, _ca_basic_constraints)
          .may_be_present(x509.KeyUsage, v.Criticality.AGNOSTIC, _ca_key_usage))
    return (v.PolicyBuilder().store(v.Store(list(anchors))).time(now)
            .extension_policies(ca_policy=ca, ee_policy=v.ExtensionPolicy.permit_all())
            .build_client_verifier())


# Direct trust (``gateway.crypto.discovery.trust``) builds paths with this same
# policy: basicConstraints of any criticality, as the conformance tools' CAs carry it.
email_path_verifier = _verifier
