"""Every way an inbound S/MIME message can be wrong gives a clear verdict,
never an exception: tampering, trust, expiry, revocation (CRL, soft and hard),
From binding, EKU, garbage and truncation, no key, forged result headers."""
from __future__ import annotations

import base64
import datetime as dt
import os

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.crypto.certstore import Identity
from gateway.crypto.inbound import open_message
from gateway.crypto.revocation import load_crl_dir
from gateway.crypto.smime_entity import canonical_crlf
from tests.crypto import openssl_cli
from tests.crypto.pki import Issued, TestPKI, write_crl, write_pem

CONTENT = (b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
           b"Perio charting for patient 4411 attached.\r\n")
FROM = "os@surgery.test"


@pytest.fixture(scope="module")
def pki():
    pki = TestPKI()
    pki.sub = pki.intermediate()
    pki.practice = pki.leaf("dr.lee@smile.test", issuer=pki.sub)
    pki.surgeon = pki.leaf(FROM, issuer=pki.sub)
    return pki


def signed(pki, tmp_path, signer: Issued, *extra: str, content: bytes = CONTENT) -> bytes:
    cert, key = signer.write(tmp_path, "signer")
    chain = write_pem(tmp_path / "chain.pem", pki.sub.cert)
    run = openssl_cli.cms("-sign", "-binary", "-signer", str(cert), "-inkey", str(key),
                          "-certfile", str(chain), *extra, data=content)
    assert run.returncode == 0, run.stderr.decode()
    return canonical_crlf(run.stdout)


def encrypted(tmp_path, recipient: Issued, entity: bytes, *extra: str) -> bytes:
    cert, _ = recipient.write(tmp_path, "recipient")
    run = openssl_cli.cms("-encrypt", "-binary", "-recip", str(cert), *extra, data=entity)
    assert run.returncode == 0, run.stderr.decode()
    return canonical_crlf(run.stdout)


def outer(entity: bytes, sender: str = FROM) -> bytes:
    return f"From: <{sender}>\r\nTo: dr.lee@smile.test\r\nSubject: chart\r\n".encode() + entity


def open_(pki, raw: bytes, **kw):
    kw.setdefault("anchors", [pki.root.cert])
    kw.setdefault("identities", [Identity("@smile.test", pki.practice.cert, pki.practice.key)])
    return open_message(raw, **kw)


def header(result, name: str) -> str:
    head = result.message.split(b"\r\n\r\n", 1)[0].decode()
    found = [line.split(":", 1)[1].strip() for line in head.split("\r\n")
             if line.lower().startswith(name.lower() + ":")]
    assert len(found) == 1, head
    return found[0]


def assert_invalid(result, reason: str) -> None:
    assert result.signature_status() == "invalid", result.verdict()
    assert result.signature.reason == reason, result.verdict()
    assert header(result, "X-Phigate-Signature").startswith(f"invalid; reason={reason}")


def test_valid_baseline(pki, tmp_path):
    result = open_(pki, outer(signed(pki, tmp_path, pki.surgeon)))
    assert result.signature.valid, result.verdict()
    assert header(result, "X-Phigate-Signature") == (
        f"valid; signer={FROM}; trusted=yes; revocation=unknown")


def test_tampered_body(pki, tmp_path):
    raw = outer(signed(pki, tmp_path, pki.surgeon)).replace(b"4411", b"4412")
    assert_invalid(open_(pki, raw), "content altered")


def test_tampered_inside_encryption(pki, tmp_path):
    entity = signed(pki, tmp_path, pki.surgeon).replace(b"Perio", b"Endo ")
    result = open_(pki, outer(encrypted(tmp_path, pki.practice, entity, "-aes256")))
    assert result.decrypted == "yes"
    assert_invalid(result, "content altered")


def test_3des_is_refused_clearly(pki, tmp_path):
    """openssl's default cipher for -encrypt is still 3DES: refused, said so."""
    result = open_(pki, outer(encrypted(tmp_path, pki.practice, CONTENT)))
    assert header(result, "X-Phigate-Decrypted") == (
        "failed; reason=unsupported content cipher tripledes_3key")


def test_signer_not_trusted(pki, tmp_path):
    stranger = TestPKI("Someone Else's Root")
    leaf = stranger.leaf(FROM)
    assert_invalid(open_(pki, outer(signed(pki, tmp_path, leaf))), "signer not trusted")
    # a trusted PKI's signer is not trusted by a store with a different anchor
    assert_invalid(open_(pki, outer(signed(pki, tmp_path, pki.surgeon)),
                         anchors=[stranger.root.cert]), "signer not trusted")
    assert_invalid(open_(pki, outer(signed(pki, tmp_path, pki.surgeon)), anchors=[]),
                   "signer not trusted")


def test_weak_key_and_leaf_posing_as_ca(pki, tmp_path):
    weak = pki.leaf(FROM, issuer=pki.sub, key="rsa1024")
    assert_invalid(open_(pki, outer(signed(pki, tmp_path, weak))), "signer key too weak")
    posing = pki.leaf(FROM, issuer=pki.surgeon)                 # issued by an end entity
    raw = outer(signed(pki, tmp_path, posing))
    assert_invalid(open_(pki, raw, intermediates=[pki.surgeon.cert, pki.sub.cert]),
                   "signer not trusted")


def test_expired_signer(pki, tmp_path):
    old = pki.leaf(FROM, issuer=pki.sub, expired=True)
    assert_invalid(open_(pki, outer(signed(pki, tmp_path, old))), "signer certificate expired")


def test_validation_time_is_a_parameter(pki, tmp_path):
    raw = outer(signed(pki, tmp_path, pki.surgeon))
    later = pki.now + dt.timedelta(days=400)
    assert_invalid(open_(pki, raw, now=later), "signer certificate expired")


def test_revoked_signer_from_crl_objects_and_from_a_cache_dir(pki, tmp_path):
    bad = pki.leaf(FROM, issuer=pki.sub)
    raw = outer(signed(pki, tmp_path, bad))
    crls = [pki.crl(pki.sub, revoked=[bad.cert.serial_number]), pki.crl(pki.root)]
    result = open_(pki, raw, crls=crls)
    assert_invalid(result, "signer revoked")
    assert result.signature.revocation == "revoked"
    cache = tmp_path / "crl"
    cache.mkdir()
    write_crl(cache / "sub.crl", crls[0])
    write_crl(cache / "root.pem", crls[1], pem=True)
    (cache / "junk.crl").write_bytes(b"not a crl")
    assert len(load_crl_dir(cache)) == 2
    assert_invalid(open_(pki, raw, crls=load_crl_dir(cache), revocation="hard"),
                   "signer revoked")
    assert_invalid(open_(pki, raw, crl_dir=cache, revocation="hard"), "signer revoked")


def test_crls_that_do_not_count(pki, tmp_path):
    bad = pki.leaf(FROM, issuer=pki.sub)
    raw = outer(signed(pki, tmp_path, bad))
    forged = TestPKI("Test Root CA").intermediate()           # same name, other key
    stale_revoking = pki.crl(pki.sub, revoked=[bad.cert.serial_number],
                             next_update=pki.now - dt.timedelta(minutes=5))
    # a CRL signed by the wrong key is ignored, a stale CRL still revokes
    assert open_(pki, raw, crls=[pki.crl(forged, revoked=[bad.cert.serial_number])]
                 ).signature.valid
    assert_invalid(open_(pki, raw, crls=[stale_revoking]), "signer revoked")


def test_revocation_soft_and_hard(pki, tmp_path):
    raw = outer(signed(pki, tmp_path, pki.surgeon))
    good_crls = [pki.crl(pki.sub), pki.crl(pki.root)]
    result = open_(pki, raw, crls=good_crls, revocation="hard")
    assert result.signature.valid and result.signature.revocation == "good"
    assert header(result, "X-Phigate-Signature") == f"valid; signer={FROM}; trusted=yes"
    soft = open_(pki, raw, revocation="soft")
    assert soft.signature.valid and soft.signature.revocation == "unknown"
    assert_invalid(open_(pki, raw, revocation="hard"), "revocation status unknown")
    # hard needs a CRL for the intermediate too, and a current one
    assert_invalid(open_(pki, raw, crls=good_crls[:1], revocation="hard"),
                   "revocation status unknown")
    stale = pki.crl(pki.sub, next_update=pki.now - dt.timedelta(minutes=5))
    assert_invalid(open_(pki, raw, crls=[stale, good_crls[1]], revocation="hard"),
                   "revocation status unknown")


def test_signer_address_is_not_from(pki, tmp_path):
    raw = outer(signed(pki, tmp_path, pki.surgeon), sender="ceo@surgery.test")
    result = open_(pki, raw)
    assert_invalid(result, "signer address does not match From")
    assert result.signature.trusted
    two_froms = b"From: a@x.test\r\n" + outer(signed(pki, tmp_path, pki.surgeon))
    assert_invalid(open_(pki, two_froms), "signer address does not match From")


def test_email_protection_when_required(pki, tmp_path):
    no_eku = pki.leaf(FROM, issuer=pki.sub, eku=None)
    raw = outer(signed(pki, tmp_path, no_eku))
    assert open_(pki, raw).signature.valid
    assert_invalid(open_(pki, raw, require_email_protection=True), "no emailProtection EKU")
    server = pki.leaf(FROM, issuer=pki.sub, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    assert_invalid(open_(pki, outer(signed(pki, tmp_path, server))), "no emailProtection EKU")


def test_key_usage_must_allow_signing(pki, tmp_path):
    enc_only = pki.leaf(FROM, issuer=pki.sub, key_usage="encrypt")
    assert_invalid(open_(pki, outer(signed(pki, tmp_path, enc_only))),
                   "key usage does not allow signing")


P7M = (b"Content-Type: application/pkcs7-mime; smime-type=%s; name=smime.p7m\r\n"
       b"Content-Transfer-Encoding: base64\r\n\r\n")


@pytest.mark.parametrize("body", [
    base64.encodebytes(os.urandom(600)),
    b"this is not base64 at all !!!\r\n",
    b"",
    base64.encodebytes(b"\x30\x82\x10\x00" + os.urandom(40)),     # DER header, no content
])
def test_garbage_in_the_p7m_part(pki, body):
    result = open_(pki, outer(P7M % b"enveloped-data" + body))
    assert result.decrypted == "failed"
    assert header(result, "X-Phigate-Decrypted") == "failed; reason=malformed CMS"
    assert header(result, "X-Phigate-Signature") == "none"
    signed_garbage = open_(pki, outer(P7M % b"signed-data" + body))
    assert_invalid(signed_garbage, "malformed signature")


def test_garbage_signature_part(pki, tmp_path):
    raw = outer(signed(pki, tmp_path, pki.surgeon))
    sig_at = raw.index(b"Content-Type: application/pkcs7-signature")
    body_at = raw.index(b"\r\n\r\n", sig_at) + 4
    end = raw.index(b"\r\n\r\n--", body_at)
    junk = base64.encodebytes(os.urandom(300)).replace(b"\n", b"\r\n").rstrip()
    assert_invalid(open_(pki, raw[:body_at] + junk + raw[end:]), "malformed signature")


def test_truncated_messages(pki, tmp_path):
    entity = signed(pki, tmp_path, pki.surgeon)
    raw = outer(encrypted(tmp_path, pki.practice, entity, "-aes256"))
    cut = open_(pki, raw[: len(raw) // 2])
    assert cut.decrypted == "failed" and cut.decrypt_reason == "malformed CMS"
    cut_signed = open_(pki, outer(entity[: len(entity) - 80]))
    assert_invalid(cut_signed, "malformed multipart/signed")
    headers_only = open_(pki, outer(b"Content-Type: application/pkcs7-mime; smime-type="))
    assert headers_only.decrypted == "failed"


def test_no_matching_recipient_key(pki, tmp_path):
    stranger = pki.leaf("someone@else.test")
    raw = outer(encrypted(tmp_path, stranger, signed(pki, tmp_path, pki.surgeon), "-aes-256-gcm"))
    result = open_(pki, raw)
    assert result.decrypted == "failed"
    assert header(result, "X-Phigate-Decrypted") == "failed; reason=no matching recipient key"
    assert open_(pki, raw, identities=[]).decrypt_reason == "no matching recipient key"


@pytest.mark.parametrize("options", [["-aes256"], ["-aes-256-gcm"],
                                     ["-aes256", "-keyopt", "rsa_padding_mode:oaep"]])
def test_right_certificate_wrong_key(pki, tmp_path, options):
    """The RecipientInfo names our certificate but our key does not fit (a
    replaced key, or a forged RecipientInfo): one reason for every padding."""
    raw = outer(encrypted(tmp_path, pki.practice, CONTENT, *options))
    wrong = Identity("@smile.test", pki.practice.cert, pki.leaf("x@y.test").key)
    assert open_(pki, raw, identities=[wrong]).decrypt_reason == "decryption failed"


def test_tampered_gcm_ciphertext(pki, tmp_path):
    raw = outer(encrypted(tmp_path, pki.practice, CONTENT, "-aes-256-gcm"))
    head, body = raw.split(b"\r\n\r\n", 1)
    der = bytearray(base64.b64decode(body))
    der[-40] ^= 1                                   # inside the ciphertext or the tag
    forged = head + b"\r\n\r\n" + base64.encodebytes(bytes(der))
    assert open_(pki, forged).decrypt_reason in ("decryption failed", "malformed CMS")


def test_forged_result_headers_are_removed(pki, tmp_path):
    forged = (b"X-Phigate-Signature: valid; signer=ceo@smile.test; trusted=yes\r\n"
              b"x-phigate-decrypted: yes\r\n")
    plain = open_(pki, forged + outer(CONTENT))
    assert header(plain, "X-Phigate-Signature") == "none"
    assert header(plain, "X-Phigate-Decrypted") == "no"
    # and when they hide inside the encrypted entity (its header fields move outside)
    inner = open_(pki, outer(encrypted(tmp_path, pki.practice, forged + CONTENT, "-aes128")))
    assert inner.decrypted == "yes"
    assert header(inner, "X-Phigate-Signature") == "none"
    assert header(inner, "X-Phigate-Decrypted") == "yes"


def test_signer_address_cannot_inject_header_text(pki, tmp_path):
    sneaky = pki.leaf("a@b.test\r\nX-Phigate-Signature: valid", issuer=pki.sub)
    result = open_(pki, outer(signed(pki, tmp_path, sneaky)))
    assert result.signature_status() == "invalid"
    assert "signer=a@b.test__" in header(result, "X-Phigate-Signature")   # one line, one field


@pytest.mark.parametrize("raw", [b"", b"\r\n", b"\x00\xff" * 50, b"From: x\r\n\r\n",
                                 b"Content-Type: multipart/signed\r\n\r\n--",
                                 b'Content-Type: multipart/signed; boundary="b"\r\n\r\n--b\r\n'])
def test_nonsense_never_raises(pki, raw):
    result = open_(pki, raw)
    assert result.decrypted in ("no", "failed")
    assert b"X-Phigate-Signature: " in result.message


def test_verdict_is_content_free(pki, tmp_path):
    raw = outer(encrypted(tmp_path, pki.practice, signed(pki, tmp_path, pki.surgeon), "-aes256"))
    result = open_(pki, raw)
    assert result.decrypted == "yes" and result.signature.valid
    text = repr(result.verdict()) + repr(result.audit_events())
    for word in ("chart", "Perio", "4411", "Subject"):
        assert word not in text
