"""A throw-away PKI built at test time with ``cryptography`` (nothing committed).

    pki = TestPKI()                                   # root CA "Test Root CA"
    sub = pki.intermediate("Test Intermediate CA")    # signed by the root
    bob = pki.leaf("bob@lab.test", issuer=sub)        # RSA 2048, KU sig+enc, EKU emailProtection
    pki.leaf("x@y.test", key="ec256", eku=None)       # EC P-256, no EKU extension
    pki.leaf("x@y.test", eku=[ExtendedKeyUsageOID.SERVER_AUTH])   # wrong EKU
    pki.leaf("x@y.test", key_usage="sign")            # digitalSignature only
    pki.leaf("x@y.test", expired=True)                # validity ended yesterday
    crl = pki.crl(sub, revoked=[bob.cert.serial_number])
    write_pem(path, bob.cert, sub.cert); write_der(path, bob.cert); write_p7(path, [bob.cert])
    write_p12(path, bob, b"pw", chain=[sub.cert]); write_crl(path, crl)
    bob.write(tmp_path, "bob")  → (bob.pem, bob.key)

Every ``Issued`` keeps its private key so tests can hand it to
``openssl cms -decrypt`` or to the store as a practice identity.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

EMAIL = ExtendedKeyUsageOID.EMAIL_PROTECTION


def make_key(kind: str = "rsa2048"):
    """``rsa2048``, ``rsa3072``, ``rsa4096``, ``rsa1024`` (weak), ``ec256``, ``ec384``."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    curves = {"ec256": ec.SECP256R1(), "ec384": ec.SECP384R1(), "ec521": ec.SECP521R1()}
    return ec.generate_private_key(curves[kind])


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "phigate tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_usage(kind: str | None) -> x509.KeyUsage | None:
    if kind is None:
        return None
    flags = {"digital_signature": kind in ("both", "sign", "ca"),
                 "content_commitment": False,
                 "key_encipherment": kind in ("both", "encrypt"),
                 "data_encipherment": False, "key_agreement": False,
                 "key_cert_sign": kind == "ca", "crl_sign": kind == "ca",
                 "encipher_only": False, "decipher_only": False}
    return x509.KeyUsage(**flags)


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: object                      # the private key

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None) -> bytes:
        enc = (serialization.BestAvailableEncryption(password) if password
               else serialization.NoEncryption())
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8, enc)

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write ``name.pem`` (certificate) and ``name.key`` (unencrypted PKCS#8)."""
        cert_path, key_path = Path(directory) / f"{name}.pem", Path(directory) / f"{name}.key"
        cert_path.write_bytes(self.cert_pem())
        key_path.write_bytes(self.key_pem())
        return cert_path, key_path


class TestPKI:
    """A root CA plus helpers to issue intermediates, leaves and CRLs."""

    __test__ = False                 # not a pytest class

    def __init__(self, name: str = "Test Root CA", *, key: str = "rsa2048",
                 now: dt.datetime | None = None):
        self.now = now or dt.datetime.now(dt.UTC)
        root_key = make_key(key)
        self.root = Issued(self._build(_name(name), root_key, None, root_key, ca=True,
                                       key_usage="ca", eku=None, san=()), root_key)

    def _build(self, subject: x509.Name, subject_key, issuer: Issued | None, signing_key, *,
               ca: bool, key_usage: str | None, eku: Sequence | None, san: Iterable[str],
               not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
               crl_url: str | None = None, path_length: int | None = None) -> x509.Certificate:
        pub = subject_key.public_key()
        issuer_pub = issuer.key.public_key() if issuer else pub
        b = (x509.CertificateBuilder()
             .subject_name(subject)
             .issuer_name(issuer.cert.subject if issuer else subject)
             .public_key(pub)
             .serial_number(x509.random_serial_number())
             .not_valid_before(not_before or self.now - dt.timedelta(days=1))
             .not_valid_after(not_after or self.now + dt.timedelta(days=365))
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_pub),
                            critical=False)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
                            critical=True))
        ku = _key_usage(key_usage)
        if ku is not None:
            b = b.add_extension(ku, critical=True)
        if eku is not None:
            b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        san = list(san)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(a) for a in san]),
                                critical=False)
        if crl_url:
            b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(crl_url)], relative_name=None,
                reasons=None, crl_issuer=None)]), critical=False)
        return b.sign(signing_key, hashes.SHA256())

    def intermediate(self, name: str = "Test Intermediate CA", *, issuer: Issued | None = None,
                     key: str = "rsa2048", crl_url: str | None = None) -> Issued:
        issuer = issuer or self.root
        k = make_key(key)
        cert = self._build(_name(name), k, issuer, issuer.key, ca=True, key_usage="ca", eku=None,
                           san=(), crl_url=crl_url, path_length=0)
        return Issued(cert, k)

    def leaf(self, email: str | Sequence[str] | None, *, issuer: Issued | None = None,
             key: str = "rsa2048", eku: Sequence | None = (EMAIL,),
             key_usage: str | None = "both", expired: bool = False,
             not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
             cn: str | None = None, crl_url: str | None = None) -> Issued:
        """An end-entity certificate. ``email``: SAN rfc822Name(s) (None: no SAN).
        ``eku``: list of OIDs, or None for no EKU extension. ``key_usage``:
        "both" (digitalSignature + keyEncipherment), "sign", "encrypt" or None."""
        issuer = issuer or self.root
        emails = [email] if isinstance(email, str) else list(email or ())
        if expired:
            not_before = self.now - dt.timedelta(days=400)
            not_after = self.now - dt.timedelta(days=1)
        k = make_key(key)
        cert = self._build(_name(cn or (emails[0] if emails else "no address")), k, issuer,
                           issuer.key, ca=False, key_usage=key_usage, eku=eku, san=emails,
                           not_before=not_before, not_after=not_after, crl_url=crl_url)
        return Issued(cert, k)

    def crl(self, issuer: Issued, revoked: Iterable[int] = (), *,
            next_update: dt.datetime | None = None, number: int = 1
            ) -> x509.CertificateRevocationList:
        """A CRL signed by ``issuer`` revoking the given serial numbers."""
        b = (x509.CertificateRevocationListBuilder()
             .issuer_name(issuer.cert.subject)
             .last_update(self.now - dt.timedelta(hours=1))
             .next_update(next_update or self.now + dt.timedelta(days=7))
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 issuer.key.public_key()), critical=False)
             .add_extension(x509.CRLNumber(number), critical=False))
        for serial in revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(self.now - dt.timedelta(hours=1)).build())
        return b.sign(issuer.key, hashes.SHA256())


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    Path(path).write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return Path(path)


def write_der(path: Path, cert: x509.Certificate) -> Path:
    Path(path).write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return Path(path)


def write_p7(path: Path, certs: Sequence[x509.Certificate], *, pem: bool = False) -> Path:
    """A certs-only PKCS#7 bundle (.p7b / .p7c), DER or PEM."""
    enc = serialization.Encoding.PEM if pem else serialization.Encoding.DER
    Path(path).write_bytes(pkcs7.serialize_certificates(list(certs), enc))
    return Path(path)


def write_p12(path: Path, issued: Issued, password: bytes | None,
              chain: Sequence[x509.Certificate] = ()) -> Path:
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    Path(path).write_bytes(pkcs12.serialize_key_and_certificates(
        b"phigate test", issued.key, issued.cert, list(chain) or None, enc))
    return Path(path)


def write_crl(path: Path, crl: x509.CertificateRevocationList, *, pem: bool = False) -> Path:
    enc = serialization.Encoding.PEM if pem else serialization.Encoding.DER
    Path(path).write_bytes(crl.public_bytes(enc))
    return Path(path)
