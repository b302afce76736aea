"""Outbound S/MIME (RFC 8551): sign, then encrypt; or sign only.

* ``sign_and_encrypt(raw, identity, recipients)``: the inner MIME entity
  (``smime_entity.split_message``) is signed with SHA-256 as a detached
  ``multipart/signed`` (``application/pkcs7-signature``, the identity's chain
  included), and that whole entity is encrypted (AES-256-CBC or AES-128-CBC;
  RSA key transport, one RecipientInfo per certificate) into an
  ``application/pkcs7-mime; smime-type=enveloped-data`` body. The outer
  headers (From, To, Cc, Date, Message-ID, …) stay; with ``neutral_subject``
  the outer Subject is replaced and the original moves inside the encrypted
  entity. ``identity=None`` encrypts without signing (only when the config
  allows it).
* ``sign_only(raw, identity)``: the "trusted source" signature on mail that
  is otherwise relayed plainly.

Everything is CRLF; the multipart/signed and pkcs7-mime entities are built
here from DER so the signed bytes are exactly the inner entity.
"""
from __future__ import annotations

import base64
import os
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from gateway.crypto.certstore import Identity, fingerprint
from gateway.crypto.smime_entity import split_message

CIPHERS = {"aes256": algorithms.AES256, "aes128": algorithms.AES128}


def _base64_lines(der: bytes) -> bytes:
    return base64.encodebytes(der).replace(b"\n", b"\r\n")


def _boundary(content: bytes) -> bytes:
    while True:
        boundary = b"----=_phigate_" + os.urandom(12).hex().encode()
        if boundary not in content:
            return boundary


def sign_entity(entity: bytes, identity: Identity) -> bytes:
    """A detached ``multipart/signed`` entity (headers + body) over ``entity``."""
    builder = (pkcs7.PKCS7SignatureBuilder().set_data(entity)
               .add_signer(identity.cert, identity.key, hashes.SHA256()))
    for cert in identity.chain:
        builder = builder.add_certificate(cert)
    der = builder.sign(serialization.Encoding.DER,
                       [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
    b = _boundary(entity)
    head = (b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
            b' micalg=sha-256; boundary="' + b + b'"\r\n\r\n'
            b"This is a cryptographically signed message in MIME format.\r\n\r\n")
    sig_head = (b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
                b"Content-Transfer-Encoding: base64\r\n"
                b"Content-Disposition: attachment; filename=smime.p7s\r\n\r\n")
    return b"".join([head, b"--", b, b"\r\n", entity, b"\r\n--", b, b"\r\n",
                     sig_head, _base64_lines(der), b"\r\n--", b, b"--\r\n"])


def encrypt_entity(entity: bytes, recipients: Sequence[x509.Certificate],
                   cipher: str = "aes256") -> bytes:
    """An ``application/pkcs7-mime`` enveloped-data entity (headers + body).
    Duplicate certificates get one RecipientInfo."""
    builder = pkcs7.PKCS7EnvelopeBuilder().set_data(entity)
    for cert in {fingerprint(c): c for c in recipients}.values():
        builder = builder.add_recipient(cert)
    # PEM armour is base64 in 64-column lines made in Rust: several times faster
    # than wrapping DER in Python (bench/smime.py); only the armour lines go.
    pem = (builder.set_content_encryption_algorithm(CIPHERS[cipher])
           .encrypt(serialization.Encoding.PEM, [pkcs7.PKCS7Options.Binary]))
    body = pem[pem.index(b"\n") + 1:pem.rindex(b"-----END")].replace(b"\n", b"\r\n")
    return (b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n"
            b" name=smime.p7m\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=smime.p7m\r\n\r\n" + body)


def sign_and_encrypt(raw: bytes, identity: Identity | None,
                     recipients: Sequence[x509.Certificate], *, cipher: str = "aes256",
                     neutral_subject: str | None = None) -> bytes:
    """The whole message to send: outer headers + encrypted (signed) inner entity."""
    split = split_message(raw)
    inner = split.inner
    original_subject = split.header("subject")
    if neutral_subject is not None and original_subject is not None:
        inner = original_subject + inner       # the real Subject travels encrypted
    if identity is not None:
        inner = sign_entity(inner, identity)
    return (split.outer_with(subject=neutral_subject) + b"MIME-Version: 1.0\r\n"
            + encrypt_entity(inner, recipients, cipher))


def sign_only(raw: bytes, identity: Identity) -> bytes:
    """``raw`` as a clear-signed ``multipart/signed`` message."""
    split = split_message(raw)
    return split.outer_with() + b"MIME-Version: 1.0\r\n" + sign_entity(split.inner, identity)
