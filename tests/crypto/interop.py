"""Shared pieces of the interop tests with independent S/MIME implementations
(GnuPG's ``gpgsm``, NSS's ``cmsutil``): a partner and a practice under one
test root, MIME wrappers for the raw CMS those tools write, and what phigate
itself sends, cut back into the DER the tools read.

    w = Partners.build()
    raw = w.detached(content, signature_der)        # multipart/signed from the partner
    raw = w.pkcs7_mime(der, "enveloped-data")       # application/pkcs7-mime
    result = w.open(raw)                            # open_message as the daemon would
    der = w.phigate_sends()                         # enveloped DER, signed entity inside
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from gateway.crypto.certstore import Identity
from gateway.crypto.inbound import OpenResult, open_message
from gateway.crypto.smime_entity import split_message
from gateway.crypto.smime_out import sign_and_encrypt
from gateway.crypto.smime_parts import Part, split_signed
from tests.crypto.pki import Issued, TestPKI

PARTNER = "os@surgery.test"
PRACTICE = "dr.lee@smile.test"
CONTENT = (b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           b"Referral, tooth #30, D3330.\r\nSecond line.\r\n")
OUTER = (f"From: Oral Surgeon <{PARTNER}>\r\nTo: {PRACTICE}\r\nSubject: Referral\r\n"
         "Date: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <interop-1@surgery.test>\r\n"
         "MIME-Version: 1.0\r\n").encode()


def legacy_p12(who: Issued, name: str, password: bytes) -> bytes:
    """PKCS#12 with 3DES/SHA-1 protection: GnuPG 2.2 cannot read the AES one."""
    enc = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(2048)
           .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
           .hmac_hash(hashes.SHA1()).build(password))
    return pkcs12.serialize_key_and_certificates(name.encode(), who.key, who.cert, None, enc)


def b64(der: bytes) -> bytes:
    return base64.encodebytes(der).replace(b"\n", b"\r\n")


@dataclass
class Partners:
    pki: TestPKI
    partner: Issued                  # signs what comes in, decrypts what goes out
    practice: Issued                 # phigate's identity

    @classmethod
    def build(cls) -> Partners:
        pki = TestPKI()
        return cls(pki, pki.leaf(PARTNER), pki.leaf(PRACTICE))

    @property
    def identity(self) -> Identity:
        return Identity("@smile.test", self.practice.cert, self.practice.key)

    def detached(self, content: bytes, signature: bytes) -> bytes:
        return (OUTER + b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
                b'\r\n micalg=sha-256; boundary="sig-b"\r\n\r\n--sig-b\r\n' + content
                + b"\r\n--sig-b\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(signature) + b"--sig-b--\r\n")

    def pkcs7_mime(self, der: bytes, smime_type: str) -> bytes:
        return (OUTER + b"Content-Type: application/pkcs7-mime; smime-type="
                + smime_type.encode() + b"; name=smime.p7m\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(der))

    def open(self, raw: bytes) -> OpenResult:
        return open_message(raw, identities=[self.identity], anchors=[self.pki.root.cert])

    def phigate_sends(self, cipher: str = "aes256") -> bytes:
        """The enveloped DER phigate sends to the partner (signed, then encrypted)."""
        raw = (f"From: {PRACTICE}\r\nTo: {PARTNER}\r\nSubject: Reply\r\n"
               "MIME-Version: 1.0\r\n").encode() + CONTENT
        out = sign_and_encrypt(raw, self.identity, [self.partner.cert], cipher=cipher)
        return Part.parse(split_message(out).inner).decoded_body()


def signed_parts(entity: bytes) -> tuple[bytes, bytes]:
    """(signed content, signature DER) of a multipart/signed entity."""
    content, signature = split_signed(Part.parse(entity))
    return content, signature.decoded_body()


def assert_valid(result: OpenResult, *, decrypted: str) -> None:
    """A valid, trusted signature by the partner, and the expected decryption."""
    verdict = result.verdict()
    assert verdict["decrypted"] == decrypted, verdict
    assert verdict["signature"] == "valid", verdict
    assert verdict["signature_signer"] == PARTNER
    assert verdict["signature_trusted"] is True
    assert b"Second line." in result.message
