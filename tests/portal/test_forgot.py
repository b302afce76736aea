""""Forgot password?" on the login page, through the real web app, the real
queue (the reset mail is a queue item the dispatcher delivers) and a real
upstream sink, on SQLite and PostgreSQL: the reset link mailed works once and
expires; an unknown, revoked or throttled address gets the very same page and
no mail; no address in any URL, the limits table or the log; CSRF needed."""
from __future__ import annotations

import email
import email.policy
import time

import sqlalchemy as sa
from structlog.testing import capture_logs

from gateway.portal import app as portal_app
from gateway.portal.app import settle
from gateway.portal.auth import hash_password
from gateway.portal.schema import limits, links
from tests.portal.conftest import HELP_PHONE, PRACTICE, link_from

OLD = "old passphrase 123"
NEW = "brand new passphrase 9"


async def patient(store, email_address: str, **fields) -> dict:
    account = await store.upsert_account(email_address, first_name="Ana", last_name="Silva",
                                         **fields)
    await store.set_account(account["id"], password_hash=await hash_password(OLD))
    return account


def count_links(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(links)).scalar_one()


async def ask(browser, address: str, headers: dict | None = None) -> tuple[int, str]:
    await browser.get("/forgot")
    data = {"email": address, "csrf": browser.csrf}
    async with browser.session.post(browser.base + "/forgot", data=data,
                                    headers=headers or {}) as r:
        browser.last_url = str(r.url)
        return r.status, await r.text()


async def sent_out(app, spool) -> None:
    """The reset links asked for are queued (``settle``) and delivered."""
    await settle(app)
    await spool.drain()


async def test_forgot_link_works_once_and_expires(portal_store, portal_web_app, client_factory,
                                                  upstream_sink, portal_spool):
    await patient(portal_store, "ana@mail.example")
    browser = client_factory()
    urls = []
    with capture_logs() as logs:
        _, login = await browser.get("/login")
        assert 'href="/forgot"' in login and "Forgot password?" in login
        status, page = await ask(browser, "Ana@Mail.example ")     # case and space forgiven
        urls.append(browser.last_url)
        assert status == 200 and "Check your e-mail" in page
        await sent_out(portal_web_app, portal_spool)
        await upstream_sink.wait_for(1, timeout=30)
        mail = upstream_sink.messages[0]
        assert mail.rcpt_tos == ["ana@mail.example"]
        parsed = email.message_from_bytes(mail.data, policy=email.policy.default)
        text = parsed.get_content()
        assert PRACTICE in text and HELP_PHONE in text and "30 minutes" in text
        for private in ("Ana", "Silva", "ana@"):             # the mail names no one
            assert private not in text + str(parsed["Subject"]), private
        path = link_from(mail.data, "reset")
        assert "@" not in path and "ana" not in path.lower()

        status, page = await browser.get(path)
        urls.append(browser.last_url)
        assert status == 200 and "Choose a new password" in page
        status, _ = await browser.post(path, {"password": NEW, "password2": NEW})
        urls.append(browser.last_url)
        assert status == 200 and browser.last_url.endswith("/login")
        assert (await browser.get(path))[0] == 410                  # works once
        assert (await browser.post(path, {"password": OLD, "password2": OLD}))[0] == 410
        assert (await browser.login("ana@mail.example", OLD))[0] == 401
        status, _ = await browser.login("ana@mail.example", NEW)
        urls.append(browser.last_url)
        assert status == 200 and browser.last_url.endswith("/inbox")
        assert all("@" not in u and "ana" not in u.lower() for u in urls), urls
    reset_sent = [e for e in logs if e["event"] == "notice_sent"]
    assert reset_sent == [{"event": "notice_sent", "account_id": reset_sent[0]["account_id"],
                           "action": "portal_reset", "queue_id": reset_sent[0]["queue_id"],
                           "audit": True, "log_level": "info"}]
    assert [e["queue_id"] for e in logs if e["event"] == "delivered"] == [
        reset_sent[0]["queue_id"]]
    # The portal's log and audit lines do not name the address; the queue's
    # delivery lines name the recipient as they do for every mail (the audit
    # log is access-controlled like the spool).
    delivery = {"queued", "attempt", "delivered"}
    assert not any("ana@" in repr(entry).lower() for entry in logs
                   if entry["event"] not in delivery), logs

    # A second link, left unused past its lifetime, no longer works.
    fresh = client_factory()
    await ask(fresh, "ana@mail.example")
    await sent_out(portal_web_app, portal_spool)
    await upstream_sink.wait_for(2, timeout=30)
    second = link_from(upstream_sink.messages[1].data, "reset")
    with portal_store.engine.begin() as conn:
        conn.execute(sa.update(links).values(expires_at=time.time() - 1))
    assert (await fresh.get(second))[0] == 410
    assert (await fresh.post(second, {"password": OLD, "password2": OLD}))[0] == 410


async def test_unknown_or_revoked_address_gets_the_same_page(portal_store, portal_web_app,
                                                             client_factory, upstream_sink,
                                                             portal_spool):
    await patient(portal_store, "known@mail.example")
    gone = await patient(portal_store, "gone@mail.example")
    portal_store.revoke_sync(gone["id"])
    browser = client_factory()
    answers = {}
    for address in ("nobody@mail.example", "gone@mail.example", "not an address", "",
                    "known@mail.example"):
        answers[address] = await ask(browser, address)
        assert answers[address] == answers["nobody@mail.example"], address   # byte for byte
        assert "@" not in browser.last_url
    # Only the active account got a link and a mail.
    await sent_out(portal_web_app, portal_spool)
    assert count_links(portal_store) == 1
    await upstream_sink.wait_for(1, timeout=30)
    assert [m.rcpt_tos for m in upstream_sink.messages] == [["known@mail.example"]]


async def test_forgot_is_rate_limited_per_address_and_per_client(portal_store, portal_web_app,
                                                                 client_factory, upstream_sink,
                                                                 portal_spool):
    await patient(portal_store, "ana@mail.example")
    browser = client_factory()
    pages = set()
    for _ in range(portal_app.FORGOT_PER_ADDRESS + 2):
        status, page = await ask(browser, "ana@mail.example")
        pages.add((status, page))
    assert len(pages) == 1                               # throttled looks the same
    await settle(portal_web_app)
    assert count_links(portal_store) == portal_app.FORGOT_PER_ADDRESS

    # One client asking for many addresses is stopped too; another client is not.
    await patient(portal_store, "bo@mail.example")
    crowd = {"X-Forwarded-For": "198.51.100.7"}          # as a local reverse proxy adds it
    for n in range(portal_app.FORGOT_PER_CLIENT):
        await ask(browser, f"guess{n}@mail.example", crowd)
    before = count_links(portal_store)
    assert (await ask(browser, "bo@mail.example", crowd))[0] == 200
    await settle(portal_web_app)
    assert count_links(portal_store) == before           # over the client limit: no link
    await ask(browser, "bo@mail.example", {"X-Forwarded-For": "203.0.113.9"})
    await settle(portal_web_app)
    assert count_links(portal_store) == before + 1
    await portal_spool.drain()
    await upstream_sink.wait_for(portal_app.FORGOT_PER_ADDRESS + 1, timeout=30)
    with portal_store.engine.connect() as conn:
        keys = [r.key for r in conn.execute(sa.select(limits.c.key))]
    assert keys and all(len(k) == 64 and "@" not in k and "." not in k for k in keys)


async def test_forgot_needs_the_csrf_token(portal_store, portal_web_app, client_factory):
    await patient(portal_store, "ana@mail.example")
    browser = client_factory()
    await browser.get("/forgot")
    status, _ = await browser.post("/forgot", {"email": "ana@mail.example"}, csrf=False)
    assert status == 403
    await settle(portal_web_app)
    assert count_links(portal_store) == 0
