"""A throwaway Dovecot IMAP server for tests (Debian's ``dovecot-imapd``).

Unprivileged: the master runs as the ``dovecot`` system user when the tests
run as root (as the current user otherwise), with its own config, state and
maildirs in a temp directory, implicit TLS (a throwaway CA's certificate) on
a free loopback port (and STARTTLS on ``starttls_port``), and passwd-file
authentication. Stopped with SIGTERM; ``start()`` again after ``stop()``
brings the same server back on the same ports (a restart).

    mailbox = dovecot.add_user("dr.smith@smiledental.example", "secret")
    await dovecot.messages(user, password)   # [(flags, raw bytes), ...] in INBOX
"""
from __future__ import annotations

import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import aioimaplib
import pytest

from tests.peers import missing_peer, stop_process
from tests.peers.ports import free_port
from tests.peers.sink import make_tls

CONFIG = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = {uid}
last_valid_uid = {uid}
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{dir}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {starttls_port}
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    user = {user}
  }}
  unix_listener stats-writer {{
    user = {user}
  }}
}}
"""


class Dovecot:
    def __init__(self, directory: Path, extra_config: str = ""):
        self.directory = directory
        self.extra_config = extra_config     # appended to the config (e.g. imap_capability)
        self.port = free_port()
        self.starttls_port = free_port()     # plain IMAP port: STARTTLS (ssl = required)
        self.account = pwd.getpwnam("dovecot") if os.geteuid() == 0 else pwd.getpwuid(os.getuid())
        self.process: subprocess.Popen | None = None
        self.tls = make_tls(directory / "tls")
        self.passwd = directory / "passwd"

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def add_user(self, user: str, password: str) -> None:
        with self.passwd.open("a") as f:
            f.write(f"{user}:{password}\n")

    def start(self) -> None:
        for sub in ("run", "state", "mail", "home"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.passwd.touch()
        conf = self.directory / "dovecot.conf"
        conf.write_text(CONFIG.format(dir=self.directory, cert=self.tls.cert_file,
                                      key=self.tls.key_file, user=self.account.pw_name,
                                      group=self.account.pw_name, uid=self.account.pw_uid,
                                      gid=self.account.pw_gid, port=self.port,
                                      starttls_port=self.starttls_port) + self.extra_config)
        for path in self.directory.rglob("*"):
            os.chown(path, self.account.pw_uid, self.account.pw_gid)
        os.chown(self.directory, self.account.pw_uid, self.account.pw_gid)
        argv = ["dovecot", "-F", "-c", str(conf)]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", self.account.pw_name, "--", *argv]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait_listening(timeout=30)

    def _wait_listening(self, timeout: float) -> None:
        import socket
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("dovecot exited: " + self._diagnostics())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)      # polling a condition (the port), bounded by the deadline
        raise RuntimeError("dovecot did not listen: " + self._diagnostics())

    def _diagnostics(self) -> str:
        log = self.directory / "dovecot.log"
        out = self.process.stdout.read().decode(errors="replace") if self.process.poll() is not None else ""
        return out[-1500:] + (log.read_text(errors="replace")[-1500:] if log.exists() else "")

    def stop(self) -> None:
        stop_process(self.process)

    async def messages(self, user: str, password: str, folder: str = "INBOX"):
        """Every message in ``folder``: [(flags string, raw bytes)], read without setting \\Seen."""
        client = aioimaplib.IMAP4_SSL(host="127.0.0.1", port=self.port,
                                      ssl_context=self.ssl_context(), timeout=30)
        await client.wait_hello_from_server()
        assert (await client.login(user, password)).result == "OK"
        try:
            await client.select(folder)
            found = await client.uid_search("ALL")
            uids = found.lines[0].decode().split()
            out = []
            if uids:
                fetched = await client.uid("fetch", ",".join(uids), "(FLAGS BODY.PEEK[])")
                lines = fetched.lines
                for i, line in enumerate(lines):
                    if isinstance(line, bytearray):
                        head = lines[i - 1].decode(errors="replace")
                        flags = head.split("FLAGS (", 1)[1].split(")", 1)[0]
                        out.append((flags, bytes(line)))
            return out
        finally:
            await client.logout()


@pytest.fixture
def dovecot():
    if shutil.which("dovecot") is None:
        missing_peer("Dovecot (Debian package dovecot-imapd) is not installed")
    base = Path(tempfile.mkdtemp(prefix="phigate-dovecot-"))
    base.chmod(0o755)
    server = Dovecot(base / "d")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
