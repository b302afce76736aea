"""systemd/phigate.service and its sysusers/tmpfiles companions.

- ``systemd-analyze verify`` accepts the unit (on a copy whose ExecStart points
  at this checkout's ``phigate``, since /opt/phigate does not exist here);
- ``systemd-analyze security --offline=true`` scores it at most 2.0;
- the settings the daemon relies on agree with the code (notify protocol,
  reload by SIGHUP, stop timeout ≥ the daemon's grace periods, writable paths
  = the directories tmpfiles creates);
- sysusers + tmpfiles create the user and the private directories;
- MemoryDenyWriteExecute=yes does not break the native stack: the kernel's
  PR_SET_MDWE (the same W^X rule) is set on a child that then imports and
  uses cryptography, argon2-cffi, google-re2, uvloop and ctypes, and on the
  real daemon relaying a message.
"""
from __future__ import annotations

import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.app import Gateway
from tests.peers import missing_peer

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "phigate.service"
SYSUSERS = ROOT / "systemd" / "phigate.sysusers"
TMPFILES = ROOT / "systemd" / "phigate.tmpfiles"
INSTALLED_EXEC = "/opt/phigate/bin/phigate"
MAX_EXPOSURE = 2.0

@pytest.fixture
def analyze():
    if shutil.which("systemd-analyze") is None:
        missing_peer("systemd-analyze is not installed (.ci/system-deps)")


def settings(path: Path = UNIT) -> dict[str, list[str]]:
    """[Service]-and-all key → every value given (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def one(key: str) -> str:
    values = settings()[key]
    assert len(values) == 1, (key, values)
    return values[0]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


@pytest.fixture
def local_unit(tmp_path) -> Path:
    """The unit with ExecStart pointing at this checkout's phigate."""
    phigate = Path(sys.executable).with_name("phigate")
    assert phigate.exists(), f"{phigate}: install the project (pip install -e .)"
    text = UNIT.read_text()
    assert INSTALLED_EXEC in text
    copy = tmp_path / "phigate.service"
    copy.write_text(text.replace(INSTALLED_EXEC, str(phigate)))
    return copy


# ---- systemd-analyze -----------------------------------------------------------------
def test_systemd_analyze_verify_accepts_the_unit(analyze, local_unit):
    run = subprocess.run(["systemd-analyze", "verify", str(local_unit)],
                         check=False, capture_output=True, text=True, timeout=120)
    complaints = [line for line in (run.stdout + run.stderr).splitlines()
                  if "phigate" in line]
    assert run.returncode == 0 and not complaints, run.stdout + run.stderr


def test_security_exposure_is_at_most_2(analyze, local_unit):
    help_text = subprocess.run(["systemd-analyze", "security", "--help"],
                               check=False, capture_output=True, text=True, timeout=60).stdout
    if "--offline" not in help_text:
        missing_peer("this systemd-analyze has no `security --offline` (needs systemd ≥ 250)")
    run = subprocess.run(["systemd-analyze", "security", "--offline=true", str(local_unit)],
                         check=False, capture_output=True, text=True, timeout=120)
    match = re.search(r"Overall exposure level for phigate\.service: (\d+\.\d+) (\w+)",
                      run.stdout)
    assert match, run.stdout + run.stderr
    score = float(match.group(1))
    print(f"\nsystemd-analyze security: {score} {match.group(2)}")
    assert score <= MAX_EXPOSURE, run.stdout


# ---- what the unit promises matches the code ---------------------------------------
def test_notify_watchdog_and_reload_by_sighup():
    assert one("Type") == "notify"
    # only the main process (the daemon, or the supervisor of workers) talks to systemd
    assert one("NotifyAccess") == "main"
    assert seconds(one("WatchdogSec")) >= 10
    assert one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one("ExecStart") == f"{INSTALLED_EXEC} -c /etc/phigate/config.yaml run"
    assert one("KillMode") == "mixed"          # SIGTERM to the supervisor only; it forwards


def test_stop_timeout_covers_the_daemons_grace_periods():
    """Gateway.stop waits up to ``grace`` for SMTP transactions and again for
    delivery attempts; systemd must not SIGKILL before both are over."""
    grace = inspect.signature(Gateway.stop).parameters["grace"].default
    assert seconds(one("TimeoutStopSec")) >= 2 * grace + 10


def test_hardening_and_writable_paths_match_tmpfiles():
    s = settings()
    for key, value in {"User": "phigate", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "UMask": "0077",
                       "CapabilityBoundingSet": "CAP_NET_BIND_SERVICE",
                       "AmbientCapabilities": "CAP_NET_BIND_SERVICE",
                       "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
                       "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native",
                       "LockPersonality": "yes", "RestrictNamespaces": "yes",
                       "ProtectControlGroups": "yes"}.items():
        assert s.get(key) == [value], key
    assert "@system-service" in s["SystemCallFilter"]
    writable = set(one("ReadWritePaths").split())
    created = {line.split()[1] for line in TMPFILES.read_text().splitlines()
               if line.startswith("d ") and "phigate phigate" in line}
    assert writable == created == {"/var/lib/phigate", "/var/spool/phigate"}


def test_sysusers_and_tmpfiles_create_user_and_private_dirs(tmp_path):
    if shutil.which("systemd-sysusers") is None:
        missing_peer("systemd-sysusers is not installed (.ci/system-deps)")
    if os.geteuid() != 0:
        missing_peer("systemd-tmpfiles must chown: run as root (as make test does)")
    (tmp_path / "etc").mkdir()
    subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)],
                   check=True, capture_output=True, timeout=60)
    passwd = (tmp_path / "etc" / "passwd").read_text()
    entry = next(line for line in passwd.splitlines() if line.startswith("phigate:"))
    uid = int(entry.split(":")[2])
    assert entry.endswith(":/usr/sbin/nologin")
    subprocess.run(["systemd-tmpfiles", "--create", f"--root={tmp_path}", str(TMPFILES)],
                   check=True, capture_output=True, timeout=60)
    for path in ("var/lib/phigate", "var/spool/phigate"):
        st = (tmp_path / path).stat()
        assert (st.st_uid, st.st_mode & 0o777) == (uid, 0o700), path


# ---- MemoryDenyWriteExecute: the native stack under W^X ------------------------------
# Runs argv[1:] with the kernel's W^X rule (PR_SET_MDWE, Linux ≥ 6.3): the
# same rule MemoryDenyWriteExecute=yes applies, inherited across exec.
WX_LAUNCHER = [sys.executable, "-c", """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:       # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit("PR_SET_MDWE: " + os.strerror(ctypes.get_errno()))
os.execv(sys.argv[1], sys.argv[1:])
"""]


def mdwe_available() -> bool:
    probe = subprocess.run([*WX_LAUNCHER, sys.executable, "-c", "pass"], check=False,
                           capture_output=True, timeout=60)
    return probe.returncode == 0


needs_mdwe = pytest.mark.skipif(not sys.platform.startswith("linux") or not mdwe_available(),
                                reason="kernel without PR_SET_MDWE (Linux < 6.3)")

STACK_PROBE = r"""
import asyncio, ctypes, mmap
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    pass
else:
    raise SystemExit("W^X is not enforced in this process")
import argon2, re2, uvloop
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from gateway.policy.classifiers import build_classifier
from gateway.supervisor import die_with_parent
hasher = argon2.PasswordHasher()
assert hasher.verify(hasher.hash("a long password"), "a long password")
assert re2.compile(r"D\d{4}").search("code D2740 today")
key = ec.generate_private_key(ec.SECP256R1())
key.public_key().verify(key.sign(b"x", ec.ECDSA(hashes.SHA256())), b"x",
                        ec.ECDSA(hashes.SHA256()))
raw = b"Subject: visit\r\n\r\nPatient DOB 04/12/1961, D2740 crown on tooth 14.\r\n"
assert build_classifier().classify(raw).phi
die_with_parent()
async def main():
    return await asyncio.sleep(0, "ok")
assert uvloop.run(main()) == "ok"
print("stack ok")
"""


@needs_mdwe
def test_native_stack_runs_with_write_execute_denied():
    run = subprocess.run([*WX_LAUNCHER, sys.executable, "-c", STACK_PROBE], check=False,
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0 and "stack ok" in run.stdout, run.stdout + run.stderr


@pytest.mark.slow
@needs_mdwe
async def test_daemon_relays_with_write_execute_denied(daemon_factory, upstream_sink):
    import asyncio

    daemon = daemon_factory(upstream_sink.port, start=False)
    daemon.prefix = WX_LAUNCHER
    await asyncio.to_thread(daemon.start)

    def submit():
        with daemon.client() as smtp:
            smtp.sendmail("frontdesk@smiledental.example", ["lab@partner.example"],
                          b"Subject: w^x\r\n\r\nhello under MDWE\r\n")
    await asyncio.to_thread(submit)
    await upstream_sink.wait_for(1, timeout=60)
    assert await asyncio.to_thread(daemon.stop) == 0
