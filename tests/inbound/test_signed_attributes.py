"""Signed attributes: only content-type, message-digest and signing-time are
interpreted. A signature whose other signed attributes are unknown, or known
by OID but not decodable (as NSS's Microsoft encryption-key preference is for
asn1crypto), still verifies; the required ones still decide. The SignerInfo
is built here by hand (asn1crypto) and signed with cryptography."""
from __future__ import annotations

import hashlib

import pytest
from asn1crypto import cms, core
from asn1crypto import x509 as ax509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from gateway.crypto.cms_signature import SignedData
from gateway.crypto.verify import TrustSettings, verify_signed
from tests.crypto.pki import TestPKI

CONTENT = b"Content-Type: text/plain\r\n\r\nhello\r\n"
CT, MD = "1.2.840.113549.1.9.3", "1.2.840.113549.1.9.4"


def attribute(oid: str, *values: bytes) -> bytes:
    """DER Attribute ::= SEQUENCE { type OID, values SET OF ANY } from raw DER values."""
    body = core.ObjectIdentifier(oid).dump() + core.SetOf(
        contents=b"".join(values)).untag().dump()
    return b"\x30" + _len(len(body)) + body


def _len(n: int) -> bytes:
    return bytes([n]) if n < 128 else bytes([0x81, n]) if n < 256 else bytes([0x82, n >> 8,
                                                                              n & 255])


def signed_data(signer, attrs: list[bytes]) -> bytes:
    """A detached SignedData over CONTENT with exactly these signed attributes."""
    der_attrs = b"".join(sorted(attrs))
    set_of = b"\x31" + _len(len(der_attrs)) + der_attrs
    signature = signer.key.sign(set_of, padding.PKCS1v15(), hashes.SHA256())
    cert = ax509.Certificate.load(signer.cert.public_bytes(serialization.Encoding.DER))
    si = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": cert.issuer, "serial_number": cert.serial_number}}),
        "digest_algorithm": {"algorithm": "sha256"},
        "signed_attrs": cms.CMSAttributes.load(set_of),
        "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
        "signature": signature})
    sd = cms.SignedData({"version": "v1", "digest_algorithms": [{"algorithm": "sha256"}],
                         "encap_content_info": {"content_type": "data"},
                         "certificates": [cert], "signer_infos": [si]})
    return cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()


@pytest.fixture(scope="module")
def world():
    pki = TestPKI()
    return pki, pki.leaf("os@surgery.test")


def required() -> list[bytes]:
    return [attribute(CT, core.ObjectIdentifier("1.2.840.113549.1.7.1").dump()),
            attribute(MD, core.OctetString(hashlib.sha256(CONTENT).digest()).dump())]


def verdict(world, attrs):
    pki, signer = world
    data = SignedData.load(signed_data(signer, attrs))
    return verify_signed(data, CONTENT, "os@surgery.test", TrustSettings([pki.root.cert]))


def test_required_attributes_only_verify(world):
    assert verdict(world, required()).valid


@pytest.mark.parametrize("extra", [
    attribute("1.3.6.1.4.1.311.16.4", b"\xa0\x03\x02\x01\x05"),      # MS key pref, odd shape
    attribute("1.2.840.113549.1.9.15", b"\x04\x02\xff\xff"),        # SMIMECapabilities, wrong type
    attribute("1.2.840.113549.1.9.16.2.11", b"\x05\x00"),           # encrypKeyPref as NULL
    attribute("1.2.3.4.5.6.7", b"\x0c\x03abc", b"\x02\x01\x07"),    # unknown, two values
], ids=["ms-keypref", "bad-capabilities", "bad-encrypkeypref", "unknown"])
def test_other_attributes_do_not_break_verification(world, extra):
    result = verdict(world, [*required(), extra])
    assert result.valid, result.reason


def test_required_attributes_still_decide(world):
    missing_digest = [required()[0]]
    assert verdict(world, missing_digest).reason == "message digest attribute missing or repeated"
    wrong = [required()[0], attribute(MD, core.OctetString(b"\x00" * 32).dump())]
    assert verdict(world, wrong).reason == "content altered"
    twice = [*required(), attribute(MD, core.OctetString(b"\x00" * 32).dump())]
    assert verdict(world, twice).reason == "message digest attribute missing or repeated"
