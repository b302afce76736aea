"""A throwaway OpenLDAP server for tests (Debian's ``slapd``).

Own ``slapd.conf`` (core, cosine, inetOrgPerson schemas; one mdb database per
suffix, so the rootDSE lists several ``namingContexts``), data loaded with
``slapadd`` before start, anonymous read access, a free loopback port,
foreground (``-d 0``), stopped with SIGTERM.

    server = Slapd(tmp_path / "ldap", ["dc=a,dc=test", "dc=b,dc=test"])
    server.add_person("dc=b,dc=test", "d6", mail="d6@x.test", certificates=[der])
    server.start()            # server.port
"""
from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.peers import missing_peer, stop_process
from tests.peers.ports import free_port

SCHEMAS = ("core", "cosine", "inetorgperson")
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib/x86_64-linux-gnu/ldap", "/usr/lib/aarch64-linux-gnu/ldap")


def require_slapd() -> None:
    if shutil.which("slapd") is None or shutil.which("slapadd") is None:
        missing_peer("OpenLDAP (Debian package slapd) is not installed")


def _rdn_value(dn: str) -> tuple[str, str]:
    first = dn.split(",", 1)[0]
    attr, _, value = first.partition("=")
    return attr, value


class Slapd:
    def __init__(self, directory: Path, suffixes: Sequence[str]):
        self.directory = Path(directory)
        self.suffixes = list(suffixes)
        self.port = free_port()
        self.entries: dict[str, list[str]] = {s: [] for s in self.suffixes}
        self.process: subprocess.Popen | None = None

    def add_person(self, suffix: str, cn: str, *, mail: str,
                   certificates: Sequence[bytes] = ()) -> None:
        """An inetOrgPerson ``cn=<cn>,<suffix>`` with ``mail`` and DER certificates
        in ``userCertificate;binary`` (slapd insists on the binary transfer
        option for this syntax; it answers a request for plain
        ``userCertificate`` with the same values)."""
        attr = "userCertificate;binary"
        lines = [f"dn: cn={cn},{suffix}", "objectClass: inetOrgPerson", f"cn: {cn}",
                 f"sn: {cn}", f"mail: {mail}"]
        lines += [f"{attr}:: {base64.b64encode(der).decode()}" for der in certificates]
        self.entries[suffix].append("\n".join(lines))

    def _config(self) -> str:
        module_dir = next((d for d in MODULE_DIRS if Path(d, "back_mdb.so").exists()), None)
        lines = [f"include /etc/ldap/schema/{s}.schema" for s in SCHEMAS]
        lines += [f"pidfile {self.directory}/slapd.pid", f"argsfile {self.directory}/slapd.args"]
        if module_dir:
            lines += [f"modulepath {module_dir}", "moduleload back_mdb"]
        for i, suffix in enumerate(self.suffixes):
            db = self.directory / f"db{i}"
            db.mkdir(parents=True, exist_ok=True)
            lines += ["database mdb", f'suffix "{suffix}"', f"directory {db}",
                      "maxsize 10485760", "access to * by * read"]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "slapd.conf"
        conf.write_text(self._config())
        for suffix in self.suffixes:
            attr, value = _rdn_value(suffix)
            top = [f"dn: {suffix}", "objectClass: dcObject", "objectClass: organization",
                   f"o: {value}", f"{attr}: {value}"]
            ldif = self.directory / f"{value}.ldif"
            ldif.write_text("\n\n".join(["\n".join(top), *self.entries[suffix]]) + "\n")
            done = subprocess.run(["slapadd", "-f", str(conf), "-b", suffix, "-l", str(ldif)],
                                  check=False, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"slapadd {suffix}: {done.stderr[-1500:]}")
        self.process = subprocess.Popen(
            ["slapd", "-f", str(conf), "-h", f"ldap://127.0.0.1:{self.port}/", "-d", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait_listening(timeout=30)

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out = self.process.stdout.read().decode(errors="replace")
                raise RuntimeError("slapd exited: " + out[-1500:])
            with contextlib.suppress(OSError), \
                    socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.05)      # polling a condition (the port), bounded by the deadline
        raise RuntimeError("slapd did not listen")

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def slapd_factory(tmp_path):
    """``slapd_factory(suffixes) -> Slapd`` (not started); all stopped afterwards."""
    require_slapd()
    servers: list[Slapd] = []

    def make(suffixes: Sequence[str]) -> Slapd:
        server = Slapd(tmp_path / f"slapd{len(servers)}", suffixes)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
