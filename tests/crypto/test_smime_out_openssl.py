"""What phigate signs and encrypts, ``openssl cms`` (an independent
implementation) decrypts and verifies, and the content is the original inner
entity byte for byte."""
from __future__ import annotations

import base64
import email
import email.policy

import pytest
from cryptography.hazmat.primitives.serialization import pkcs7

from gateway.crypto.certstore import Identity
from gateway.crypto.smime_entity import canonical_crlf, split_message
from gateway.crypto.smime_out import sign_and_encrypt, sign_only
from tests.crypto import openssl_cli
from tests.crypto.pki import TestPKI

ATTACHMENT = bytes(range(256)) * 40

RAW = (b"Received: from ws1 by gw\r\n"
       b"From: Dr Lee <dr.lee@smile.test>\r\n"
       b"To: Oral Surgeon <os@surgery.test>\r\n"
       b"Cc: lab@lab.test\r\n"
       b"Subject: Referral tooth 30\r\n"
       b"Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n"
       b"Message-ID: <ref-1@smile.test>\r\n"
       b"MIME-Version: 1.0\r\n"
       b'Content-Type: multipart/mixed;\r\n boundary="b1"\r\n'
       b"\r\n"
       b"--b1\r\n"
       b"Content-Type: text/plain; charset=utf-8\r\n"
       b"Content-Transfer-Encoding: 8bit\r\n\r\n"
       b"Patient J\xc3\xa9r\xc3\xb4me Quill, DOB 03/04/1961, D7240 impacted #32.\r\n"
       b"--b1\r\n"
       b"Content-Type: application/octet-stream; name=xray.bin\r\n"
       b"Content-Transfer-Encoding: base64\r\n\r\n"
       + base64.encodebytes(ATTACHMENT).replace(b"\n", b"\r\n") +
       b"--b1--\r\n")


@pytest.fixture(scope="module")
def world():
    pki = TestPKI()
    sub = pki.intermediate()
    practice = pki.leaf("dr.lee@smile.test", issuer=sub)
    surgeon = pki.leaf("os@surgery.test", issuer=sub)
    identity = Identity("@smile.test", practice.cert, practice.key, (sub.cert,))
    return pki, practice, surgeon, identity


def headers(message: bytes) -> email.message.Message:
    return email.message_from_bytes(message, policy=email.policy.compat32)


@pytest.mark.parametrize("cipher,oid", [("aes256", "aes-256-cbc"), ("aes128", "aes-128-cbc")])
def test_openssl_decrypts_and_verifies_byte_for_byte(world, tmp_path, cipher, oid):
    pki, practice, surgeon, identity = world
    out = sign_and_encrypt(RAW, identity, [surgeon.cert, practice.cert], cipher=cipher)
    assert b"\n" not in out.replace(b"\r\n", b"")          # canonical CRLF throughout
    assert b"Quill" not in out and b"D7240" not in out
    signed = openssl_cli.decrypt(out, surgeon, tmp_path)
    content = openssl_cli.verify(signed, pki.root, tmp_path)
    assert content == split_message(RAW).inner
    # The practice's own key opens its copy too.
    assert openssl_cli.decrypt(out, practice, tmp_path) == signed
    # The cipher is the configured one.
    p7 = base64.b64decode(out.split(b"\r\n\r\n", 1)[1])
    run = openssl_cli.cms("-cmsout", "-print", "-inform", "DER", data=p7)
    assert oid in run.stdout.decode()


def test_outer_headers(world):
    _, _, surgeon, identity = world
    out = sign_and_encrypt(RAW, identity, [surgeon.cert])
    h = headers(out)
    for name in ("From", "To", "Cc", "Date", "Message-ID", "Subject", "Received"):
        assert h[name] == headers(RAW)[name]
    assert h.get_content_type() == "application/pkcs7-mime"
    assert h.get_param("smime-type") == "enveloped-data"
    assert h["Content-Transfer-Encoding"] == "base64"
    assert len(h.get_all("Content-Type")) == 1 and h["MIME-Version"] == "1.0"


def test_one_recipient_info_per_certificate(world):
    _, practice, surgeon, identity = world
    out = sign_and_encrypt(RAW, identity, [surgeon.cert, practice.cert, surgeon.cert])
    p7 = base64.b64decode(out.split(b"\r\n\r\n", 1)[1])
    run = openssl_cli.cms("-cmsout", "-print", "-inform", "DER", data=p7)
    assert run.stdout.decode().count("d.ktri:") == 2


def test_neutral_subject_moves_the_real_one_inside(world, tmp_path):
    pki, _practice, surgeon, identity = world
    out = sign_and_encrypt(RAW, identity, [surgeon.cert], neutral_subject="Secure message")
    assert headers(out)["Subject"] == "Secure message"
    assert b"Referral" not in out
    content = openssl_cli.verify(openssl_cli.decrypt(out, surgeon, tmp_path), pki.root, tmp_path)
    assert content == b"Subject: Referral tooth 30\r\n" + split_message(RAW).inner


def test_unsigned_encryption_when_no_identity(world, tmp_path):
    _, _, surgeon, _ = world
    out = sign_and_encrypt(RAW, None, [surgeon.cert])
    assert openssl_cli.decrypt(out, surgeon, tmp_path) == split_message(RAW).inner


def test_sign_only_verified_by_openssl(world, tmp_path):
    pki, _, _, identity = world
    out = sign_only(RAW, identity)
    h = headers(out)
    assert h.get_content_type() == "multipart/signed"
    assert h.get_param("protocol") == "application/pkcs7-signature"
    assert h.get_param("micalg") == "sha-256"
    assert h["Subject"] == "Referral tooth 30"
    assert openssl_cli.verify(out, pki.root, tmp_path) == split_message(RAW).inner
    # The signature carries the chain (leaf + intermediate), not the root.
    sig = next(p for p in h.walk() if p.get_content_type() == "application/pkcs7-signature")
    certs = pkcs7.load_der_pkcs7_certificates(sig.get_payload(decode=True))
    assert {c.subject for c in certs} == {identity.cert.subject, identity.chain[0].subject}


def test_ec_signer(tmp_path):
    pki = TestPKI()
    me = pki.leaf("dr.lee@smile.test", key="ec256")
    out = sign_only(RAW, Identity("dr.lee@smile.test", me.cert, me.key))
    assert openssl_cli.verify(out, pki.root, tmp_path) == split_message(RAW).inner


def test_bare_lf_input_is_made_canonical(world, tmp_path):
    pki, _, surgeon, identity = world
    lf = RAW.replace(b"\r\n", b"\n")
    out = sign_and_encrypt(lf, identity, [surgeon.cert])
    content = openssl_cli.verify(openssl_cli.decrypt(out, surgeon, tmp_path), pki.root, tmp_path)
    assert content == split_message(RAW).inner
    assert canonical_crlf(lf) == RAW


def test_message_without_mime_headers(world, tmp_path):
    pki, _, surgeon, identity = world
    raw = b"From: a@smile.test\r\nTo: os@surgery.test\r\n\r\nplain text\r\n"
    out = sign_and_encrypt(raw, identity, [surgeon.cert])
    content = openssl_cli.verify(openssl_cli.decrypt(out, surgeon, tmp_path), pki.root, tmp_path)
    assert content == b"\r\nplain text\r\n"
