"""Deposit → notice → register → log in → read → download → reply, on
SQLite and PostgreSQL, through the real web app, the real queue (every mail
the portal writes is a queue item the dispatcher delivers) and a real
upstream sink."""
from __future__ import annotations

import email
import email.policy

import aiohttp

from gateway.model import Delivered
from gateway.queue.item import Status
from gateway.queue.store import QUEUE
from tests.leaks import shown_tokens
from tests.portal.conftest import HELP_PHONE, PRACTICE, link_from, phi_message, portal_item

PATIENT = "jane.doe@mail.example"
SUBJECT = "Crown prep tooth 14 Jane Doe DOB 1980-02-03"
BODY = "Jane, your crown on tooth #14 (D2740) is ready. Amoxicillin 500mg before the visit."


async def deposit(action, spool, sink, queue_id="q-0001", to=PATIENT, count=1, **kw):
    item = portal_item(queue_id, [to])
    raw = phi_message(to, SUBJECT, BODY, attachment=("xray.pdf", b"%PDF-1.4 radiograph"), **kw)
    outcomes = await action.execute(item, raw, item.pending())
    await spool.drain()                              # the notice is a queue item of its own
    await sink.wait_for(count, timeout=30)
    return item, outcomes


async def test_notice_has_no_message_text_and_deposit_is_idempotent(
        portal_action, portal_spool, upstream_sink, portal_store):
    item, outcomes = await deposit(portal_action, portal_spool, upstream_sink)
    assert isinstance(outcomes[PATIENT], Delivered)
    steps = item.recipient(PATIENT).steps
    assert steps["notice_item"] and steps["portal_message_id"]
    notice = upstream_sink.messages[0]
    assert notice.rcpt_tos == [PATIENT]
    text = email.message_from_bytes(notice.data, policy=email.policy.default)
    body = text.get_content()
    assert PRACTICE in body and HELP_PHONE in body and "/register/" in body
    shown = (body + str(text["Subject"])).lower()     # all but the address it goes to
    assert shown_tokens(shown, ("Crown", "tooth", "Jane", "D2740", "Amoxicillin", "1980",
                                "xray")) == []
    # The retry of the same item repeats neither step.
    again = await portal_action.execute(item, b"unused", item.pending())
    assert isinstance(again[PATIENT], Delivered)
    assert await portal_spool.drain() == 0
    assert len(upstream_sink.messages) == 1 and portal_spool.store.ids(QUEUE) == []
    account = await portal_store.account_by_email(PATIENT)
    assert len(await portal_store.inbox(account["id"])) == 1


async def test_notice_outage_is_the_queues_business(portal_action, portal_spool, upstream_sink,
                                                    portal_store):
    """The deposit is done once; the notice waits in the queue with the
    dispatcher's backoff and goes out on the retry, the deposit untouched."""
    item = portal_item("q-0002", [PATIENT])
    raw = phi_message(PATIENT, SUBJECT, BODY)
    upstream_sink.fail_mail = "451 4.3.0 try later"
    first = await portal_action.execute(item, raw, item.pending())
    assert isinstance(first[PATIENT], Delivered)
    message_ref = item.recipient(PATIENT).steps["portal_message_id"]
    notice_id = item.recipient(PATIENT).steps["notice_item"]
    await portal_spool.drain()
    waiting = portal_spool.store.load(notice_id).recipients[0]
    assert waiting.status is Status.PENDING and waiting.attempts == 1
    assert waiting.last_error.startswith("451") and waiting.next_attempt > 0
    upstream_sink.fail_mail = None
    await portal_spool.retry(notice_id)
    await portal_spool.drain()
    await upstream_sink.wait_for(1, timeout=30)
    assert upstream_sink.messages[0].rcpt_tos == [PATIENT]
    assert portal_spool.store.ids(QUEUE) == []
    account = await portal_store.account_by_email(PATIENT)
    assert [m["public_id"] for m in await portal_store.inbox(account["id"])] == [message_ref]


async def test_register_login_read_download_reply(portal_action, upstream_sink, client_factory,
                                                  portal_spool, portal_store):
    # the birth date on file (``phigate portal grant``) is the identity proof
    await portal_store.upsert_account(PATIENT, birth_date="1980-02-03")
    await deposit(portal_action, portal_spool, upstream_sink)
    path = link_from(upstream_sink.messages[0].data)
    browser = client_factory()
    status, _ = await browser.register(path, "correct horse 1", "1980-02-03")
    assert status == 200 and browser.last_url.endswith("/login")
    status, inbox = await browser.login(PATIENT, "correct horse 1")
    assert status == 200 and SUBJECT in inbox and "New" in inbox
    assert "@" not in browser.last_url
    message_path = inbox.split('href="/m/', 1)[1].split('"', 1)[0]
    status, page = await browser.get(f"/m/{message_path}")
    assert status == 200 and "D2740" in page and "xray.pdf" in page
    download = page.split('href="/m/', 1)[1].split('"', 1)[0]
    async with browser.session.get(f"{browser.base}/m/{download}") as r:
        assert r.status == 200 and await r.read() == b"%PDF-1.4 radiograph"
        assert r.headers["Content-Disposition"].startswith("attachment")
    _, inbox = await browser.get("/inbox")
    assert "New" not in inbox                        # read now
    form = aiohttp.FormData()
    form.add_field("body", "Thank you, see you Tuesday.")
    form.add_field("file", b"\x89PNG\r\n\x1a\ninsurance card", filename="card.png",
                   content_type="image/png")
    status, page = await browser.post(f"/m/{message_path}/reply", form)
    assert status == 200 and "was sent" in page
    assert len(portal_spool.store.ids(QUEUE)) == 1   # committed before the page answered
    assert await portal_spool.drain() == 1
    await upstream_sink.wait_for(2, timeout=30)
    to_provider = upstream_sink.messages[1]
    assert to_provider.rcpt_tos == ["dr.smith@smiledental.example"]
    reply = email.message_from_bytes(to_provider.data, policy=email.policy.default)
    assert reply["From"].addresses[0].addr_spec == PATIENT
    assert reply["In-Reply-To"] == "<orig-1@smiledental.example>"
    assert [p.get_filename() for p in reply.iter_attachments()] == ["card.png"]
    assert portal_spool.store.ids(QUEUE) == [] and await portal_spool.drain() == 0
    account = await portal_store.account_by_email(PATIENT)
    events = portal_store.access_events_sync(account["id"])
    assert [e for e, _ in events].count("read_receipt") == 1


async def test_compose_to_provider(portal_action, upstream_sink, client_factory, portal_store,
                                   portal_spool):
    account = await portal_store.upsert_account("pat@mail.example", first_name="Pat",
                                                provider="Dr Smith")
    from gateway.portal.auth import hash_password
    await portal_store.set_account(account["id"], password_hash=await hash_password("pw-pw-pw-pw"))
    browser = client_factory()
    await browser.login("pat@mail.example", "pw-pw-pw-pw")
    await browser.get("/compose")
    status, page = await browser.post("/compose", {"subject": "Question", "body": "Hello"})
    assert status == 200 and "was sent" in page
    assert await portal_spool.drain() == 1
    await upstream_sink.wait_for(1, timeout=30)
    assert b"Subject: Question" in upstream_sink.messages[0].data
