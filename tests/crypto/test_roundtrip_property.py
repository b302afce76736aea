"""Property: any MIME tree (nested multiparts, 8-bit text in odd charsets,
long lines, trailing blanks, base64 binary attachments) survives phigate's
sign → encrypt (``smime_out.sign_and_encrypt``) → decrypt → verify
(``inbound.open_message``) byte for byte, with the original Subject back
when it travelled encrypted; and the same trees signed and encrypted by
``openssl cms`` open byte for byte too."""
from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.crypto.certstore import Identity
from gateway.crypto.inbound import open_message
from gateway.crypto.smime_entity import split_message
from gateway.crypto.smime_out import sign_and_encrypt
from tests.crypto import openssl_cli
from tests.crypto.pki import TestPKI, write_pem

CHARSETS = ["utf-8", "iso-8859-1", "koi8-r", "shift_jis", "windows-1252", "us-ascii",
            "x-unheard-of"]
# "=" never occurs in text, and every boundary has one: no accidental delimiter.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n="),
               max_size=120)


@st.composite
def text_part(draw) -> bytes:
    charset = draw(st.sampled_from(CHARSETS))
    codec = "utf-8" if charset == "x-unheard-of" else charset
    lines = draw(st.lists(st.one_of(TEXT, st.integers(999, 5000).map(lambda n: "L" * n),
                                    TEXT.map(lambda t: t + "  \t")), max_size=8))
    body = b"\r\n".join(line.encode(codec, "replace") for line in lines)
    ending = draw(st.sampled_from([b"\r\n", b""]))
    return (f"Content-Type: text/plain; charset={charset}\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + body + ending


@st.composite
def binary_part(draw) -> bytes:
    data = draw(st.binary(max_size=4000))
    name = draw(st.sampled_from(["xray.dcm", "chart.pdf", "r\u00f6ntgen.jpg"]))
    return (b"Content-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment;\r\n filename*=utf-8''"
            + name.encode().hex().encode() + b"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(data).replace(b"\n", b"\r\n"))


def multipart(children) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw) -> bytes:
        parts = draw(st.lists(children, min_size=1, max_size=4))
        boundary = f"=_b{draw(st.integers(0, 10**9))}".encode()
        subtype = draw(st.sampled_from(["mixed", "alternative", "related"]))
        preamble = draw(st.sampled_from([b"", b"This is a multi-part message.\r\n"]))
        epilogue = draw(st.sampled_from([b"", b"epilogue\r\n"]))
        body = preamble + b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
        return (f'Content-Type: multipart/{subtype};\r\n boundary="'.encode() + boundary
                + b'"\r\n\r\n' + body + b"--" + boundary + b"--\r\n" + epilogue)
    return build()


TREES = st.recursive(st.one_of(text_part(), binary_part()), multipart, max_leaves=8)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    pki = TestPKI()
    sub = pki.intermediate()
    surgeon = pki.leaf("os@surgery.test", issuer=sub)
    practice = pki.leaf("dr.lee@smile.test", issuer=sub)
    files = tmp_path_factory.mktemp("pki")
    surgeon.write(files, "surgeon")
    practice.write(files, "practice")
    write_pem(files / "sub.pem", sub.cert)
    pki.files = files
    return (pki, Identity("@surgery.test", surgeon.cert, surgeon.key, (sub.cert,)),
            Identity("@smile.test", practice.cert, practice.key, (sub.cert,)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(tree=TREES, neutral=st.booleans(), cipher=st.sampled_from(["aes256", "aes128"]))
def test_sign_encrypt_decrypt_verify_byte_for_byte(world, tree, neutral, cipher):
    pki, surgeon, practice = world
    raw = (b"From: Oral Surgeon <os@surgery.test>\r\n"
           b"To: dr.lee@smile.test\r\n"
           b"Subject: =?utf-8?q?R=C3=B6ntgen?= tooth 30\r\n"
           b"Message-ID: <p1@surgery.test>\r\n"
           b"MIME-Version: 1.0\r\n" + tree)
    sent = sign_and_encrypt(raw, surgeon, [practice.cert], cipher=cipher,
                            neutral_subject="Secure message" if neutral else None)
    result = open_message(sent, identities=[practice], anchors=[pki.root.cert])
    assert result.decrypted == "yes", result.verdict()
    assert result.signature is not None and result.signature.valid, result.verdict()
    assert result.signature.signer == "os@surgery.test"
    entity = split_message(raw).inner
    subject = b"Subject: =?utf-8?q?R=C3=B6ntgen?= tooth 30\r\n"
    assert result.content == (subject + entity if neutral else entity)
    head, _, _ = result.message.partition(b"\r\n\r\n")
    assert result.message.endswith(entity)
    assert head.count(b"\r\nSubject: ") == 1 and subject in result.message
    assert b"From: Oral Surgeon <os@surgery.test>\r\n" in head


def _ossl(*args: str, data: bytes) -> bytes:
    run = openssl_cli.cms(*args, data=data)
    assert run.returncode == 0, run.stderr.decode()
    return run.stdout


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(tree=TREES, cipher=st.sampled_from(["-aes256", "-aes-256-gcm", "-aes128"]))
def test_openssl_sign_encrypt_then_phigate_opens_byte_for_byte(world, tree, cipher):
    pki, _, practice = world
    f = pki.files
    signed = _ossl("-sign", "-binary", "-signer", str(f / "surgeon.pem"), "-inkey",
                   str(f / "surgeon.key"), "-certfile", str(f / "sub.pem"), data=tree)
    sent = _ossl("-encrypt", "-binary", cipher, "-from", "os@surgery.test", "-recip",
                 str(f / "practice.pem"), "-keyopt", "rsa_padding_mode:oaep", data=signed)
    result = open_message(sent, identities=[practice], anchors=[pki.root.cert])
    assert result.decrypted == "yes", result.verdict()
    assert result.signature is not None and result.signature.valid, result.verdict()
    assert result.content == tree
