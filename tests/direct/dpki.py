"""Direct-profile certificates built at test time (on top of tests/crypto/pki.py):
domain-bound (SAN dNSName) and address-bound (SAN rfc822Name) leaves without
EKU, as the conformance tools issue them; CAs with basicConstraints critical
or not; CRL distribution points and AIA caIssuers URLs.

    root = ca("Direct Root")                                  # self-signed
    sub = ca("Direct Sub", issuer=root, crl_url=..., aia_url=...)
    leaf(sub, email="d1@dd.test", crl_url=..., aia_url=...)   # address-bound
    leaf(sub, dns="dd.test")                                  # domain-bound
"""
from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID

from tests.crypto.pki import Issued, _key_usage, _name, make_key

NOW = dt.datetime.now(dt.UTC)


def der(issued: Issued | x509.Certificate) -> bytes:
    cert = issued.cert if isinstance(issued, Issued) else issued
    return cert.public_bytes(Encoding.DER)


def _build(cn: str, key, issuer: Issued | None, *, ca: bool, bc_critical: bool = True,
           san: list[x509.GeneralName] = (), crl_url: str | None = None,
           aia_url: str | None = None, expired: bool = False,
           key_usage: str | None = "both") -> Issued:
    signer_key = issuer.key if issuer else key
    b = (x509.CertificateBuilder()
         .subject_name(_name(cn))
         .issuer_name(issuer.cert.subject if issuer else _name(cn))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW - dt.timedelta(days=400 if expired else 1))
         .not_valid_after(NOW - dt.timedelta(days=1) if expired else NOW + dt.timedelta(days=365))
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             signer_key.public_key()), critical=False))
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                            critical=bc_critical)
    ku = _key_usage("ca" if ca else key_usage)
    if ku is not None:
        b = b.add_extension(ku, critical=True)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    if crl_url:
        b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(crl_url)], relative_name=None,
            reasons=None, crl_issuer=None)]), critical=False)
    if aia_url:
        b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(aia_url))]),
            critical=False)
    return Issued(b.sign(signer_key, hashes.SHA256()), key)


def ca(cn: str, issuer: Issued | None = None, *, bc_critical: bool = True,
       crl_url: str | None = None, aia_url: str | None = None) -> Issued:
    return _build(cn, make_key(), issuer, ca=True, bc_critical=bc_critical,
                  crl_url=crl_url, aia_url=aia_url)


def leaf(issuer: Issued, *, email: str | None = None, dns: str | None = None,
         expired: bool = False, key: str = "rsa2048", key_usage: str | None = "both",
         crl_url: str | None = None, aia_url: str | None = None) -> Issued:
    san: list[x509.GeneralName] = []
    if email:
        san.append(x509.RFC822Name(email))
    if dns:
        san.append(x509.DNSName(dns))
    return _build(email or dns or "no name", make_key(key), issuer, ca=False, san=san,
                  crl_url=crl_url, aia_url=aia_url, expired=expired, key_usage=key_usage)


def crl(issuer: Issued, revoked: list[Issued] = ()) -> x509.CertificateRevocationList:
    b = (x509.CertificateRevocationListBuilder()
         .issuer_name(issuer.cert.subject)
         .last_update(NOW - dt.timedelta(hours=1))
         .next_update(NOW + dt.timedelta(days=7)))
    for item in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                      .serial_number(item.cert.serial_number)
                                      .revocation_date(NOW - dt.timedelta(hours=1)).build())
    return b.sign(issuer.key, hashes.SHA256())
