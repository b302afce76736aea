"""Check the signature of one CMS SignerInfo (RFC 5652 §5.4, §5.6).

Only the cryptographic part: find the signer's certificate, compare the
message-digest and content-type signed attributes with the content, verify
the signature over the DER SET OF signed attributes (or over the content when
there are none) with RSA PKCS#1 v1.5, RSASSA-PSS or ECDSA. Whether the
certificate deserves trust is ``verify``'s job.

cryptography 50 has no CMS verification API; asn1crypto
parses, cryptography does the maths.

Only the signed attributes RFC 5652 §11 and RFC 8551 §2.5 give a meaning to
here (content-type, message-digest, signing-time) are decoded. Any other
attribute (S/MIME capabilities, Microsoft's and RFC 8551's encryption-key
preference as NSS adds them, …) is covered by the signature but never
interpreted, so an encoding asn1crypto does not know cannot break a valid
signature.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from asn1crypto import cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

# SHA-1 is refused: RFC 8551 §2.1 lets receivers reject it, and collisions are practical.
DIGESTS = {"sha224": hashes.SHA224, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
           "sha512": hashes.SHA512}


class SignatureError(ValueError):
    """Why a SignerInfo does not verify; ``reason`` is short and content-free."""

    def __init__(self, reason: str, signer: x509.Certificate | None = None):
        super().__init__(reason)
        self.reason = reason
        self.signer = signer


@dataclass(frozen=True)
class SignedData:
    """A parsed SignedData: its content (None when detached) and certificates."""
    sd: cms.SignedData
    content_type: str
    content: bytes | None
    certificates: tuple[x509.Certificate, ...]

    @classmethod
    def load(cls, der: bytes) -> SignedData:
        try:
            info = cms.ContentInfo.load(der, strict=True)
            if info["content_type"].native != "signed_data":
                raise SignatureError("not signed data")
            sd = info["content"]
            eci = sd["encap_content_info"]
            content = eci["content"].native if eci["content"].native is not None else None
            certs = tuple(x509.load_der_x509_certificate(c.chosen.dump())
                          for c in (sd["certificates"] or []) if c.name == "certificate")
            if not len(sd["signer_infos"]):
                raise SignatureError("no signer")
            return cls(sd, eci["content_type"].dotted, content, certs)
        except SignatureError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise SignatureError("malformed signature") from exc

    def signer_infos(self) -> list[cms.SignerInfo]:
        return list(self.sd["signer_infos"])


@dataclass(frozen=True)
class CheckedSigner:
    cert: x509.Certificate
    digest: str                      # "sha256" …
    algorithm: str                   # "rsassa_pkcs1v15" | "rsassa_pss" | "ecdsa"
    signing_time: dt.datetime | None


def check_signer(data: SignedData, si: cms.SignerInfo, content: bytes,
                 extra_certs: Sequence[x509.Certificate] = ()) -> CheckedSigner:
    """Verify ``si`` over ``content``; raise SignatureError with the reason."""
    try:
        return _check(data, si, content, extra_certs)
    except SignatureError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise SignatureError("malformed signature") from exc


def _check(data: SignedData, si: cms.SignerInfo, content: bytes,
           extra_certs: Sequence[x509.Certificate]) -> CheckedSigner:
    cert = find_signer_cert(si["sid"], (*data.certificates, *extra_certs))
    if cert is None:
        raise SignatureError("signer certificate missing")
    md = si["digest_algorithm"]["algorithm"].native
    if md not in DIGESTS:
        raise SignatureError(f"digest {md} not accepted", cert)
    hasher = hashes.Hash(DIGESTS[md]())
    hasher.update(content)
    digest = hasher.finalize()
    attrs = si["signed_attrs"]
    signing_time = None
    if isinstance(attrs, core.Void):
        if data.content_type != "1.2.840.113549.1.7.1":       # RFC 5652 §5.3
            raise SignatureError("signed attributes missing", cert)
        tbs = content
    else:
        tbs = b"\x31" + attrs.dump()[1:]                       # [0] IMPLICIT → SET OF
        values = _attributes(tbs)
        if _single(values, "message_digest", cert) != digest:
            raise SignatureError("content altered", cert)
        if _single(values, "content_type", cert) != _type_name(data.content_type):
            raise SignatureError("content type attribute mismatch", cert)
        if "signing_time" in values:
            signing_time = _single(values, "signing_time", cert)
    algorithm = _verify_signature(cert, si, md, tbs)
    return CheckedSigner(cert, md, algorithm, signing_time)


def find_signer_cert(sid: cms.SignerIdentifier,
                     certs: Sequence[x509.Certificate]) -> x509.Certificate | None:
    for cert in certs:
        if sid.name == "issuer_and_serial_number":
            if (cert.serial_number == sid.chosen["serial_number"].native
                    and cert.issuer.public_bytes() == sid.chosen["issuer"].dump()):
                return cert
        else:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            except x509.ExtensionNotFound:
                continue
            if ski.digest == sid.chosen.native:
                return cert
    return None


class _AnyValues(core.SetOf):
    _child_spec = core.Any


class _RawAttribute(core.Sequence):
    """An Attribute whose values stay undecoded until asked for."""
    _fields: ClassVar = [("type", core.ObjectIdentifier), ("values", _AnyValues)]


class _RawAttributes(core.SetOf):
    _child_spec = _RawAttribute


# The only signed attributes interpreted (RFC 5652 §11.1-11.3): OID → (name, value class).
_INTERPRETED = {"1.2.840.113549.1.9.3": ("content_type", cms.ContentType),
                "1.2.840.113549.1.9.4": ("message_digest", core.OctetString),
                "1.2.840.113549.1.9.5": ("signing_time", cms.Time)}


def _attributes(der_set: bytes) -> dict[str, list]:
    """The interpreted attributes of the DER SET OF by name, their values
    decoded; the others skipped."""
    out: dict[str, list] = {}
    for attr in _RawAttributes.load(der_set, strict=True):
        known = _INTERPRETED.get(attr["type"].dotted)
        if known is None:
            continue
        name, spec = known
        out.setdefault(name, []).extend(spec.load(v.dump(), strict=True).native
                                        for v in attr["values"])
    return out


def _single(values: dict[str, list], name: str, cert: x509.Certificate):
    found = values.get(name, [])
    if len(found) != 1:
        raise SignatureError(f"{name.replace('_', ' ')} attribute missing or repeated", cert)
    return found[0]


def _type_name(dotted: str) -> str:
    """asn1crypto's native name for a content type OID ("data", "signed_data" …)."""
    return cms.ContentType.map(dotted)


def _verify_signature(cert: x509.Certificate, si: cms.SignerInfo, md: str, tbs: bytes) -> str:
    alg = si["signature_algorithm"]
    algorithm = alg.signature_algo
    try:
        embedded = alg.hash_algo                  # sha256_rsa etc. name their hash too
    except ValueError:
        embedded = None
    if embedded is not None and algorithm != "rsassa_pss" and embedded != md:
        raise SignatureError("signature hash mismatch", cert)
    key = cert.public_key()
    sig = si["signature"].native
    try:
        if algorithm == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, tbs, padding.PKCS1v15(), DIGESTS[md]())
        elif algorithm == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, tbs, *_pss(alg["parameters"], md, cert))
        elif algorithm == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, tbs, ec.ECDSA(DIGESTS[md]()))
        else:
            raise SignatureError(f"signature algorithm {algorithm} not accepted", cert)
    except InvalidSignature:
        raise SignatureError("bad signature", cert) from None
    return algorithm


def _pss(params, md: str, cert: x509.Certificate):
    pss_md = params["hash_algorithm"]["algorithm"].native
    mgf_md = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
    if pss_md != md or mgf_md not in DIGESTS or params["trailer_field"].native != "trailer_field_bc":
        raise SignatureError("PSS parameters not accepted", cert)
    return (padding.PSS(mgf=padding.MGF1(DIGESTS[mgf_md]()),
                        salt_length=params["salt_length"].native), DIGESTS[md]())
