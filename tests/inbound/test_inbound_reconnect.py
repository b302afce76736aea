"""Dovecot restarted while phigate is in IDLE: the watcher sees the drop
(state ``disconnected`` with the error), reconnects within its backoff
bound once the server is back, and opens a message that arrived while the
server was down (written into the maildir, as a delivery agent would)."""
from __future__ import annotations

import json
import os

from tests.inbound.conftest import USER, wait_until


def status(d) -> dict:
    return json.loads(d.phigate(["inbound", "status", "--json"]).stdout)["mailboxes"][0]


def deliver_offline(dovecot, raw: bytes) -> None:
    new = dovecot.directory / "mail" / USER / "new"
    path = new / "1764892800.M1P1.phigate-test"
    path.write_bytes(raw)
    os.chown(path, dovecot.account.pw_uid, dovecot.account.pw_gid)


def test_dovecot_restart_during_idle(inbound_world, daemon_factory):
    w = inbound_world
    d = daemon_factory(None, w.config(), start=False)
    w.seed(d)
    d.start()
    wait_until(lambda: status(d)["connection"] == "idle", what="IDLE")
    w.dovecot.stop()
    wait_until(lambda: status(d)["connection"] == "disconnected", what="the drop noticed")
    assert status(d)["last_error"]
    deliver_offline(w.dovecot, w.encrypted(5))
    w.dovecot.start()
    # reconnect_max is 2s: a bounded wait far above it, never a timing assertion
    copy = wait_until(lambda: [m for m in w.mails() if m.headers["X-Phigate-Queue-Id"]],
                      timeout=60, what="the readable copy")
    assert copy[0].headers["X-Phigate-Decrypted"] == "yes"
    wait_until(lambda: status(d)["connection"] == "idle", what="IDLE again")
    assert d.stop() == 0
