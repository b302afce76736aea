"""What the patient sent, and what staff learn when a message is read, on
SQLite and PostgreSQL: the Sent view lists the patient's own replies and new
messages with their delivery state (only theirs); the first opening of a
message writes one ``read_receipt`` audit event (queue id and the portal's
message id, no content); delivered Sent lines go with the retention purge.
Each message the patient sends is a queue item committed before the page
answers; its delivery state comes from the action that delivers it."""
from __future__ import annotations

import time

import aiohttp
from structlog.testing import capture_logs

from gateway.portal.auth import hash_password
from gateway.queue.store import QUEUE
from tests.portal.conftest import phi_message, portal_item

PASSWORD = "a long passphrase 1"
SUBJECT = "Crown prep tooth 14"
BODY = "Your crown on tooth #14 (D2740) is ready."


async def registered(store, email: str) -> dict:
    account = await store.upsert_account(email, first_name="Ana", provider="Dr Smith")
    await store.set_account(account["id"], password_hash=await hash_password(PASSWORD))
    return account


async def deposit(action, spool, sink, email: str, queue_id: str) -> str:
    item = portal_item(queue_id, [email])
    await action.execute(item, phi_message(email, SUBJECT, BODY), item.pending())
    await spool.drain()
    await sink.wait_for(1, timeout=30)
    return item.recipient(email).steps["portal_message_id"]


async def test_sent_view_shows_the_patients_messages_and_delivery_state(
        portal_store, portal_action, portal_spool, upstream_sink, client_factory):
    mid = await deposit(portal_action, portal_spool, upstream_sink, "ana@mail.example", "q-s1")
    await registered(portal_store, "ana@mail.example")
    await registered(portal_store, "bo@mail.example")
    ana = client_factory()
    await ana.login("ana@mail.example", PASSWORD)
    _, inbox = await ana.get("/inbox")
    assert 'href="/sent"' in inbox
    status, page = await ana.get("/sent")
    assert status == 200 and "You have not sent any messages yet." in page

    await ana.get("/compose")
    status, page = await ana.post("/compose", {"subject": "Can I move my visit?",
                                               "body": "Tuesday would suit me."})
    assert status == 200 and ana.last_url.endswith("/sent?sent") and "was sent" in page
    assert "Can I move my visit?" in page and "Sending" in page
    await ana.get(f"/m/{mid}")
    form = aiohttp.FormData()
    form.add_field("body", "Thanks!")
    status, page = await ana.post(f"/m/{mid}/reply", form)
    assert status == 200 and f"Re: {SUBJECT}" in page
    assert "Tuesday" not in page                       # subjects only, no bodies

    queued = portal_spool.store.ids(QUEUE)
    assert len(queued) == 2                      # both committed before "was sent"
    upstream_sink.fail_mail = "451 4.3.0 try later"
    assert await portal_spool.drain() == 2
    _, page = await ana.get("/sent")
    assert page.count("Not delivered yet, we keep trying") == 2
    upstream_sink.fail_mail = None
    for queue_id in queued:
        await portal_spool.retry(queue_id)
    assert await portal_spool.drain() == 2
    assert portal_spool.store.ids(QUEUE) == []
    _, page = await ana.get("/sent")
    assert page.count("Delivered to the practice") == 2 and "Not delivered yet" not in page
    # Newest first.
    assert page.index(f"Re: {SUBJECT}") < page.index("Can I move my visit?")

    bo = client_factory()
    await bo.login("bo@mail.example", PASSWORD)
    _, page = await bo.get("/sent")
    assert "Can I move my visit?" not in page and SUBJECT not in page


async def test_first_opening_writes_one_read_receipt_without_content(
        portal_store, portal_action, portal_spool, upstream_sink, client_factory, monkeypatch):
    monkeypatch.setenv("PHIGATE_STRICT_AUDIT", "1")       # unknown audit fields raise
    mid = await deposit(portal_action, portal_spool, upstream_sink, "ana@mail.example", "q-r1")
    account = await registered(portal_store, "ana@mail.example")
    browser = client_factory()
    await browser.login("ana@mail.example", PASSWORD)
    with capture_logs() as logs:
        assert (await browser.get(f"/m/{mid}"))[0] == 200
        assert (await browser.get(f"/m/{mid}"))[0] == 200
    receipts = [e for e in logs if e["event"] == "read_receipt"]
    assert len(receipts) == 1
    assert receipts[0]["queue_id"] == "q-r1" and receipts[0]["message_ref"] == mid
    assert receipts[0]["account_id"] == account["id"]
    assert [e["event"] for e in logs].count("portal_view") == 2
    text = repr(logs)
    for content in ("Crown", "tooth", "D2740", "ready"):
        assert content not in text, content
    assert [r for r in portal_store.access_events_sync(account["id"])
            if r[0] == "read_receipt"] == [("read_receipt", mid)]


async def test_purge_removes_delivered_sent_rows_past_retention(portal_store, client_factory,
                                                                portal_spool, upstream_sink):
    account = await registered(portal_store, "ana@mail.example")
    browser = client_factory()
    await browser.login("ana@mail.example", PASSWORD)
    await browser.get("/compose")
    await browser.post("/compose", {"subject": "First", "body": "one"})
    assert await portal_spool.drain() == 1
    later = time.time() + 91 * 86400
    await browser.post("/compose", {"subject": "Second", "body": "two"})
    portal_store.purge_sync(now=later, sent_retention=90 * 86400)
    assert portal_store.sent_sync(account["id"]) == []          # any state, past retention
    await browser.post("/compose", {"subject": "Third", "body": "three"})
    portal_store.purge_sync(now=later - 86400, sent_retention=90 * 86400)
    assert [r["subject"] for r in portal_store.sent_sync(account["id"])] == ["Third"]


async def test_a_message_the_queue_cannot_take_is_not_called_sent(portal_store, client_factory,
                                                                  portal_spool):
    """"Sent" only after the queue committed it: a full queue answers 503 with
    "not sent, try again", lists nothing under Sent and queues nothing."""
    await registered(portal_store, "ana@mail.example")
    browser = client_factory()
    await browser.login("ana@mail.example", PASSWORD)
    await browser.get("/compose")
    portal_spool.store.max_items = 0                    # full
    status, page = await browser.post("/compose", {"subject": "Lost?", "body": "one"})
    assert status == 503 and "could not be sent" in page and "was sent" not in page
    assert portal_spool.store.ids(QUEUE) == []
    _, page = await browser.get("/sent")
    assert "Lost?" not in page and "You have not sent any messages yet." in page
