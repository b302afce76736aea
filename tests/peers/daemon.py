"""The real daemon as a test peer: ``phigate -c CONFIG run`` in a subprocess.

``Daemon`` writes a config into a temp dir (free ports, its own spool and
state dir), adds a submission user through the real CLI, starts the daemon
with a NOTIFY_SOCKET it listens on and waits for READY=1 (so readiness is the
systemd protocol itself, not a sleep), and gives tests an authenticated
STARTTLS smtplib client that verifies the daemon's self-signed certificate.
"""
from __future__ import annotations

import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.peers.ports import free_port

PASSWORD = "correct horse battery staple"
USER = "frontdesk"
SENDER = "frontdesk@smiledental.example"


class NotifyListener:
    """A NOTIFY_SOCKET the test owns: collects sd_notify datagrams."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def wait_for(self, text: str, timeout: float, proc: subprocess.Popen | None = None,
                 count: int = 1) -> str:
        """Wait until ``count`` datagrams containing ``text`` have arrived."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [m for m in self.messages if text in m]
            if len(matching) >= count:
                return matching[count - 1]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {text!r} from the daemon; got {self.messages}")
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode} before {text!r}")
            self.sock.settimeout(min(remaining, 0.5))
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass

    def close(self) -> None:
        self.sock.close()


class Daemon:
    def __init__(self, workdir: Path, upstream_port: int | None, extra: dict | None = None):
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path = workdir / "phigate.log"
        self.config_path = workdir / "config.yaml"
        config = {
            "state_dir": "var",
            "listen": {"submission": {"address": f"127.0.0.1:{self.port}"}},
            "auth": {"users_file": "users.yaml"},
            "queue": {"dir": "var/spool", "retry": {"min": "1s", "max": "2s"}},
            "metrics": {"address": f"127.0.0.1:{self.metrics_port}"},
            "logging": {"level": "info", "file": "phigate.log"},
            "smtp": {"hostname": "gw.smiledental.example"},
        }
        if upstream_port is not None:
            config["upstream"] = {"host": "127.0.0.1", "port": upstream_port, "tls": "none"}
        for key, value in (extra or {}).items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        self.config_path.write_text(yaml.safe_dump(config))
        self.phigate(["users", "add", USER, "--sender", SENDER], input=PASSWORD + "\n")
        self.proc: subprocess.Popen | None = None
        self.notify: NotifyListener | None = None
        self.prefix: list[str] = []     # argv run before phigate (e.g. a sandboxing launcher)

    @property
    def spool(self) -> Path:
        return self.dir / "var" / "spool"

    def phigate(self, argv: list[str], input: str | None = None, check: bool = True):
        return subprocess.run([sys.executable, "-m", "gateway", "-c", str(self.config_path), *argv],
                              input=input, capture_output=True, text=True, check=check,
                              cwd=self.dir, timeout=120)

    def start(self, timeout: float = 60) -> None:
        sock_path = self.dir / f"notify-{time.monotonic_ns()}.sock"
        self.notify = NotifyListener(sock_path)
        env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "PHIGATE_STRICT_AUDIT": "1"}
        self.stderr = open(self.dir / "stderr.log", "ab")  # noqa: SIM115 — closed in stop()
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "gateway", "-c", str(self.config_path), "run"],
            cwd=self.dir, env=env, stdout=self.stderr, stderr=self.stderr)
        self.notify.wait_for("READY=1", timeout, self.proc)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.notify.close()
        self.stderr.close()
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.dir / "var" / "tls" / "cert.pem"))
        ctx.check_hostname = False     # the self-signed certificate names the gateway host
        return ctx

    def client(self, timeout: float = 30) -> smtplib.SMTP:
        smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=timeout)
        smtp.ehlo("client.smiledental.example")
        smtp.starttls(context=self.tls_context())
        smtp.ehlo("client.smiledental.example")
        smtp.login(USER, PASSWORD)
        return smtp

    def log_text(self) -> str:
        parts = []
        for name in ("phigate.log", "stderr.log"):
            p = self.dir / name
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "".join(parts)

    def queue_ids(self, area: str = "queue") -> list[str]:
        q = self.spool / area
        return sorted(n[:-4] for n in os.listdir(q) if n.endswith(".msg")) if q.exists() else []


@pytest.fixture
def daemon_factory(tmp_path):
    started: list[Daemon] = []

    def make(upstream_port: int | None, extra: dict | None = None, start: bool = True) -> Daemon:
        d = Daemon(tmp_path / f"gw{len(started)}", upstream_port, extra)
        started.append(d)
        if start:
            d.start()
        return d

    yield make
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.stop(signal.SIGKILL)
