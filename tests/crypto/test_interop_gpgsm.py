"""Interop with GnuPG's ``gpgsm`` (Debian package gpgsm): what gpgsm signs
(detached), encrypts (its default cipher and AES-256), or signs and then
encrypts opens with a valid, trusted verdict; what phigate sends, gpgsm
decrypts and verifies (GOODSIG from a trusted chain).

A throwaway GNUPGHOME under /tmp (short: the agent's socket path has a length
limit) holds the partner's key (imported from a 3DES PKCS#12, the protection
gpgsm 2.2 reads), the practice's certificate and the test root, trusted in
``trustlist.txt``. CRL checks are off (no dirmngr on loopback); revocation
is phigate's side and tested elsewhere. The agent is stopped afterwards.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from tests.crypto.interop import (
    CONTENT,
    PARTNER,
    PRACTICE,
    Partners,
    assert_valid,
    legacy_p12,
    signed_parts,
)
from tests.peers import missing_peer

PASSPHRASE = b"pw"


class Gpgsm:
    def __init__(self, home: Path):
        self.home = home
        self.env = {**os.environ, "GNUPGHOME": str(home)}

    def run(self, *args: str, data: bytes = b"", passphrase: bool = False, check: bool = True
            ) -> subprocess.CompletedProcess:
        argv = ["gpgsm", "--batch", "--status-fd", "2", *args]
        if passphrase:           # the key's passphrase on stdin, the input from a file
            argv[2:2] = ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
            data = PASSPHRASE + b"\n"
        done = subprocess.run(argv, input=data, capture_output=True, env=self.env, timeout=60,
                              check=False)
        if check:
            assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done

    def file(self, name: str, data: bytes) -> str:
        path = self.home / name
        path.write_bytes(data)
        return str(path)

    def stop(self) -> None:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=self.env, timeout=30,
                       check=False, capture_output=True)


IMPORT_TRIES = 5


def import_key(g: Gpgsm, w: Partners) -> None:
    """Give gpgsm the partner's key as a PKCS#12 file. gpgsm 2.2's reader rejects a
    few of the 3DES files cryptography writes ("decryption failed", ~4 in 100 here,
    whatever the key: it depends on the random salts); openssl reads each of those,
    which is checked, and a file with fresh salts is made for gpgsm."""
    for _ in range(IMPORT_TRIES):
        p12 = g.file("partner.p12", legacy_p12(w.partner, "partner", PASSPHRASE))
        done = g.run("--import", p12, passphrase=True, check=False)
        if done.returncode == 0:
            return
        opened = subprocess.run(["openssl", "pkcs12", "-in", p12, "-legacy", "-noout",
                                 "-passin", "pass:" + PASSPHRASE.decode()],
                                capture_output=True, timeout=60, check=False)
        assert opened.returncode == 0, opened.stderr.decode(errors="replace")
    raise AssertionError(done.stderr.decode(errors="replace"))


@pytest.fixture(scope="module")
def world():
    if shutil.which("gpgsm") is None or shutil.which("gpg-agent") is None:
        missing_peer("gpgsm and gpg-agent (Debian packages gpgsm, gpg-agent) are not installed")
    w = Partners.build()
    home = Path(tempfile.mkdtemp(prefix="gs", dir="/tmp"))
    home.chmod(0o700)
    (home / "gpgsm.conf").write_text("disable-crl-checks\ndisable-dirmngr\n")
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    g = Gpgsm(home)
    try:
        import_key(g, w)
        g.run("--import", g.file("certs.pem", w.pki.root.cert_pem() + w.practice.cert_pem()))
        root_sha1 = w.pki.root.cert.fingerprint(hashes.SHA1())
        (home / "trustlist.txt").write_text(":".join(f"{b:02X}" for b in root_sha1) + " S relax\n")
        yield w, g
    finally:
        g.stop()
        shutil.rmtree(home, ignore_errors=True)


def sign(g: Gpgsm, content: bytes) -> bytes:
    out = g.home / "sig.der"
    g.run("-u", PARTNER, "--detach-sign", "-o", str(out), "--yes", g.file("in.txt", content),
          passphrase=True)
    return out.read_bytes()


def encrypt(g: Gpgsm, content: bytes, *options: str) -> bytes:
    out = g.home / "env.der"
    g.run("-r", PRACTICE, *options, "--encrypt", "-o", str(out), "--yes",
          g.file("plain.txt", content))
    return out.read_bytes()


def test_gpgsm_detached_signature_is_valid(world):
    w, g = world
    assert_valid(w.open(w.detached(CONTENT, sign(g, CONTENT))), decrypted="no")


@pytest.mark.parametrize("options,cipher", [((), "aes128_cbc"),
                                            (("--cipher-algo", "AES256"), "aes256_cbc")],
                         ids=["default", "aes256"])
def test_gpgsm_encrypted_opens(world, options, cipher):
    w, g = world
    result = w.open(w.pkcs7_mime(encrypt(g, CONTENT, *options), "enveloped-data"))
    verdict = result.verdict()
    assert verdict["decrypted"] == "yes", verdict
    assert verdict["cipher"] == cipher
    assert result.message.endswith(b"Second line.\r\n")


@pytest.mark.parametrize("options", [(), ("--cipher-algo", "AES256")], ids=["default", "aes256"])
def test_gpgsm_signed_then_encrypted_opens_valid(world, options):
    """gpgsm cannot sign and encrypt in one run: sign the entity, then encrypt
    the multipart/signed, as a mail client using it does."""
    w, g = world
    entity = w.detached(CONTENT, sign(g, CONTENT)).split(b"MIME-Version: 1.0\r\n", 1)[1]
    result = w.open(w.pkcs7_mime(encrypt(g, entity, *options), "enveloped-data"))
    assert_valid(result, decrypted="yes")


@pytest.mark.parametrize("cipher", ["aes256", "aes128"])
def test_gpgsm_decrypts_and_verifies_what_phigate_sends(world, cipher):
    w, g = world
    out = g.home / "dec.txt"
    g.run("--decrypt", "-o", str(out), "--yes", g.file("in.der", w.phigate_sends(cipher)),
          passphrase=True)
    content, signature = signed_parts(out.read_bytes())
    assert content.endswith(CONTENT)
    done = g.run("--verify", g.file("s.der", signature), g.file("c.txt", content))
    status = done.stderr.decode(errors="replace")
    assert "[GNUPG:] GOODSIG" in status and "[GNUPG:] TRUST_FULLY" in status, status
    bad = g.run("--verify", g.file("s.der", signature),
                g.file("c.txt", content.replace(b"#30", b"#31")), check=False)
    assert bad.returncode != 0 and "[GNUPG:] BADSIG" in bad.stderr.decode(errors="replace")
