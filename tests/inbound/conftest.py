"""Inbound over IMAP against a real Dovecot and the real daemon.

``inbound_world`` gives a Dovecot with the practice's mailbox, a test PKI
(practice identity, a partner who signs), a daemon config whose
``inbound.mailboxes`` watches that mailbox over implicit TLS with the test
CA, and the cert store seeded with the identity and the root. Messages are
put into the mailbox with an ordinary IMAP APPEND and read back with
IMAPClient (BODY.PEEK, so reading changes nothing).
"""
from __future__ import annotations

import email
import email.policy
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient

from gateway.crypto.certstore import CertStore
from gateway.crypto.smime_entity import canonical_crlf
from tests.crypto import openssl_cli
from tests.crypto.pki import Issued, TestPKI
from tests.peers import missing_peer
from tests.peers.daemon import Daemon
from tests.peers.dovecot import Dovecot

USER = "frontdesk@smiledental.example"
PASSWORD = "imap secret"
PARTNER = "os@surgery.test"
ARCHIVE = "Encrypted originals"
BODY = (b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Referral for the patient, tooth #30, D3330.\r\n")


def wait_until(check: Callable[[], object], timeout: float = 60, what: str = "condition"):
    """Poll ``check`` (bounded by ``timeout``) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)       # polling a condition in another process, bounded by the deadline


@dataclass
class Mail:
    uid: int
    flags: tuple[bytes, ...]
    raw: bytes
    internaldate: object

    @property
    def headers(self) -> email.message.Message:
        return email.message_from_bytes(self.raw, policy=email.policy.compat32)


@dataclass
class InboundWorld:
    dovecot: Dovecot
    pki: TestPKI
    practice: Issued
    partner: Issued
    files: Path

    def client(self) -> IMAPClient:
        c = IMAPClient("127.0.0.1", self.dovecot.port, ssl=True,
                       ssl_context=ssl.create_default_context(cafile=str(self.dovecot.ca_file)),
                       timeout=30)
        c.normalise_times = False
        c.login(USER, PASSWORD)
        return c

    def append(self, raw: bytes, folder: str = "INBOX", flags=(), when=None) -> None:
        c = self.client()
        try:
            c.append(folder, raw, flags=flags, msg_time=when)
        finally:
            c.logout()

    def mails(self, folder: str = "INBOX") -> list[Mail]:
        c = self.client()
        try:
            if not c.folder_exists(folder):
                return []
            c.select_folder(folder, readonly=True)
            data = c.fetch(c.search("ALL"), [b"FLAGS", b"BODY.PEEK[]", b"INTERNALDATE"])
            return [Mail(uid, tuple(d[b"FLAGS"]), bytes(d[b"BODY[]"]), d[b"INTERNALDATE"])
                    for uid, d in sorted(data.items())
                    if d.get(b"BODY[]") is not None]       # not expunged meanwhile
        finally:
            c.logout()

    def config(self, **mailbox) -> dict:
        pw = self.files / "imap.pass"
        pw.write_text(PASSWORD + "\n")
        pw.chmod(0o600)
        entry = {"name": "frontdesk", "host": "127.0.0.1", "port": self.dovecot.port,
                 "tls": "implicit", "ca_file": str(self.dovecot.ca_file), "user": USER,
                 "password_file": str(pw), "folders": ["INBOX"], "archive_folder": ARCHIVE,
                 **mailbox}
        return {"inbound": {"mailboxes": [entry], "reconnect_min": "0.2s",
                            "reconnect_max": "2s"}}

    def seed(self, daemon: Daemon) -> None:
        """The practice identity and the test root in the daemon's cert store."""
        store = CertStore(daemon.dir / "var" / "certs")
        cert, key = self.practice.write(self.files, "practice")
        store.import_identity(cert, None, "@smiledental.example", key_path=key)
        root = self.files / "root.pem"
        root.write_bytes(self.pki.root.cert_pem())
        store.add_anchor(root)

    def cms(self, *args: str, data: bytes) -> bytes:
        """``openssl cms`` output as a CRLF MIME entity (it starts with MIME-Version)."""
        run = openssl_cli.cms(*args, data=data)
        assert run.returncode == 0, run.stderr.decode()
        return canonical_crlf(run.stdout)

    def encrypted(self, n: int = 0, to: Issued | None = None, sign: bool = False) -> bytes:
        """A message from the partner, encrypted by ``openssl cms`` for the
        practice (or ``to``), optionally signed first."""
        to = to or self.practice
        recip, _ = to.write(self.files, f"recip-{to.cert.serial_number:x}")
        content = self.signed_entity() if sign else BODY
        return self.headers(n) + self.cms("-encrypt", "-aes256", "-binary", str(recip),
                                          data=content)

    def signed_entity(self, signer: Issued | None = None) -> bytes:
        """A multipart/signed entity over BODY, signed by the partner (or ``signer``)."""
        cert, key = (signer or self.partner).write(self.files, "signer")
        return self.cms("-sign", "-signer", str(cert), "-inkey", str(key), "-binary", data=BODY)

    def signed(self, n: int = 0, signer: Issued | None = None) -> bytes:
        return self.headers(n) + self.signed_entity(signer)

    @staticmethod
    def headers(n: int) -> bytes:
        return (f"From: Oral Surgeon <{PARTNER}>\r\nTo: {USER}\r\nSubject: Referral {n}\r\n"
                f"Date: Mon, 2 Nov 2026 10:{n // 60:02d}:{n % 60:02d} +0000\r\n"
                f"Message-ID: <ref-{n}@surgery.test>\r\n").encode()


def make_world(server: Dovecot, tmp_path: Path) -> InboundWorld:
    server.add_user(USER, PASSWORD)
    pki = TestPKI()
    files = tmp_path / "files"
    files.mkdir()
    return InboundWorld(server, pki, pki.leaf("frontdesk@smiledental.example"),
                        pki.leaf(PARTNER), files)


@pytest.fixture
def inbound_world(dovecot, tmp_path):
    return make_world(dovecot, tmp_path)


# Dovecot 2.3's capabilities after login, less IDLE and MOVE.
NO_IDLE_NO_MOVE = ("\nimap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT "
                   "SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT "
                   "MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
                   "LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
                   "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY SPECIAL-USE\n")


@pytest.fixture
def plain_world(tmp_path):
    """A Dovecot that offers neither IDLE nor MOVE (UIDPLUS only)."""
    if shutil.which("dovecot") is None:
        missing_peer("Dovecot (Debian package dovecot-imapd) is not installed")
    base = Path(tempfile.mkdtemp(prefix="phigate-dovecot-"))
    base.chmod(0o755)
    server = Dovecot(base / "d", extra_config=NO_IDLE_NO_MOVE)
    try:
        server.start()
        yield make_world(server, tmp_path)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
