"""A throwaway NSD authoritative DNS server for tests (Debian's ``nsd``).

Own config, zone files, pid and log in a temp directory; UDP and TCP on one
free loopback port; foreground (``-d``), stopped with SIGTERM. Zones are
zone-file text (CERT, SRV, A records…) given before ``start()``.

    server = Nsd(tmp_path / "nsd")
    server.add_zone("dd.test", "d1.dd.test. 300 IN CERT PKIX 0 0 <base64>\\n")
    server.start()            # server.address == "127.0.0.1:<port>" (UDP and TCP)

``running_nsd(directory, zones)`` is the same as a context manager, and the
``nsd`` fixture hands out a fresh, not yet started server.
"""
from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.peers import missing_peer, stop_process

CONFIG = """\
server:
    ip-address: 127.0.0.1
    port: {port}
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "{dir}"
    database: ""
    zonelistfile: "{dir}/zone.list"
    xfrdfile: "{dir}/xfrd.state"
    xfrdir: "{dir}"
    pidfile: "{dir}/nsd.pid"
    logfile: "{dir}/nsd.log"
    server-count: 1
    verbosity: 1
    hide-version: yes
remote-control:
    control-enable: no
{zones}"""

ZONE_HEAD = """\
$ORIGIN {origin}.
$TTL 300
@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 60
@ IN NS ns.{origin}.
ns IN A 127.0.0.1
"""


def free_udp_tcp_port() -> int:
    """A loopback port free for both TCP and UDP."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for both UDP and TCP")


def require_nsd() -> None:
    if shutil.which("nsd") is None:
        missing_peer("NSD (Debian package nsd) is not installed")


class Nsd:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.port = free_udp_tcp_port()
        self.zones: dict[str, str] = {}
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_zone(self, origin: str, records: str) -> None:
        """Zone ``origin`` with an SOA, an NS and then ``records`` (zone-file lines)."""
        origin = origin.rstrip(".")
        self.zones[origin] = ZONE_HEAD.format(origin=origin) + records

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stanzas = ""
        for origin, text in self.zones.items():
            (self.directory / f"{origin}.zone").write_text(text)
            stanzas += f'zone:\n    name: "{origin}"\n    zonefile: "{origin}.zone"\n'
        conf = self.directory / "nsd.conf"
        conf.write_text(CONFIG.format(port=self.port, dir=self.directory, zones=stanzas))
        check = subprocess.run(["nsd-checkconf", str(conf)], check=False, capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError("nsd.conf refused: " + check.stderr + check.stdout)
        for origin in self.zones:
            check = subprocess.run(["nsd-checkzone", origin,
                                    str(self.directory / f"{origin}.zone")],
                                   check=False, capture_output=True, text=True)
            if check.returncode != 0:
                raise RuntimeError(f"zone {origin} refused: " + check.stderr + check.stdout)
        self.process = subprocess.Popen(["nsd", "-d", "-c", str(conf)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait_answering(next(iter(self.zones), "."), timeout=30)

    def _wait_answering(self, origin: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        query = dns.message.make_query(origin + ".", "SOA")
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("nsd exited: " + self._diagnostics())
            with contextlib.suppress(dns.exception.Timeout, OSError):
                dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
                return
        raise RuntimeError("nsd did not answer: " + self._diagnostics())

    def _diagnostics(self) -> str:
        out = self.process.stdout.read().decode(errors="replace") if self.process.poll() is not None else ""
        log = self.directory / "nsd.log"
        return out[-1500:] + (log.read_text(errors="replace")[-1500:] if log.exists() else "")

    def stop(self) -> None:
        stop_process(self.process)


@contextlib.contextmanager
def running_nsd(directory: Path, zones: dict[str, str]):
    require_nsd()
    server = Nsd(directory)
    for origin, records in zones.items():
        server.add_zone(origin, records)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def nsd(tmp_path):
    """A fresh NSD (not started): ``add_zone`` then ``start``; stopped afterwards."""
    require_nsd()
    server = Nsd(tmp_path / "nsd")
    try:
        yield server
    finally:
        server.stop()
