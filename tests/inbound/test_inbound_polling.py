"""A server without IDLE and without MOVE: phigate polls (state ``polling``),
and archives the original by COPY, STORE \\Deleted and UID EXPUNGE of that
UID only; another message the user marked \\Deleted stays."""
from __future__ import annotations

import json

from tests.inbound.conftest import ARCHIVE, USER, wait_until


def status(d) -> dict:
    return json.loads(d.phigate(["inbound", "status", "--json"]).stdout)["mailboxes"][0]


def test_polling_and_archive_without_move(plain_world, daemon_factory):
    w = plain_world
    c = w.client()
    caps = c.capabilities()
    c.logout()
    assert b"IDLE" not in caps and b"MOVE" not in caps and b"UIDPLUS" in caps
    keep = (f"From: a@b.test\r\nTo: {USER}\r\nSubject: deleted by the user\r\n\r\nx\r\n"
            ).encode()
    w.append(keep, flags=[b"\\Deleted"])
    d = daemon_factory(None, w.config(poll_interval="0.5s"), start=False)
    w.seed(d)
    d.start()
    wait_until(lambda: status(d)["connection"] == "polling", what="polling")
    w.append(w.encrypted(1))
    wait_until(lambda: len(w.mails(ARCHIVE)) == 1, what="the original archived")
    inbox = w.mails()
    subjects = sorted(m.headers["Subject"] for m in inbox)
    assert subjects == ["Referral 1", "deleted by the user"]
    opened = next(m for m in inbox if m.headers["Subject"] == "Referral 1")
    assert opened.headers["X-Phigate-Decrypted"] == "yes"
    assert w.mails(ARCHIVE)[0].headers["Content-Type"].startswith("application/pkcs7-mime")
    assert d.stop() == 0
