"""MDN tracking: state transitions per recipient, persistence across a new
tracker (a restart), the timeout DSN through a real spool and dispatcher to
an SMTP peer, and a late ``dispatched`` that is not passed on."""
from __future__ import annotations

import asyncio
import email

import pytest

from gateway.actions.relay import RelayAction
from gateway.crypto.direct_message import Report, build_mdn, read_report
from gateway.direct.monitor import MdnMonitor
from gateway.direct.spool import Spool
from gateway.direct.tracking import COMPLETED, FAILED, PENDING, PROCESSED, TIMED_OUT, MdnTracker
from gateway.model import Action
from gateway.queue.dispatcher import Dispatcher
from gateway.queue.store import QueueStore
from tests.direct.transport_world import courier

MID = "<m1@smile.example>"
A, B = "a@direct.ortho.example", "b@direct.ortho.example"


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def test_processed_completes_unless_dispatched_was_asked_for(tmp_path):
    t = MdnTracker(tmp_path, 600)
    t.track(MID, "me@smile.example", "q1", [A, B], want_dispatched=False)
    assert t.report(MID, A, "processed")
    assert t.get(MID).recipients == {A: COMPLETED, B: PENDING}
    t.track("<m2@x>", "me@smile.example", "q2", [A], want_dispatched=True)
    assert t.report("<m2@x>", A, "processed")
    assert t.get("<m2@x>").recipients == {A: PROCESSED}
    assert t.report("<m2@x>", A, "dispatched", final_delivery=False)      # no extension field
    assert t.get("<m2@x>").recipients == {A: PROCESSED}
    assert t.report("<m2@x>", A, "dispatched", final_delivery=True)
    assert t.get("<m2@x>").recipients == {A: COMPLETED}
    assert t.report("<m2@x>", A, "failed")                 # a repeat after the end: no change
    assert t.get("<m2@x>").recipients == {A: COMPLETED}


def test_failed_denied_and_dsn_fail_and_unknown_messages_pass(tmp_path):
    t = MdnTracker(tmp_path, 600)
    t.track(MID, "me@smile.example", "q1", [A, B], want_dispatched=False)
    assert t.report(MID, A.upper(), "denied")
    assert t.report(MID, B, "dsn-failed")
    assert t.get(MID).recipients == {A: FAILED, B: FAILED}
    assert t.pending() == []
    assert t.report("<unknown@x>", A, "processed")       # not ours: passed on
    assert t.report(MID, "stranger@x.example", "processed")


def test_state_survives_a_restart_and_times_out(tmp_path):
    clock = Clock()
    MdnTracker(tmp_path, 600, clock).track(MID, "me@smile.example", "q1", [A, B], True)
    again = MdnTracker(tmp_path, 600, clock)               # a new process
    again.report(MID, A, "processed")
    assert [r.message_id for r in again.pending()] == [MID]
    assert again.expire() == []
    clock.now += 601
    [(record, late)] = again.expire()
    assert sorted(late) == [A, B] and record.queue_id == "q1"
    assert MdnTracker(tmp_path, 600, clock).get(MID).recipients == {A: TIMED_OUT, B: TIMED_OUT}
    assert not again.report(MID, A, "dispatched", final_delivery=True)   # late: swallowed
    assert again.expire() == [] and again.pending() == []


async def test_timeout_sends_a_phi_free_dsn_through_the_spool(tmp_path, upstream_sink):
    clock = Clock()
    tracker = MdnTracker(tmp_path / "tracking", 60, clock)
    tracker.track(MID, "frontdesk@direct.smile.example", "q" * 4, [A], want_dispatched=False)
    store = QueueStore(tmp_path / "spool")
    up = courier(upstream_sink.port)
    dispatcher = Dispatcher(store, {Action.RELAY: RelayAction(up)}, hostname="gw.test")
    monitor = MdnMonitor(tracker, Spool(dispatcher), hostname="gw.test", dsn_sender="")
    assert await monitor.check() == 0
    clock.now += 61

    runner = asyncio.create_task(dispatcher.run())
    try:
        assert await monitor.check() == 1
        await upstream_sink.wait_for(1, timeout=30)
    finally:
        await dispatcher.stop(5)
        await runner
        await up.close()
    [dsn] = upstream_sink.messages
    assert dsn.mail_from in ("", "<>") and dsn.rcpt_tos == ["frontdesk@direct.smile.example"]
    msg = email.message_from_bytes(dsn.data)
    assert msg.get_content_type() == "multipart/report"
    text = dsn.data.decode()
    assert f"Final-Recipient: rfc822; {A}" in text and "Action: failed" in text
    assert "no delivery notification" in text
    assert "qqqq" in text
    assert await monitor.check() == 0                     # only once
    assert store.ids() == []


@pytest.mark.parametrize("event", ["processed", "failed"])
def test_forget_and_retrack_keep_other_recipients(tmp_path, event):
    t = MdnTracker(tmp_path, 600)
    t.track(MID, "me@x", "q", [A, B], False)
    t.report(MID, A, event)
    t.forget(MID, [B])
    t.track(MID, "me@x", "q", [B], False)                # the retried send
    assert t.get(MID).recipients == {A: COMPLETED if event == "processed" else FAILED,
                                     B: PENDING}


REMOTE_DSN = (b"From: MAILER-DAEMON@hisp.example\r\nTo: <me@direct.smile.example>\r\n"
              b"Subject: Undeliverable\r\nMIME-Version: 1.0\r\n"
              b'Content-Type: multipart/report; report-type=delivery-status; boundary="XX"\r\n'
              b"\r\n--XX\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
              b"--XX\r\nContent-Type: message/delivery-status\r\n\r\n"
              b"Reporting-MTA: dns; hisp.example\r\n\r\n"
              b"Final-Recipient: rfc822; A@direct.ortho.example\r\nAction: failed\r\n"
              b"Status: 5.1.1\r\n\r\n"
              b"--XX\r\nContent-Type: text/rfc822-headers\r\n\r\n"
              b"From: me@direct.smile.example\r\nMessage-ID: <m1@smile.example>\r\n"
              b"--XX--\r\n")


def test_remote_dsn_and_loose_mdn_are_read_and_fail_or_complete_tracking(tmp_path):
    report = read_report(REMOTE_DSN)
    assert report == Report("dsn", MID, ((A, "failed"),))
    mdn = build_mdn(reporter=B, to="me@direct.smile.example", original_id=MID,
                    disposition="processed", hostname="gw.test")
    loose = mdn.replace(b"Disposition: automatic-action/MDN-sent-automatically; processed",
                        b"Disposition:  automatic-action/MDN-sent-automatically ;\r\n"
                        b"   Processed")                    # folded, spaced, capitalised
    assert read_report(loose).recipients == ((B, "processed"),)
    t = MdnTracker(tmp_path, 600)
    t.track(MID, "me@direct.smile.example", "q", [A, B], False)
    assert t.report(report.original_id, A, "dsn-failed")
    assert t.report(MID, B, read_report(loose).recipients[0][1])
    assert t.get(MID).recipients == {A: FAILED, B: COMPLETED}
    assert read_report(b"From: x@y.example\r\nContent-Type: text/plain\r\n\r\nhi\r\n") is None
