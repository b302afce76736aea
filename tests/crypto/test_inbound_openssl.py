"""What ``openssl cms`` (an independent implementation) signs and encrypts,
phigate decrypts and verifies, and the content is the signed entity byte for
byte: PKCS#1 v1.5 and OAEP (SHA-1, SHA-256) key transport, issuerAndSerial and
``-keyid`` recipients, AES-CBC 128/192/256 and AES-GCM (AuthEnvelopedData),
RSA v1.5 / PSS / ECDSA signers, detached and opaque, sign-then-encrypt and
encrypt-then-sign."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.crypto.certstore import Identity
from gateway.crypto.inbound import open_message
from gateway.crypto.smime_entity import canonical_crlf
from tests.crypto import openssl_cli
from tests.crypto.pki import Issued, TestPKI, write_pem

CONTENT = (b'Content-Type: multipart/mixed; boundary="mix"\r\n'
           b"\r\n"
           b"--mix\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           b"Referral for J\xc3\xa9r\xc3\xb4me, tooth #30, D3330.\r\n"
           b"--mix\r\n"
           b"Content-Type: application/octet-stream; name=xray.bin\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(bytes(range(256)) * 8).replace(b"\n", b"\r\n") +
           b"--mix--\r\n")
OUTER = (b"From: Oral Surgeon <os@surgery.test>\r\n"
         b"To: dr.lee@smile.test\r\n"
         b"Subject: Referral\r\n"
         b"Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n")


@dataclass
class World:
    pki: TestPKI
    sub: Issued
    surgeon: Issued                  # the partner who signs
    practice: Issued                 # our identity (decrypts)
    other: Issued                    # a second practice identity
    files: Path

    def identities(self) -> list[Identity]:
        return [Identity("@other.test", self.other.cert, self.other.key),
                Identity("@smile.test", self.practice.cert, self.practice.key)]

    def open(self, raw: bytes, **kw):
        kw.setdefault("anchors", [self.pki.root.cert])
        return open_message(raw, identities=self.identities(), **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    files = tmp_path_factory.mktemp("ossl")
    pki = TestPKI()
    sub = pki.intermediate()
    w = World(pki, sub, pki.leaf("os@surgery.test", issuer=sub),
              pki.leaf("dr.lee@smile.test", issuer=sub), pki.leaf("x@other.test"), files)
    w.surgeon.write(files, "surgeon")
    w.practice.write(files, "practice")
    write_pem(files / "sub.pem", sub.cert)
    return w


def ossl(*args: str, data: bytes) -> bytes:
    run = openssl_cli.cms(*args, data=data)
    assert run.returncode == 0, run.stderr.decode()
    return run.stdout


def sign(w: World, content: bytes, *extra: str, signer: str = "surgeon") -> bytes:
    return ossl("-sign", "-binary", "-signer", str(w.files / f"{signer}.pem"),
                "-inkey", str(w.files / f"{signer}.key"), "-certfile", str(w.files / "sub.pem"),
                *extra, data=content)


def encrypt(w: World, entity: bytes, *extra: str) -> bytes:
    """``extra`` follows ``-recip`` so that ``-keyopt`` applies to it."""
    return ossl("-encrypt", "-binary", "-recip", str(w.files / "practice.pem"), *extra,
                data=entity)


def message(entity: bytes) -> bytes:
    """openssl's S/MIME output (MIME-Version + Content-*) under our outer headers."""
    return OUTER + canonical_crlf(entity)


def assert_valid(result, *, decrypted: str = "yes") -> None:
    assert result.decrypted == decrypted, result.verdict()
    assert result.signature is not None and result.signature.valid, result.verdict()
    assert result.signature.signer == "os@surgery.test"
    assert result.content == CONTENT
    head = result.message.split(b"\r\n\r\n", 1)[0]
    assert f"X-Phigate-Decrypted: {decrypted}".encode() in head
    assert b"X-Phigate-Signature: valid; signer=os@surgery.test; trusted=yes" in head
    assert b"Subject: Referral\r\n" in head
    assert result.message.endswith(CONTENT.split(b"\r\n\r\n", 1)[1])


@pytest.mark.parametrize("options,cipher,transport", [
    (["-aes256"], "aes256_cbc", "rsa_pkcs1v15"),
    (["-aes128", "-keyopt", "rsa_padding_mode:oaep"], "aes128_cbc", "rsaes_oaep_sha1"),
    (["-aes192", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"],
     "aes192_cbc", "rsaes_oaep_sha256"),
    (["-aes256", "-keyid"], "aes256_cbc", "rsa_pkcs1v15"),
    (["-aes-256-gcm"], "aes256_gcm", "rsa_pkcs1v15"),
    (["-aes-128-gcm", "-keyid", "-keyopt", "rsa_padding_mode:oaep", "-keyopt",
      "rsa_oaep_md:sha256"], "aes128_gcm", "rsaes_oaep_sha256"),
])
def test_sign_then_encrypt(world, options, cipher, transport):
    raw = message(encrypt(world, canonical_crlf(sign(world, CONTENT)), *options))
    result = world.open(raw)
    assert_valid(result)
    assert result.decrypt_details["cipher"] == cipher
    assert result.decrypt_details["key_transport"] == transport
    assert result.layers == [f"encrypted:{cipher}", "signed:detached"]


def test_gcm_is_auth_enveloped_data(world):
    """openssl 3.0 puts -aes-256-gcm with -encrypt into AuthEnvelopedData (RFC 5083)."""
    out = encrypt(world, CONTENT, "-aes-256-gcm")
    assert b"smime-type=authEnveloped-data" in out


@pytest.mark.parametrize("options,algorithm", [
    ([], "rsassa_pkcs1v15"),
    (["-keyopt", "rsa_padding_mode:pss"], "rsassa_pss"),
    (["-md", "sha384"], "rsassa_pkcs1v15"),
    (["-nodetach"], "rsassa_pkcs1v15"),
    (["-keyid"], "rsassa_pkcs1v15"),
])
def test_signed_only(world, options, algorithm):
    result = world.open(message(sign(world, CONTENT, *options)))
    assert_valid(result, decrypted="no")
    assert result.signature.details["algorithm"] == algorithm
    assert result.layers == ["signed:opaque" if "-nodetach" in options else "signed:detached"]


def test_ecdsa_signer(world):
    ec = world.pki.leaf("os@surgery.test", issuer=world.sub, key="ec256")
    ec.write(world.files, "ec")
    result = world.open(message(encrypt(world, canonical_crlf(sign(world, CONTENT, signer="ec")),
                                        "-aes256")))
    assert_valid(result)
    assert result.signature.details["algorithm"] == "ecdsa"


def test_opaque_signed_inside_encrypted(world):
    signed = canonical_crlf(sign(world, CONTENT, "-nodetach"))
    result = world.open(message(encrypt(world, signed, "-aes-256-gcm")))
    assert_valid(result)
    assert result.layers == ["encrypted:aes256_gcm", "signed:opaque"]


def test_encrypt_then_sign(world):
    encrypted = canonical_crlf(encrypt(world, CONTENT, "-aes256"))
    result = world.open(message(sign(world, encrypted)))
    assert_valid(result)
    assert result.layers == ["signed:detached", "encrypted:aes256_cbc"]


def test_intermediate_from_the_store_when_the_message_lacks_it(world):
    bare = ossl("-sign", "-binary", "-signer", str(world.files / "surgeon.pem"), "-inkey",
                str(world.files / "surgeon.key"), "-nocerts", "-certfile",
                str(world.files / "sub.pem"), data=CONTENT)
    # -nocerts leaves the signer's own certificate out too: it comes from the store
    result = world.open(message(bare), intermediates=[world.sub.cert, world.surgeon.cert])
    assert_valid(result, decrypted="no")
    assert world.open(message(bare)).signature.reason == "signer certificate missing"


def test_one_of_several_recipients(world):
    other = world.other.write(world.files, "other")[0]
    raw = message(ossl("-encrypt", "-binary", "-aes256", "-recip", str(other), "-recip",
                       str(world.files / "practice.pem"),
                       data=canonical_crlf(sign(world, CONTENT))))
    result = world.open(raw)
    assert_valid(result)
    assert result.decrypt_details["recipient_fingerprint"] in {
        Identity("", c, None).fingerprint for c in (world.other.cert, world.practice.cert)}


def test_openssl_output_with_bare_lf_still_opens(world):
    """A message saved as a Unix .eml (LF only) is made CRLF before anything else."""
    raw = message(encrypt(world, canonical_crlf(sign(world, CONTENT)), "-aes256"))
    result = world.open(raw.replace(b"\r\n", b"\n"))
    assert_valid(result)


def test_two_signers_one_untrusted(world):
    """RFC 8551 §3.5.3 spirit: one signature that verifies is enough."""
    stranger = TestPKI("Stranger Root").leaf("os@surgery.test")
    stranger.write(world.files, "stranger")
    raw = message(ossl("-sign", "-binary", "-signer", str(world.files / "stranger.pem"),
                       "-inkey", str(world.files / "stranger.key"), "-signer",
                       str(world.files / "surgeon.pem"), "-inkey",
                       str(world.files / "surgeon.key"), "-certfile",
                       str(world.files / "sub.pem"), data=CONTENT))
    result = world.open(raw)
    assert_valid(result, decrypted="no")
    alone = message(sign(world, CONTENT, signer="stranger"))
    assert world.open(alone).signature.reason == "signer not trusted"
