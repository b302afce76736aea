"""S/MIME end to end through the daemon with the shipped default policy: a
PHI message to a partner whose certificate was imported (``phigate certs
import``) reaches the upstream sink signed and encrypted, and the partner's
key opens it with ``openssl cms``; the patient without a certificate gets
the portal instead (rule phi-to-others); staff get it relayed."""
from __future__ import annotations

import asyncio
import email
import email.policy
import subprocess

import pytest

from tests.crypto.pki import TestPKI, write_p12
from tests.integration.test_daemon_relay import message
from tests.integration.test_policy_daemon import portal_settings, send

pytestmark = pytest.mark.slow

SURGEON = "dr.jones@oralsurgery.example"
PATIENT = "maria.lopez@mail.example"
STAFF = "dr.smith@smiledental.example"
BODY = ("Referral for Maria Lopez, DOB 03/14/1982: tooth #17 impacted, extraction D7240. "
        "Chart 448812. Premedicate with amoxicillin 2g. Okapimarker.")


def openssl(*args: str, data: bytes) -> bytes:
    run = subprocess.run(["openssl", "cms", *args], input=data, capture_output=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    return run.stdout


async def test_phi_to_certificate_holder_goes_encrypted_and_patient_to_portal(
        daemon_factory, upstream_sink, tmp_path):
    pki = TestPKI()
    surgeon = pki.leaf(SURGEON)
    surgeon_cert, surgeon_key = surgeon.write(tmp_path, "surgeon")
    practice = pki.leaf("frontdesk@smiledental.example")
    password = tmp_path / "p12-password"
    password.write_text("p12 secret\n")
    password.chmod(0o600)
    p12 = write_p12(tmp_path / "practice.p12", practice, b"p12 secret", chain=[pki.root.cert])
    root = tmp_path / "root.pem"
    root.write_bytes(pki.root.cert_pem())

    daemon = daemon_factory(upstream_sink.port, extra={"portal": portal_settings()}, start=False)
    daemon.phigate(["certs", "import", str(surgeon_cert)])
    daemon.phigate(["certs", "identity", "import", str(p12), "--for", "@smiledental.example",
                    "--password-file", str(password)])
    daemon.start()

    raw = message(1, subject="Referral", body=BODY, to=f"{SURGEON}, {PATIENT}, {STAFF}")
    await asyncio.to_thread(send, daemon, raw, [SURGEON, PATIENT, STAFF])
    await upstream_sink.wait_for(3, timeout=60)
    by_rcpt = {m.rcpt_tos[0]: m.data for m in upstream_sink.messages}
    assert sorted(by_rcpt) == sorted([SURGEON, PATIENT, STAFF])

    encrypted = by_rcpt[SURGEON]
    for token in (b"Okapimarker", b"448812", b"D7240", b"amoxicillin"):
        assert token not in encrypted
    outer = email.message_from_bytes(encrypted, policy=email.policy.default)
    assert outer.get_content_type() == "application/pkcs7-mime"
    signed = openssl("-decrypt", "-recip", str(surgeon_cert), "-inkey", str(surgeon_key),
                     data=encrypted)
    opened = openssl("-verify", "-CAfile", str(root), data=signed)
    assert b"Okapimarker" in opened

    notice = by_rcpt[PATIENT]
    assert b"Okapimarker" not in notice and b"/register/" in notice
    assert by_rcpt[STAFF].endswith(raw)
    log = daemon.log_text()
    assert '"smime:phi-to-certificate-holders"' in log and '"portal:phi-to-others"' in log
    assert "Okapimarker" not in log and "p12 secret" not in log
    assert await asyncio.to_thread(daemon.stop) == 0


async def test_smime_without_a_certificate_takes_the_fallback(daemon_factory, upstream_sink,
                                                               tmp_path):
    policy = tmp_path / "smime-first.yaml"
    policy.write_text("""
rules:
  - name: phi-encrypted
    description: PHI is encrypted, or else goes through the portal
    when: {phi: true}
    action: smime
    fallbacks: [portal]
default: {action: relay}
""")
    daemon = daemon_factory(upstream_sink.port,
                            extra={"portal": portal_settings(), "policy": str(policy)})
    raw = message(2, subject="Referral", body=BODY, to=PATIENT)
    await asyncio.to_thread(send, daemon, raw, [PATIENT])
    await upstream_sink.wait_for(1, timeout=60)
    notice = upstream_sink.messages[0].data
    assert b"Okapimarker" not in notice and b"/register/" in notice
    log = daemon.log_text()
    assert '"smime:phi-encrypted"' in log and '"fallback": "portal"' in log
    assert await asyncio.to_thread(daemon.stop) == 0
