"""Pure parts of inbound: which messages need work, the spool id of a mailbox
message, the state file, and the failure notice (no content of the message)."""
from __future__ import annotations

import imaplib
import ssl

from imapclient.exceptions import LoginError

from gateway.actions.inbound import notice, opened, stamped
from gateway.config.models import InboundMailbox
from gateway.crypto.inbound import open_message
from gateway.imapconn import error_text
from gateway.inbound_state import StateBook, read_state
from gateway.ingress.imap import needs_work

GARBAGE = (b"From: Dr A <a@partner.test>\r\nSubject: Patient Jane Roe, D3330\r\n"
           b"Date: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@partner.test>\r\n"
           b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\n"
           b"bm90IGNtcw==\r\n")


def test_needs_work():
    assert needs_work(b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n")
    assert needs_work(b"Content-Type: Application/X-PKCS7-MIME; name=smime.p7m\r\n")
    assert needs_work(b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
                      b'\r\n micalg=sha-256; boundary="b"\r\n')
    assert not needs_work(b'Content-Type: multipart/signed; protocol="application/pgp-signature";'
                          b' boundary="b"\r\n')
    assert not needs_work(b"Content-Type: text/plain\r\n")
    assert not needs_work(b"Subject: no content type\r\n")
    # a header a sender can write decides nothing
    assert needs_work(b"X-Phigate-Queue-Id: 0abc\r\nContent-Type: application/pkcs7-mime\r\n")


def test_item_ids_are_fixed_per_message_and_keyed(tmp_path):
    book = StateBook(tmp_path)
    first = book.item_id("frontdesk", "INBOX", 7, 42)
    assert first == StateBook(tmp_path).item_id("frontdesk", "INBOX", 7, 42)   # key kept
    assert first != book.item_id("frontdesk", "INBOX", 8, 42)
    assert first != StateBook(tmp_path / "other").item_id("frontdesk", "INBOX", 7, 42)
    assert len(first) == 32 and first[0] == "0"            # owned by worker 0
    assert (tmp_path / "inbound" / "id.key").stat().st_mode & 0o777 == 0o600


def test_state_survives_and_uidvalidity_change_restarts(tmp_path):
    book = StateBook(tmp_path)
    state = book.get("frontdesk")
    assert state.position("INBOX", 100) == 0
    state.advance("INBOX", 17)
    state.count("failed", error="could not be decrypted (malformed CMS)")
    again = read_state(tmp_path / "inbound", "frontdesk")
    assert again["folders"]["INBOX"]["last_uid"] == 17 and again["failed"] == 1
    fresh = StateBook(tmp_path).get("frontdesk")
    assert fresh.position("INBOX", 100) == 17
    assert fresh.position("INBOX", 101) == 0


def test_failure_notice_names_the_reason_never_the_content(tmp_path):
    pw = tmp_path / "pw"
    mailbox = InboundMailbox(name="frontdesk", host="imap.test", user="fd@smile.test",
                             password_file=pw)
    result = open_message(GARBAGE, identities=[], anchors=[])
    assert not opened(result)
    text = notice(GARBAGE, result, "0123", mailbox)
    assert b"Jane" not in text and b"D3330" not in text and b"Patient" not in text
    assert b"could not be decrypted (malformed CMS)" in text
    assert b"From: a@partner.test" in text and b"In-Reply-To: <m1@partner.test>" in text
    assert b"X-Phigate-Queue-Id: 0123\r\n" in text
    assert b"\n" not in text.replace(b"\r\n", b"")


def test_stamped_replaces_a_queue_id_a_sender_wrote():
    message = (b"From: a@b.test\r\nX-Phigate-Queue-Id: forged\r\n  folded\r\n"
               b"Subject: s\r\n\r\nX-Phigate-Queue-Id: body text stays\r\n")
    assert stamped(message, "0abc") == (b"X-Phigate-Queue-Id: 0abc\r\nFrom: a@b.test\r\n"
                                        b"Subject: s\r\n\r\n"
                                        b"X-Phigate-Queue-Id: body text stays\r\n")


def test_imap_errors_become_fixed_phrases():
    assert error_text(LoginError("b'[AUTHENTICATIONFAILED] for jane.roe'")) == \
        "IMAP login refused"
    assert error_text(imaplib.IMAP4.error("SELECT: Mailbox Patient Roe doesn't exist")) == \
        "IMAP command refused"
    assert error_text(imaplib.IMAP4.abort("socket error: EOF")) == "IMAP connection lost"
    assert error_text(ssl.SSLCertVerificationError("x")) == "TLS certificate not trusted"
    assert error_text(ConnectionRefusedError()) == "connection refused"
    assert error_text(OSError()) == "OSError"
