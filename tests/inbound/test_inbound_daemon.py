"""The daemon watching a real Dovecot mailbox (implicit TLS, test CA):

* a message ``openssl cms`` encrypted for the practice → the readable copy
  is in INBOX, unread, with the result headers, the queue id, the original's
  Date, INTERNALDATE and other flags; the original is in the archive folder
  (created on demand);
* a signed-only message → verification headers, original archived;
* a message for a key phigate does not have, one signed by a certificate
  from an unknown CA, and garbage → each left in place (flagged
  ``$PhigateFailed``), a PHI-free failure notice beside it;
* plain mail is not touched at all;
* ``phigate inbound status`` shows the mailbox (table and JSON).
"""
from __future__ import annotations

import datetime as dt
import json

from tests.crypto.pki import TestPKI
from tests.inbound.conftest import ARCHIVE, USER, wait_until


def start(daemon_factory, world, **mailbox):
    d = daemon_factory(None, world.config(**mailbox), start=False)
    world.seed(d)
    d.start()
    return d


def status(d) -> dict:
    """``phigate inbound status --json``: the first (only) mailbox row."""
    return json.loads(d.phigate(["inbound", "status", "--json"]).stdout)["mailboxes"][0]


def readable(world):
    return [m for m in world.mails() if m.headers["X-Phigate-Queue-Id"]]


def test_encrypted_signed_and_failed_messages(inbound_world, daemon_factory):
    w = inbound_world
    plain = (b"From: someone@else.test\r\nTo: " + USER.encode() + b"\r\nSubject: hi\r\n"
             b"\r\nnothing secret\r\n")
    when = dt.datetime(2026, 11, 2, 10, 0, 5, tzinfo=dt.UTC)
    w.append(plain)
    w.append(w.encrypted(1, sign=True), flags=[b"\\Flagged"], when=when)
    w.append(w.signed(2))
    stranger = w.pki.leaf("someone@elsewhere.test")
    w.append(w.encrypted(3, to=stranger))
    w.append(w.signed(4, signer=TestPKI().leaf("os@surgery.test")))
    w.append(w.headers(5) + b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; "
             b"smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             b"bm90IGNtcw==\r\n")
    d = start(daemon_factory, w)

    wait_until(lambda: len(readable(w)) == 5, what="two readable copies and three notices")
    wait_until(lambda: len(w.mails(ARCHIVE)) == 2, what="two originals archived")
    inbox = w.mails()
    by_subject = {m.headers["Subject"]: m for m in inbox}

    assert inbox[0].raw == plain and inbox[0].flags == ()            # untouched
    opened = by_subject["Referral 1"]
    h = opened.headers
    assert h["X-Phigate-Decrypted"] == "yes"
    assert h["X-Phigate-Signature"].startswith("valid; signer=os@surgery.test; trusted=yes")
    assert h["Date"] == "Mon, 2 Nov 2026 10:00:01 +0000"
    assert b"tooth #30" in opened.raw
    assert b"\\Seen" not in opened.flags and b"\\Flagged" in opened.flags
    assert opened.internaldate == when

    signed = by_subject["Referral 2"]
    assert signed.headers["X-Phigate-Decrypted"] == "no"
    assert signed.headers["X-Phigate-Signature"].startswith("valid; signer=os@surgery.test")

    for n in (3, 4, 5):                                               # left in place
        assert b"$PhigateFailed" in by_subject[f"Referral {n}"].flags
    notices = {m.headers["In-Reply-To"]: m for m in inbox
               if m.headers["Subject"] == "Secure message could not be opened"}
    assert set(notices) == {"<ref-3@surgery.test>", "<ref-4@surgery.test>",
                            "<ref-5@surgery.test>"}
    for notice in notices.values():
        assert b"\\Seen" not in notice.flags
        assert b"Referral" not in notice.raw and b"tooth" not in notice.raw
    no_key = notices["<ref-3@surgery.test>"]
    assert no_key.headers["X-Phigate-Decrypted"] == "failed; reason=no matching recipient key"
    assert b"could not be decrypted (no matching recipient key)" in no_key.raw
    assert b"signature not accepted (signer not trusted)" in notices["<ref-4@surgery.test>"].raw
    assert b"could not be decrypted (malformed CMS)" in notices["<ref-5@surgery.test>"].raw

    archived = {m.headers["Subject"] for m in w.mails(ARCHIVE)}
    assert archived == {"Referral 1", "Referral 2"}
    assert all(m.headers["Content-Type"].startswith(("application/pkcs7-mime",
                                                     "multipart/signed"))
               for m in w.mails(ARCHIVE))

    row = status(d)
    assert row["mailbox"] == "frontdesk" and row["folder"] == "INBOX"
    assert row["processed"] == 2 and row["failed"] == 3 and row["pending"] == 0
    assert row["connection"] in ("idle", "processing")
    assert row["last_uid"] >= 6 and row["uidvalidity"]
    assert row["last_error"].startswith(("could not be decrypted", "signature not accepted"))
    table = d.phigate(["inbound", "status"]).stdout
    assert table.splitlines()[0].startswith("MAILBOX") and "frontdesk" in table
    log = d.log_text()
    assert "tooth" not in log and "Referral" not in log
    assert d.stop() == 0


def test_starttls_and_a_message_arriving_while_idle(inbound_world, daemon_factory):
    w = inbound_world
    d = start(daemon_factory, w, port=w.dovecot.starttls_port, tls="starttls")
    wait_until(lambda: status(d)["connection"] == "idle", what="IDLE")
    w.append(w.encrypted(7))
    wait_until(lambda: readable(w), what="the readable copy")
    assert readable(w)[0].headers["X-Phigate-Decrypted"] == "yes"
    assert d.stop() == 0
