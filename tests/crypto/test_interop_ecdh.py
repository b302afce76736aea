"""Inbound ECDH key agreement (RFC 5753 / RFC 8418 profiles) with ``openssl
cms`` as the sender: an ECC practice identity opens what openssl encrypts to
it (ephemeral-static ECDH, X9.63 KDF with SHA-1 / SHA-256 / SHA-384, AES key
wrap 128/256, issuerAndSerial and subjectKeyIdentifier recipients, P-256 and
P-384); a scheme phigate does not implement is refused by name, never as a
missing key. (NSS 3.87's cmsutil and gpgsm 2.2 cannot encrypt to EC keys.)
"""
from __future__ import annotations

import pytest

from gateway.crypto.certstore import Identity
from gateway.crypto.inbound import open_message
from tests.crypto import openssl_cli
from tests.crypto.interop import CONTENT, Partners

STD_DH_SHA1 = bytes.fromhex("06092b81051086483f0002")     # dhSinglePass-stdDH-sha1kdf-scheme
MQV_SHA1 = bytes.fromhex("06092b81051086483f0010")        # mqvSinglePass-sha1kdf-scheme


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    files = tmp_path_factory.mktemp("ecdh")
    w = Partners.build()
    keys = {}
    for curve in ("ec256", "ec384"):
        who = w.pki.leaf("dr.lee@smile.test", key=curve, key_usage=None)
        who.write(files, curve)
        keys[curve] = who
    return w, keys, files


def encrypt(files, curve: str, *options: str, kdf: str | None = None) -> bytes:
    keyopt = ("-keyopt", f"ecdh_kdf_md:{kdf}") if kdf else ()
    run = openssl_cli.cms("-encrypt", "-binary", "-outform", "DER", *options,
                          "-recip", str(files / f"{curve}.pem"), *keyopt, data=CONTENT)
    assert run.returncode == 0, run.stderr.decode()
    return run.stdout


def open_with(w: Partners, who, der: bytes):
    return open_message(w.pkcs7_mime(der, "enveloped-data"),
                        identities=[Identity("@smile.test", who.cert, who.key)],
                        anchors=[w.pki.root.cert])


@pytest.mark.parametrize("curve,options,kdf,transport", [
    ("ec256", ("-aes256",), None, "ecdh_sha1kdf_aes256_wrap"),
    ("ec256", ("-aes128",), "sha256", "ecdh_sha256kdf_aes128_wrap"),
    ("ec384", ("-aes256",), "sha384", "ecdh_sha384kdf_aes256_wrap"),
    ("ec256", ("-aes256", "-keyid"), "sha256", "ecdh_sha256kdf_aes256_wrap"),
    ("ec256", ("-aes-256-gcm",), "sha256", "ecdh_sha256kdf_aes256_wrap"),
], ids=["p256-sha1", "p256-sha256-aes128", "p384-sha384", "p256-keyid", "p256-gcm"])
def test_openssl_ecdh_opens(world, curve, options, kdf, transport):
    w, keys, files = world
    result = open_with(w, keys[curve], encrypt(files, curve, *options, kdf=kdf))
    verdict = result.verdict()
    assert verdict["decrypted"] == "yes", verdict
    assert verdict["key_transport"] == transport
    assert result.message.endswith(b"Second line.\r\n")


def test_ecdh_for_another_key_fails_as_decryption(world):
    """The key agreement runs with our key but the wrap does not open: a
    plain "decryption failed", as for RSA."""
    w, keys, files = world
    der = encrypt(files, "ec256", "-aes256")
    other = w.pki.leaf("dr.lee@smile.test", key="ec256", key_usage=None)
    forged = Identity("@smile.test", keys["ec256"].cert, other.key)
    result = open_message(w.pkcs7_mime(der, "enveloped-data"), identities=[forged],
                          anchors=[w.pki.root.cert])
    assert result.verdict()["decrypt_reason"] == "decryption failed"


def test_unsupported_key_agreement_is_named(world):
    w, keys, files = world
    der = encrypt(files, "ec256", "-aes256")
    assert der.count(STD_DH_SHA1) == 1
    result = open_with(w, keys["ec256"], der.replace(STD_DH_SHA1, MQV_SHA1))
    verdict = result.verdict()
    assert verdict["decrypted"] == "failed"
    assert verdict["decrypt_reason"].startswith("unsupported key agreement algorithm")


def test_ecdh_without_our_key_is_no_matching_key(world):
    w, _keys, files = world
    result = open_with(w, w.practice, encrypt(files, "ec256", "-aes256"))
    assert result.verdict()["decrypt_reason"] == "no matching recipient key"
