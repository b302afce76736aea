"""The upstream refuses a portal notice for good (550 for the patient's
address), through a whole Gateway as ``gateway/app.py`` wires it, on SQLite
and PostgreSQL: the message is deposited in the portal, its notice is a
queue item of its own that ends in the queue's failed/ area, and the staff
member who sent the message gets a PHI-free delivery report naming the
patient's address, the upstream's reply and what the mail was."""
from __future__ import annotations

import email
import email.policy

from gateway.queue.item import Status
from gateway.queue.store import FAILED, QUEUE
from tests.leaks import shown_tokens
from tests.portal.conftest import SENDER, phi_message, submit

PATIENT = "maria.lopez@mail.example"
SUBJECT = "Maria Lopez DOB 03/14/1982 crown tooth #30"
BODY = "Hi Maria, your crown on tooth #30 (D2740) is scheduled. Chart 448812."


async def test_refused_notice_fails_in_the_queue_and_the_sender_gets_a_dsn(
        gateway_with_portal, upstream_sink, portal_store):
    upstream_sink.fail_rcpt[PATIENT] = "550 5.1.1 no such user"
    await submit(gateway_with_portal, phi_message(PATIENT, SUBJECT, BODY), PATIENT)
    await upstream_sink.wait_for(1, timeout=60)           # the DSN: the only mail out
    await gateway_with_portal.stop(grace=30)              # attempts in flight finish
    dsn = upstream_sink.messages[0]
    assert dsn.mail_from in ("", "<>") and dsn.rcpt_tos == [SENDER]
    report = email.message_from_bytes(dsn.data, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    human = report.get_body(preferencelist=("plain",)).get_content()
    assert PATIENT in human and "550 5.1.1 no such user" in human
    assert "portal notice" in human
    shown = (dsn.data.decode("utf-8", "replace")).lower()
    assert shown_tokens(shown, ("crown", "tooth", "d2740", "448812", "1982")) == []

    store = gateway_with_portal.store
    assert store.ids(QUEUE) == []
    [failed] = store.ids(FAILED)
    notice = store.load(failed, FAILED)
    assert notice.envelope.source == "notice" and notice.envelope.mail_from == SENDER
    [r] = notice.recipients
    assert (r.address, r.status, r.steps.get("dsn")) == (PATIENT, Status.FAILED, True)
    assert r.last_error == "550 5.1.1 no such user"
    # The deposit itself stands: the patient can still be told another way.
    account = await portal_store.account_by_email(PATIENT)
    assert [m["subject"] for m in await portal_store.inbox(account["id"])] == [SUBJECT]
