"""A partner certificate whose address is only in the subject DN
(emailAddress, no SAN) binds the same way in both directions: outbound finds
it as the recipient's encryption certificate, inbound binds its signature to
the From address. A certificate with a SAN binds only the SAN, both ways."""
from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.crypto.certstore import CertStore, Identity
from gateway.crypto.inbound import open_message
from gateway.crypto.smime_out import sign_only
from tests.crypto.pki import EMAIL, Issued, TestPKI, make_key, write_pem

DN_ONLY = "dn.only@partner.test"


def subject_email_leaf(pki: TestPKI, email: str, san: tuple[str, ...] = ()) -> Issued:
    key = make_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Partner"),
                      x509.NameAttribute(NameOID.EMAIL_ADDRESS, email)])
    cert = pki._build(name, key, pki.root, pki.root.key, ca=False, key_usage="both",
                      eku=[EMAIL], san=san)
    return Issued(cert, key)


def signed_from(who: Issued, sender: str) -> bytes:
    raw = (f"From: {sender}\r\nTo: dr.lee@smile.test\r\nSubject: s\r\n"
           "Content-Type: text/plain\r\n\r\nhello\r\n").encode()
    return sign_only(raw, Identity(sender, who.cert, who.key))


def test_subject_dn_address_binds_outbound_and_inbound(tmp_path):
    pki = TestPKI()
    partner = subject_email_leaf(pki, "Dn.Only@Partner.test")
    store = CertStore(tmp_path / "certs")
    store.import_certificates(write_pem(tmp_path / "p.pem", partner.cert))
    assert store.certificate_for(DN_ONLY) == partner.cert
    result = open_message(signed_from(partner, DN_ONLY), identities=[],
                          anchors=[pki.root.cert])
    assert result.verdict()["signature"] == "valid"
    assert result.signature.signer == DN_ONLY


def test_san_wins_over_subject_dn_in_both_directions(tmp_path):
    pki = TestPKI()
    partner = subject_email_leaf(pki, DN_ONLY, san=("san@partner.test",))
    store = CertStore(tmp_path / "certs")
    store.import_certificates(write_pem(tmp_path / "p.pem", partner.cert))
    assert store.certificate_for(DN_ONLY) is None
    assert store.certificate_for("san@partner.test") == partner.cert
    result = open_message(signed_from(partner, DN_ONLY), identities=[],
                          anchors=[pki.root.cert])
    assert result.signature.reason == "signer address does not match From"
