"""Interop with Mozilla NSS (Thunderbird's library) through ``cmsutil``
(Debian libnss3-tools): what NSS signs (detached and opaque, with its default
signed attributes, which include Microsoft's and RFC 8551's encryption-key
preference, and with signingTime + S/MIME capabilities), encrypts, or signs
then encrypts opens with a valid, trusted verdict; what phigate sends, NSS
decrypts and verifies.

The NSS key store is made at test time in a temp dir (certutil, pk12util):
the partner's key and certificate, the test root trusted for e-mail, and the
practice's certificate. cmsutil has no cipher option: NSS picks the content
cipher (AES-128-CBC in the NSS shipped with Debian 12); phigate's AES-256 and
AES-128 output are both decrypted by NSS below.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from tests.crypto.interop import CONTENT, PRACTICE, Partners, assert_valid, signed_parts
from tests.peers import missing_peer


class Nss:
    def __init__(self, directory: Path):
        self.db = f"sql:{directory}"
        self.directory = directory

    def run(self, *argv: str, data: bytes | None = None, check: bool = True
            ) -> subprocess.CompletedProcess:
        done = subprocess.run(list(argv), input=data, capture_output=True, timeout=60,
                              check=False)
        if check:
            assert done.returncode == 0, (argv[0], done.stderr.decode(errors="replace"))
        return done

    def cms(self, *args: str, data: bytes) -> bytes:
        """``cmsutil`` with stdin ``data``; its stdout."""
        return self.run("cmsutil", *args, "-d", self.db, data=data).stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    if shutil.which("cmsutil") is None or shutil.which("pk12util") is None:
        missing_peer("NSS tools (Debian package libnss3-tools) are not installed")
    w = Partners.build()
    base = tmp_path_factory.mktemp("nss")
    nss = Nss(base / "db")
    (base / "db").mkdir()
    nss.run("certutil", "-N", "-d", nss.db, "--empty-password")
    p12 = base / "partner.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"partner", w.partner.key, w.partner.cert, None, BestAvailableEncryption(b"pw")))
    nss.run("pk12util", "-i", str(p12), "-d", nss.db, "-W", "pw")
    (base / "root.pem").write_bytes(w.pki.root.cert_pem())
    (base / "practice.pem").write_bytes(w.practice.cert_pem())
    nss.run("certutil", "-A", "-d", nss.db, "-n", "root", "-t", "CT,C,C",
            "-i", str(base / "root.pem"))
    nss.run("certutil", "-A", "-d", nss.db, "-n", "practice", "-t", ",,",
            "-i", str(base / "practice.pem"))
    return w, nss


def signed_entity(nss: Nss, w: Partners, content: bytes, *options: str) -> bytes:
    """A multipart/signed entity (no message headers) over ``content``, signed by NSS."""
    sig = nss.cms("-S", "-T", "-N", "partner", *options, data=content)
    return w.detached(content, sig).split(b"MIME-Version: 1.0\r\n", 1)[1]


@pytest.mark.parametrize("options", [(), ("-G", "-P")], ids=["defaults", "time+caps"])
def test_nss_detached_signature_is_valid(world, options):
    w, nss = world
    sig = nss.cms("-S", "-T", "-N", "partner", *options, data=CONTENT)
    assert_valid(w.open(w.detached(CONTENT, sig)), decrypted="no")


def test_nss_default_attributes_include_the_encryption_key_preference(world):
    """The attribute that used to make verification fail is really there."""
    _w, nss = world
    sig = nss.cms("-S", "-T", "-N", "partner", data=CONTENT)
    assert bytes.fromhex("060b2a864886f70d010910020b") in sig        # id-aa-encrypKeyPref
    assert bytes.fromhex("06092b0601040182371004") in sig           # MS 1.3.6.1.4.1.311.16.4


def test_nss_opaque_signature_is_valid(world):
    w, nss = world
    der = nss.cms("-S", "-N", "partner", "-G", data=CONTENT)
    result = w.open(w.pkcs7_mime(der, "signed-data"))
    assert_valid(result, decrypted="no")
    assert result.layers == ["signed:opaque"]


def test_nss_encrypted_opens(world):
    w, nss = world
    der = nss.cms("-E", "-r", PRACTICE, data=CONTENT)
    result = w.open(w.pkcs7_mime(der, "enveloped-data"))
    verdict = result.verdict()
    assert verdict["decrypted"] == "yes" and verdict["cipher"].startswith("aes")
    assert verdict["signature"] == "none"
    assert result.message.endswith(b"Second line.\r\n")


def test_nss_signed_then_encrypted_opens_valid(world):
    w, nss = world
    der = nss.cms("-E", "-r", PRACTICE, data=signed_entity(nss, w, CONTENT, "-G", "-P"))
    result = w.open(w.pkcs7_mime(der, "enveloped-data"))
    assert_valid(result, decrypted="yes")
    assert result.layers[1] == "signed:detached"


def test_nss_tampered_content_is_not_valid(world):
    """The same path fails when the bytes change: the test above can fail."""
    w, nss = world
    sig = nss.cms("-S", "-T", "-N", "partner", data=CONTENT)
    result = w.open(w.detached(CONTENT.replace(b"#30", b"#31"), sig))
    assert result.verdict()["signature_reason"] == "content altered"


@pytest.mark.parametrize("cipher", ["aes256", "aes128"])
def test_nss_decrypts_and_verifies_what_phigate_sends(world, cipher):
    w, nss = world
    entity = nss.cms("-D", data=w.phigate_sends(cipher))
    content, signature = signed_parts(entity)
    assert content.endswith(CONTENT)
    path = nss.directory / "content.bin"
    path.write_bytes(content)
    nss.cms("-D", "-n", "-u", "4", "-c", str(path), data=signature)     # exit 0: verified
    path.write_bytes(content.replace(b"#30", b"#31"))
    bad = nss.run("cmsutil", "-D", "-n", "-u", "4", "-c", str(path), "-d", nss.db,
                  data=signature, check=False)
    assert bad.returncode != 0
