"""Submission hardening through the real daemon (``phigate run``) into a real
upstream sink: client-forged ``X-Phigate-*`` trust headers never leave, a
missing Date and Message-ID are added (RFC 6409 §8), the header From/Sender
is bound to the login, SMTP AUTH guessing is slowed and locked out (per login
and per client address, across connections), and a user added with
``phigate users add`` while the daemon runs can log in without a SIGHUP."""
from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import smtplib
import time

import pytest

from tests.peers.daemon import PASSWORD, SENDER, USER

pytestmark = pytest.mark.slow

FORGED = (b"X-Phigate-Signature: valid; trusted=yes\r\n"
          b"X-Phigate-Decrypted: yes\r\n"
          b"x-phigate-envelope-from: ceo@smiledental.example\r\n"
          b"X-PHIGATE-Other: folded\r\n\tcontinuation line\r\n")


def raw_message(from_: str = SENDER, extra: bytes = b"", date: bool = True,
                message_id: bool = True) -> bytes:
    head = f"From: {from_}\r\nTo: patient@partner.example\r\nSubject: hello\r\n".encode()
    if date:
        head += b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
    if message_id:
        head += b"Message-ID: <given@client.smiledental.example>\r\n"
    return head + extra + b"\r\nNo patient data here.\r\n"


def unauthenticated(daemon) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", daemon.port, timeout=30)
    smtp.ehlo("client.smiledental.example")
    smtp.starttls(context=daemon.tls_context())
    smtp.ehlo("client.smiledental.example")
    return smtp


def auth_plain(daemon, user: str, password: str) -> int:
    """One AUTH PLAIN on a fresh connection; the reply code."""
    smtp = unauthenticated(daemon)
    try:
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        code, _text = smtp.docmd("AUTH", f"PLAIN {blob}")
        return code
    finally:
        smtp.close()


def audit_events(daemon, name: str) -> list[dict]:
    out = []
    for line in daemon.log_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("audit") and entry.get("event") == name:
            out.append(entry)
    return out


async def test_forged_trust_headers_stripped_and_date_message_id_added(daemon_factory,
                                                                        upstream_sink):
    daemon = daemon_factory(upstream_sink.port)

    def run():
        with daemon.client() as smtp:
            smtp.sendmail(SENDER, ["patient@partner.example"], raw_message(extra=FORGED))
            smtp.sendmail(SENDER, ["patient@partner.example"],
                          raw_message(date=False, message_id=False))
    await asyncio.to_thread(run)
    await upstream_sink.wait_for(2, timeout=30)
    forged, bare = (m.data for m in upstream_sink.messages)
    assert b"phigate-signature" not in forged.lower()
    assert b"x-phigate" not in forged.lower() and b"continuation line" not in forged
    assert b"No patient data here." in forged
    parsed = email.message_from_bytes(forged, policy=email.policy.default)
    assert parsed["Message-ID"] == "<given@client.smiledental.example>"
    assert len(parsed.get_all("Date")) == 1
    parsed = email.message_from_bytes(bare, policy=email.policy.default)
    assert parsed["Date"] is not None and parsed["Date"].datetime is not None
    assert parsed["Message-ID"].endswith("@gw.smiledental.example>")


async def test_header_from_bound_to_login(daemon_factory, upstream_sink):
    daemon = daemon_factory(upstream_sink.port,
                            {"auth": {"shared_senders": ["info@smiledental.example"]}})

    def run():
        replies = []
        with daemon.client() as smtp:
            for from_, sender_header in (("ceo@smiledental.example", None),
                                         (SENDER, "ceo@smiledental.example"),
                                         ("info@smiledental.example", None),
                                         ("Front Desk <frontdesk@SMILEDENTAL.example>", None)):
                extra = f"Sender: {sender_header}\r\n".encode() if sender_header else b""
                try:
                    smtp.sendmail(SENDER, ["patient@partner.example"],
                                  raw_message(from_=from_, extra=extra))
                    replies.append(250)
                except smtplib.SMTPDataError as exc:
                    replies.append((exc.smtp_code, exc.smtp_error.decode()))
            # envelope: the domain is compared without case, the local part exactly
            replies.append(smtp.mail("frontdesk@SmileDental.Example")[0])
            smtp.rset()
            replies.append(smtp.mail("FrontDesk@smiledental.example")[0])
        return replies
    replies = await asyncio.to_thread(run)
    assert replies[0][0] == 550 and "From" in replies[0][1]
    assert replies[1][0] == 550 and "Sender" in replies[1][1]
    assert replies[2:4] == [250, 250]
    assert replies[4:] == [250, 553]
    await upstream_sink.wait_for(2, timeout=30)
    assert len(upstream_sink.messages) == 2


async def test_auth_guessing_slowed_then_locked_then_lifted(daemon_factory):
    # two worker processes share the listening socket: the counts must be shared too
    daemon = daemon_factory(None, {"workers": 2, "auth": {"throttle": {
        "delay_base": "0.05s", "delay_max": "0.2s", "login_lockout_after": 5,
        "address_lockout_after": 12, "lockout_period": "2s"}}})

    def guess_then_lock():
        codes = [auth_plain(daemon, USER, f"wrong guess {i}") for i in range(5)]
        codes.append(auth_plain(daemon, USER, PASSWORD))   # right password, locked login
        return codes
    codes = await asyncio.to_thread(guess_then_lock)
    assert codes[:5] == [535] * 5
    assert codes[5] == 454
    failed = audit_events(daemon, "auth_failed")
    assert [e["auth_user"] for e in failed] == [USER] * 5
    delays = [e["delay"] for e in failed]
    assert delays == sorted(delays) and delays[-1] > delays[0] > 0
    assert audit_events(daemon, "auth_locked")
    metrics = await asyncio.to_thread(_metrics, daemon)
    assert 'phigate_auth_failures_total{outcome="failed"} 5.0' in metrics
    assert 'phigate_auth_failures_total{outcome="locked"}' in metrics

    def after_lock():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            code = auth_plain(daemon, USER, PASSWORD)
            if code != 454:
                return code
            time.sleep(0.2)      # poll interval while the configured lock runs out
        return None
    assert await asyncio.to_thread(after_lock) == 235

    def spray():
        # many logins from one address: the address counter (5 so far) locks at 12
        codes = [auth_plain(daemon, f"user{i}", "Winter2026!") for i in range(7)]
        codes.append(auth_plain(daemon, USER, PASSWORD))
        return codes
    codes = await asyncio.to_thread(spray)
    assert codes[:7] == [535] * 7
    assert codes[7] == 454


def _metrics(daemon) -> str:
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics",
                                timeout=10) as r:
        return r.read().decode()


async def test_users_file_change_picked_up_without_sighup(daemon_factory):
    daemon = daemon_factory(None)
    assert await asyncio.to_thread(auth_plain, daemon, "billing", "billing password 1") == 535
    daemon.phigate(["users", "add", "billing", "--sender", "billing@smiledental.example"],
                   input="billing password 1\n")
    assert await asyncio.to_thread(auth_plain, daemon, "billing", "billing password 1") == 235
    assert await asyncio.to_thread(auth_plain, daemon, USER, PASSWORD) == 235
