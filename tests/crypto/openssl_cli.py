"""``openssl cms`` as the independent implementation in interop tests."""
from __future__ import annotations

import subprocess
from pathlib import Path

from tests.crypto.pki import Issued


def cms(*args: str, data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "cms", *args], input=data, capture_output=True,
                          timeout=60, check=False)


def decrypt(message: bytes, who: Issued, tmp: Path) -> bytes:
    """What ``openssl cms -decrypt`` gets out of ``message`` with ``who``'s key."""
    cert, key = who.write(tmp, f"recip-{who.cert.serial_number:x}")
    run = cms("-decrypt", "-recip", str(cert), "-inkey", str(key), "-binary", data=message)
    assert run.returncode == 0, run.stderr.decode()
    return run.stdout


def verify(message: bytes, ca: Issued, tmp: Path) -> bytes:
    """The signed content after ``openssl cms -verify -CAfile ca`` accepted it."""
    ca_path = tmp / "ca.pem"
    ca_path.write_bytes(ca.cert_pem())
    run = cms("-verify", "-CAfile", str(ca_path), data=message)
    assert run.returncode == 0, run.stderr.decode()
    assert b"Verification successful" in run.stderr
    return run.stdout
