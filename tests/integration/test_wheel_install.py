"""Install phigate as an operator does and relay a message with it.

``python -m build`` makes the sdist and, from it, the wheel; the wheel goes
into a fresh venv in a temp dir outside the checkout (pip may reuse its cache;
no network besides the package index). ``phigate run`` then starts from
another temp dir on the embedded defaults — no ``policy:`` key, so the
shipped policy must come from the installed package — with only the two
listening ports moved to free ones so that the test can run beside others.
swaks submits over STARTTLS + AUTH PLAIN, verifying the self-signed
certificate the daemon made, and the message must land in the local outbox
(no upstream is configured by default).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.peers import missing_peer
from tests.peers.daemon import NotifyListener
from tests.peers.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
SENDER = "frontdesk@smiledental.example"

pytestmark = pytest.mark.slow


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
    return result


def clean_env() -> dict[str, str]:
    """The environment without anything that would put the checkout on sys.path."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "NOTIFY_SOCKET"}}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding phigate from its wheel."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
        env=clean_env(), timeout=900)
    wheels = list(dist.glob("phigate-*.whl"))
    assert len(wheels) == 1, wheels
    venv = base / "venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheels[0])],
        env=clean_env(), timeout=900)
    return venv / "bin"


def test_installed_package_is_outside_the_checkout(installed, tmp_path):
    where = run([str(installed / "python"), "-c", "import gateway; print(gateway.__file__)"],
                cwd=tmp_path, env=clean_env(), timeout=60).stdout.strip()
    assert Path(where).is_relative_to(installed.parent), where
    assert not Path(where).resolve().is_relative_to(ROOT), where
    shipped = Path(where).parent / "policies" / "default.yaml"
    assert shipped.is_file(), "the shipped default policy is not package data"


def test_version_comes_from_pyproject(installed, tmp_path):
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    out = run([str(installed / "phigate"), "--version"], cwd=tmp_path, env=clean_env(),
              timeout=60).stdout
    assert out.strip() == f"phigate {expected}"


def test_wheel_install_relays_on_embedded_defaults(installed, tmp_path):
    swaks = shutil.which("swaks")
    if swaks is None:
        missing_peer("swaks (Debian package swaks) is not installed")
    work = tmp_path / "run"
    work.mkdir()
    phigate = str(installed / "phigate")
    port, metrics_port = free_port(), free_port()
    # The defaults listen on 127.0.0.1:2587 and :9587; only those move (tests run side by side).
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump({
        "listen": {"submission": {"address": f"127.0.0.1:{port}"}},
        "metrics": {"address": f"127.0.0.1:{metrics_port}"}}))
    assert "policy" not in yaml.safe_load(config.read_text())
    run([phigate, "-c", str(config), "users", "add", "frontdesk", "--sender", SENDER],
        input=PASSWORD + "\n", cwd=work, env=clean_env(), timeout=120)

    notify = NotifyListener(work / "notify.sock")
    env = {**clean_env(), "NOTIFY_SOCKET": str(notify.path)}
    with open(work / "stderr.log", "wb") as log:
        proc = subprocess.Popen([phigate, "-c", str(config), "run"], cwd=work, env=env,
                                stdout=log, stderr=log)
        try:
            try:
                notify.wait_for("READY=1", 120, proc)
            except (RuntimeError, TimeoutError) as exc:
                raise AssertionError(f"{exc}\n{(work / 'stderr.log').read_text()}") from None
            result = subprocess.run(
                [swaks, "--server", "127.0.0.1", "--port", str(port), "--tls",
                 "--tls-verify", "--tls-ca-path", str(work / "var" / "tls" / "cert.pem"),
                 "--auth", "PLAIN", "--auth-user", "frontdesk", "--auth-password", PASSWORD,
                 "--from", SENDER, "--to", "lab@partner.example",
                 "--header", "Subject: wheel install", "--body", "hello from the wheel"],
                capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "queued as" in result.stdout
            outbox = work / "var" / "outbox"
            deadline = time.monotonic() + 60
            while not list(outbox.glob("*.eml")) and time.monotonic() < deadline:
                assert proc.poll() is None, (work / "stderr.log").read_text()
                time.sleep(0.05)        # polling the outbox for the condition, bounded above
            landed = list(outbox.glob("*.eml"))
            assert len(landed) == 1, (work / "stderr.log").read_text()
            assert b"hello from the wheel" in landed[0].read_bytes()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
            notify.close()
    assert code == 0, (work / "stderr.log").read_text()
