"""``phigate certs …`` as an administrator runs it (a real subprocess)."""
from __future__ import annotations

import datetime as dt
import json
import stat
import subprocess
import sys

import pytest

from gateway.crypto.certstore import fingerprint
from tests.crypto.pki import TestPKI, write_p7, write_p12, write_pem


@pytest.fixture(scope="module")
def pki():
    return TestPKI()


@pytest.fixture
def phigate(tmp_path):
    config = tmp_path / "phigate.yaml"
    config.write_text(f"state_dir: {tmp_path / 'var'}\n")

    def run(*args: str, stdin: bytes = b"", ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "gateway", "-c", str(config), "certs", *args],
                              input=stdin, capture_output=True, timeout=60, check=False)
        assert (done.returncode == 0) is ok, done.stderr.decode()
        return done
    return run


def test_import_list_show_remove(pki, phigate, tmp_path):
    sub = pki.intermediate()
    good = pki.leaf("os@surgery.test", issuer=sub)
    soon = pki.leaf("lab@lab.test", not_after=pki.now + dt.timedelta(days=5))
    old = pki.leaf("old@lab.test", expired=True)
    out = phigate("import", str(write_p7(tmp_path / "os.p7b", [good.cert, sub.cert]))).stdout
    assert b"imported " + fingerprint(good.cert)[:16].encode() + b" for os@surgery.test" in out
    phigate("import", str(write_pem(tmp_path / "b.pem", soon.cert, old.cert)))
    phigate("import", str(write_pem(tmp_path / "c.pem", good.cert)), "--for", "frontdesk@surgery.test")

    table = phigate("list").stdout.decode().splitlines()
    assert table[0].split()[:3] == ["FINGERPRINT", "KIND", "ADDRESS"]
    rows = {line.split()[0]: line for line in table[1:]}
    assert "EXPIRED" in rows[fingerprint(old.cert)[:16]]
    assert "expiring soon" in rows[fingerprint(soon.cert)[:16]]
    assert "os@surgery.test, frontdesk@surgery.test" in rows[fingerprint(good.cert)[:16]]
    assert "import:os.p7b" in rows[fingerprint(good.cert)[:16]]
    assert "intermediate" in rows[fingerprint(sub.cert)[:16]]

    listed = json.loads(phigate("list", "--json").stdout)
    by_fp = {r["fingerprint"]: r for r in listed}
    assert by_fp[fingerprint(old.cert)]["status"] == "expired"
    assert by_fp[fingerprint(good.cert)]["key_usage"] == ["digital_signature", "key_encipherment"]
    assert by_fp[fingerprint(good.cert)]["extended_key_usage"] == ["emailProtection"]

    shown = json.loads(phigate("show", fingerprint(good.cert)[:10], "--json").stdout)
    assert shown["addresses"] == ["os@surgery.test", "frontdesk@surgery.test"]
    assert b"not after" in phigate("show", fingerprint(good.cert)[:10]).stdout

    phigate("remove", fingerprint(old.cert)[:12])
    assert fingerprint(old.cert) not in phigate("list", "--json").stdout.decode()
    assert b"no certificate" in phigate("remove", fingerprint(old.cert)[:12], ok=False).stderr


def test_identity_import_with_password_on_stdin_or_file(pki, phigate, tmp_path):
    me = pki.leaf("dr.lee@smile.test")
    p12 = write_p12(tmp_path / "me.p12", me, b"s3cret pass")
    out = phigate("identity", "import", str(p12), "--for", "@smile.test",
                  stdin=b"s3cret pass\n").stdout
    assert b"identity for @smile.test" in out
    (tmp_path / "pw").write_bytes(b"s3cret pass\n")
    phigate("identity", "import", str(p12), "--password-file", str(tmp_path / "pw"))
    wrong = phigate("identity", "import", str(p12), stdin=b"nope\n", ok=False)
    assert b"cannot read the identity" in wrong.stderr

    listed = json.loads(phigate("list", "--json").stdout)
    assert sorted(a for r in listed if r["kind"] == "identity" for a in r["addresses"]) == \
        ["@smile.test", "dr.lee@smile.test", "dr.lee@smile.test"]
    keys = list((tmp_path / "var" / "certs" / "identities").glob("*/key.pem"))
    assert len(keys) == 2 and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
    everything = b"".join(phigate(*a).stdout + phigate(*a).stderr
                          for a in (("list",), ("list", "--json")))
    assert b"PRIVATE KEY" not in everything and b"s3cret" not in everything


def test_identity_import_pem_key_and_anchor(pki, phigate, tmp_path):
    me = pki.leaf("billing@smile.test")
    cert, key = me.write(tmp_path, "billing")
    phigate("identity", "import", str(cert), "--key", str(key), "--for", "billing@smile.test")
    out = phigate("anchor", "add", str(write_pem(tmp_path / "root.pem", pki.root.cert))).stdout
    assert b"trust anchor " + fingerprint(pki.root.cert)[:16].encode() in out
    kinds = {r["kind"] for r in json.loads(phigate("list", "--json").stdout)}
    assert kinds == {"identity", "anchor"}


def test_bad_file_is_a_clear_error(phigate, tmp_path):
    (tmp_path / "x.pem").write_text("hello")
    assert b"x.pem: no certificate found" in phigate("import", str(tmp_path / "x.pem"),
                                                     ok=False).stderr
