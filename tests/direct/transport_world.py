"""Two practices for Direct tests: each its own root CA (separate anchors),
an address-bound identity for a staff address, and the helpers to put them
into certificate stores."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.config.models import UpstreamConfig
from gateway.crypto.certstore import CertStore
from gateway.delivery.smtp import UpstreamCourier
from tests.crypto.pki import Issued, TestPKI, write_p12, write_pem

SMILE = "frontdesk@direct.smile.example"
ORTHO = "dr.ortho@direct.ortho.example"
RAW = (b"From: Front Desk <frontdesk@direct.smile.example>\r\n"
       b"To: <dr.ortho@direct.ortho.example>\r\n"
       b"Subject: Referral tooth 30\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n"
       b"Message-ID: <ref-1@smile.example>\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
       b"Patient Zebulon Quill DOB 03/04/1961 needs D7240.\r\n")
BODY_TOKENS = (b"Zebulon", b"Quill", b"D7240", b"03/04/1961")


@dataclass
class Practice:
    pki: TestPKI
    person: Issued
    address: str

    def store(self, directory: Path) -> CertStore:
        """A store holding this practice's identity (for its address)."""
        store = CertStore(directory)
        p12 = write_p12(directory.parent / f"{directory.name}-id.p12", self.person, b"pw")
        store.import_identity(p12, b"pw", self.address)
        return store

    def anchor_file(self, path: Path) -> Path:
        return write_pem(path, self.pki.root.cert)

    def cert_file(self, path: Path) -> Path:
        return write_pem(path, self.person.cert)


def practice(name: str, address: str) -> Practice:
    pki = TestPKI(f"{name} Direct Root")
    return Practice(pki, pki.leaf(address), address)


def courier(port: int) -> UpstreamCourier:
    return UpstreamCourier(UpstreamConfig(host="127.0.0.1", port=port, tls="none"), "gw.test")
