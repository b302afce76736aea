"""``phigate smime open`` with the configured certificate store and CRL cache:
verdict as a table or JSON, the opened message written 0600, exit status 1
on a failed decryption or an invalid signature."""
from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from gateway.cli import main
from gateway.crypto.certstore import CertStore
from tests.crypto import openssl_cli
from tests.crypto.pki import TestPKI, write_crl, write_p12, write_pem

CONTENT = b"Content-Type: text/plain\r\n\r\nPlease see the attached perio chart.\r\n"


@pytest.fixture(autouse=True)
def restore_logging():
    """The CLI configures structlog onto the captured stderr; undo it afterwards."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def setup(tmp_path):
    pki = TestPKI()
    sub = pki.intermediate()
    practice = pki.leaf("dr.lee@smile.test", issuer=sub)
    surgeon = pki.leaf("os@surgery.test", issuer=sub)
    state = tmp_path / "state"
    store = CertStore(state / "certs")
    store.import_identity(write_p12(tmp_path / "me.p12", practice, b"pw", [sub.cert]), b"pw",
                          "@smile.test")
    store.add_anchor(write_pem(tmp_path / "root.pem", pki.root.cert))
    config = tmp_path / "phigate.yaml"
    config.write_text(f"state_dir: {state}\nsmime:\n  crl: hard\n")
    (state / "crl").mkdir()
    write_crl(state / "crl" / "root.crl", pki.crl(pki.root))
    write_crl(state / "crl" / "sub.crl", pki.crl(sub))
    cert, key = surgeon.write(tmp_path, "surgeon")
    chain = write_pem(tmp_path / "sub.pem", sub.cert)
    signed = _ossl("-sign", "-binary", "-signer", str(cert), "-inkey", str(key), "-certfile",
                   str(chain), data=CONTENT)
    recipient = practice.write(tmp_path, "practice")[0]
    enc = _ossl("-encrypt", "-binary", "-aes-256-gcm", "-from", "os@surgery.test", "-to",
                "dr.lee@smile.test", "-subject", "chart", "-recip", str(recipient), data=signed)
    message = tmp_path / "in.eml"
    message.write_bytes(enc)
    return pki, sub, surgeon, config, message, state


def _ossl(*args: str, data: bytes) -> bytes:
    run = openssl_cli.cms(*args, data=data)
    assert run.returncode == 0, run.stderr.decode()
    return run.stdout


def smime_open(config: Path, *argv: str) -> int:
    return main(["-c", str(config), "smime", "open", *argv])


def test_open_json_and_output(setup, tmp_path, capsys):
    _, _, _, config, message, _ = setup
    out = tmp_path / "out.eml"
    assert smime_open(config, str(message), "--json", "--output", str(out)) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["decrypted"] == "yes" and verdict["cipher"] == "aes256_gcm"
    assert verdict["signature"] == "valid"
    assert verdict["signature_signer"] == "os@surgery.test"
    assert verdict["signature_revocation"] == "good"            # both CRLs from the cache
    opened = out.read_bytes()
    assert b"X-Phigate-Signature: valid; signer=os@surgery.test; trusted=yes\r\n" in opened
    assert opened.endswith(CONTENT.split(b"\r\n\r\n", 1)[1])
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_open_table(setup, capsys):
    _, _, _, config, message, _ = setup
    assert smime_open(config, str(message)) == 0
    out = capsys.readouterr().out
    assert out.startswith("FIELD")
    assert "signature_signer" in out and "os@surgery.test" in out
    assert "perio" not in out.lower()


def test_revoked_signer_in_the_crl_cache(setup, capsys):
    pki, sub, surgeon, config, message, state = setup
    write_crl(state / "crl" / "sub.crl", pki.crl(sub, revoked=[surgeon.cert.serial_number],
                                                 number=2))
    assert smime_open(config, str(message), "--json") == 1
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["signature"] == "invalid"
    assert verdict["signature_reason"] == "signer revoked"


def test_hard_mode_without_crls(setup, capsys):
    _, _, _, config, message, state = setup
    for crl in (state / "crl").iterdir():
        crl.unlink()
    assert smime_open(config, str(message), "--json") == 1
    assert json.loads(capsys.readouterr().out)["signature_reason"] == "revocation status unknown"


def test_no_identity_for_the_message(setup, tmp_path, capsys):
    _, _, _, config, _, _ = setup
    stranger = TestPKI().leaf("x@y.test")
    cert = stranger.write(tmp_path, "stranger")[0]
    other = tmp_path / "other.eml"
    other.write_bytes(_ossl("-encrypt", "-binary", "-aes256", "-recip", str(cert), data=CONTENT))
    assert smime_open(config, str(other), "--json") == 1
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["decrypted"] == "failed"
    assert verdict["decrypt_reason"] == "no matching recipient key"


def test_missing_file(setup, tmp_path, capsys):
    _, _, _, config, _, _ = setup
    assert smime_open(config, str(tmp_path / "nope.eml")) == 1
    assert "cannot read" in capsys.readouterr().err


def test_as_a_process_stdout_is_only_json(setup):
    _, _, _, config, message, _ = setup
    run = subprocess.run([sys.executable, "-m", "gateway", "-c", str(config), "smime", "open",
                          str(message), "--json"], capture_output=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2], check=False)
    assert run.returncode == 0, run.stderr.decode()
    assert json.loads(run.stdout)["signature"] == "valid"
