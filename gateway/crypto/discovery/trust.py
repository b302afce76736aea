"""Direct trust: may this certificate be used for this address?

``DirectTrust.validate(cert, address, purpose=…)`` applies, in this order:
not a CA; inside its validity period; bound to the address (SAN rfc822Name
equal to the address, case-insensitive) or to its domain (SAN dNSName equal
to the domain), with a subject emailAddress, when present, naming the same
address; RSA keys of at least 2048 bits (EC P-256/384/521 accepted); key
usage that allows the purpose (keyEncipherment to encrypt to it,
digitalSignature or nonRepudiation to accept its signature) when the
extension is present; an EKU, when present, that allows e-mail; a path to
the Direct anchors, with missing intermediates fetched from the AIA
caIssuers URLs (a certificate, PEM or DER, or a certs-only PKCS#7);
revocation from the CRLs at the distribution points of every certificate of
the path (``CrlCache``).

Path building is pyca's verifier with the e-mail policy of
``gateway.crypto.verify`` (the receiver of S/MIME uses the same): CA
certificates need basicConstraints cA of ANY criticality (the public Direct
conformance tools' CAs carry it non-critical, which RFC 5280 §4.2.1.9 lets
a relying party accept), keyCertSign when KeyUsage is present, and every
other check of the path stays: name chaining, signatures, validity, path
length, algorithm and key-size floors.

Revocation is soft-fail, as the Direct reference implementation and the
discovery tool do: a certificate listed on a CRL is refused, a certificate
whose CRL cannot be had is accepted with the note "revocation unknown".

The receiver side calls ``validate(signer, from_address, purpose="sign",
intermediates=certificates_of_the_message)`` after checking the CMS
signature itself.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509 import verification as v
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from gateway.crypto.certstore import MIN_RSA_BITS, Purpose, is_ca, san_emails
from gateway.crypto.discovery.cache import Bounded
from gateway.crypto.discovery.crls import CrlCache, http_uris
from gateway.crypto.discovery.fetch import Fetcher, FetchError
from gateway.crypto.revocation import check_chain
from gateway.crypto.verify import email_path_verifier

MAX_AIA_DEPTH = 4
_EMAIL_EKUS = (ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE)
_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


@dataclass(frozen=True)
class TrustVerdict:
    valid: bool
    reason: str                      # why not; for a valid one a note ("revocation unknown") or ""
    binding: str = ""                # "address" | "domain" when bound
    chain: tuple[x509.Certificate, ...] = ()    # leaf first, anchor last (when a path was found)
    revocation: str = "not checked"  # good | revoked | unknown | not checked


def split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.strip().strip("<>").rpartition("@")
    return local, domain.lower().rstrip(".")


def binding(cert: x509.Certificate, address: str) -> str | None:
    """"address" when a SAN rfc822Name is the address, "domain" when a SAN
    dNSName is its domain (an address without ``@`` is a domain), else None."""
    local, domain = split_address(address)
    if local and address.strip().strip("<>").lower() in san_emails(cert):
        return "address"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    names = {n.lower().rstrip(".") for n in san.get_values_for_type(x509.DNSName)}
    return "domain" if domain in names else None


def _leaf_problem(cert: x509.Certificate, address: str, purpose: Purpose,
                  now: dt.datetime) -> str | None:
    if is_ca(cert):
        return "a CA certificate, not an end entity"
    if now > cert.not_valid_after_utc:
        return "expired"
    if now < cert.not_valid_before_utc:
        return "not yet valid"
    bound = binding(cert, address)
    if bound is None:
        return "bound to neither the address nor its domain (SAN)"
    emails = [str(a.value).lower()
              for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)]
    if bound == "address" and any(e not in san_emails(cert) for e in emails):
        return "subject emailAddress differs from the SAN"
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return f"RSA key of {key.key_size} bits (at least {MIN_RSA_BITS} required)"
    elif not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, _CURVES)):
        return "unsupported key type"
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    if purpose == "encrypt" and not isinstance(key, rsa.RSAPublicKey):
        return "not an RSA key (Direct encryption uses RSA key transport)"
    if ku is not None and purpose == "encrypt" and not ku.key_encipherment:
        return "key usage does not allow encryption"
    if ku is not None and purpose == "sign" and not (ku.digital_signature or ku.content_commitment):
        return "key usage does not allow signing"
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if not any(oid in eku for oid in _EMAIL_EKUS):
            return "extended key usage does not allow e-mail"
    except x509.ExtensionNotFound:
        pass
    return None


def certificates_in(data: bytes) -> list[x509.Certificate]:
    """Certificates in a DER or PEM certificate, or a certs-only PKCS#7 (DER or PEM)."""
    loaders = (x509.load_der_x509_certificate, pkcs7.load_der_pkcs7_certificates)
    if b"-----BEGIN" in data:
        if b"PKCS7" in data:
            loaders = (pkcs7.load_pem_pkcs7_certificates,)
        else:
            return _pem_certificates(data)
    for load in loaders:
        try:
            found = load(data)
        except ValueError:
            continue
        return list(found) if isinstance(found, list) else [found]
    return []


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return []


class DirectTrust:
    def __init__(self, anchors: Sequence[x509.Certificate], fetcher: Fetcher, crls: CrlCache):
        self.anchors = list(anchors)
        self._fetcher = fetcher
        self._crls = crls
        self._aia: dict[str, list[x509.Certificate]] = Bounded(1000)

    async def validate(self, cert: x509.Certificate, address: str, *,
                       purpose: Purpose = "encrypt",
                       intermediates: Sequence[x509.Certificate] = (),
                       now: dt.datetime | None = None) -> TrustVerdict:
        now = now or dt.datetime.now(dt.UTC)
        problem = _leaf_problem(cert, address, purpose, now)
        if problem:
            return TrustVerdict(False, problem)
        bound = binding(cert, address) or ""
        chain = await self._path(cert, list(intermediates), now)
        if chain is None:
            return TrustVerdict(False, "no path to a Direct trust anchor", bound)
        crls = [crl for c in chain[:-1] for crl in await self._crls.for_certificate(c, now)]
        status = check_chain(chain, crls, now)
        if status.status == "revoked":
            return TrustVerdict(False, "revoked", bound, tuple(chain), "revoked")
        note = "revocation unknown (no current CRL)" if status.status == "unknown" else ""
        return TrustVerdict(True, note, bound, tuple(chain), status.status)

    async def _path(self, cert: x509.Certificate, pool: list[x509.Certificate],
                    now: dt.datetime) -> list[x509.Certificate] | None:
        if not self.anchors:
            return None
        if cert in self.anchors:
            return [cert]
        await self._complete_by_aia(cert, pool)
        try:
            return list(email_path_verifier(self.anchors, now).verify(
                cert, [c for c in pool if c != cert]).chain)
        except (v.VerificationError, ValueError):
            return None

    async def _complete_by_aia(self, cert: x509.Certificate, pool: list[x509.Certificate]) -> None:
        """Follow caIssuers from ``cert`` upwards while the issuer is neither an
        anchor nor already in ``pool``."""
        current = cert
        for _ in range(MAX_AIA_DEPTH):
            known = [c for c in (*self.anchors, *pool) if c.subject == current.issuer]
            if any(c in self.anchors for c in known):
                return
            if not known:
                fetched = await self._ca_issuers(current)      # a .p7c may hold more of the path
                pool.extend(c for c in fetched if c not in pool)
                known = [c for c in fetched if c.subject == current.issuer]
            if not known or known[0].subject == known[0].issuer:
                return
            current = known[0]

    async def _ca_issuers(self, cert: x509.Certificate) -> list[x509.Certificate]:
        found: list[x509.Certificate] = []
        for url in http_uris(cert, x509.AuthorityInformationAccess,
                             AuthorityInformationAccessOID.CA_ISSUERS):
            if url not in self._aia:
                try:
                    self._aia[url] = certificates_in(await self._fetcher.get(url))
                except FetchError:
                    continue          # not cached: tried again next time
            found += self._aia[url]
        return found
