"""Portal security: active content stripped, CSRF enforced, lockout after the
tenth wrong password, no reading another patient's message by id, one-time
links work once and expire, security headers. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import time

import pyotp
import pytest

from gateway.portal.auth import hash_password
from gateway.portal.security import sanitize_html
from tests.portal.conftest import link_from, phi_message, portal_item

PASSWORD = "a long passphrase 1"
EVIL_HTML = """<p>Results for tooth 3</p>
<script>document.title='pwned'</script>
<img src="https://tracker.example/pixel.gif" alt="pixel">
<img src=x onerror="alert(1)">
<a href="javascript:alert(2)">click</a>
<div onmouseover="alert(3)">hover</div>
<iframe src="https://evil.example/"></iframe>
<a href="https://smiledental.example/care">care guide</a>"""


async def registered(store, email: str, **fields) -> dict:
    account = await store.upsert_account(email, **fields)
    await store.set_account(account["id"], password_hash=await hash_password(PASSWORD))
    return account


async def deposit_for(action, sink, email: str, queue_id: str, html: str | None = None,
                      count: int = 1) -> str:
    item = portal_item(queue_id, [email])
    await action.execute(item, phi_message(email, "Your results", "see portal", html=html),
                         item.pending())
    await sink.wait_for(count, timeout=30)
    return item.recipient(email).steps["portal_message_id"]


def test_sanitizer_strips_active_content():
    clean = sanitize_html(EVIL_HTML)
    for bad in ("<script", "onerror", "onmouseover", "javascript:", "tracker.example",
                "<iframe", "alert("):
        assert bad not in clean, bad
    assert 'href="https://smiledental.example/care"' in clean and "Results for tooth 3" in clean


async def test_message_page_has_no_active_content(portal_action, upstream_sink, portal_store,
                                                  client_factory):
    await registered(portal_store, "p1@mail.example")
    mid = await deposit_for(portal_action, upstream_sink, "p1@mail.example", "q-s1", EVIL_HTML)
    browser = client_factory()
    await browser.login("p1@mail.example", PASSWORD)
    status, page = await browser.get(f"/m/{mid}")
    assert status == 200 and "Results for tooth 3" in page
    for bad in ("<script", "onerror", "onmouseover", "javascript:", "tracker.example", "<iframe"):
        assert bad not in page, bad
    csp = browser.last_headers["Content-Security-Policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert browser.last_headers["X-Content-Type-Options"] == "nosniff"


async def test_post_without_csrf_token_fails(portal_store, client_factory):
    await registered(portal_store, "p2@mail.example")
    browser = client_factory()
    await browser.get("/login")
    status, _ = await browser.post("/login", {"email": "p2@mail.example", "password": PASSWORD},
                                   csrf=False)
    assert status == 403
    status, _ = await browser.post("/login", {"email": "p2@mail.example", "password": PASSWORD,
                                              "csrf": "0" * 64}, csrf=False)
    assert status == 403
    status, _ = await browser.login("p2@mail.example", PASSWORD)
    assert status == 200 and browser.last_url.endswith("/inbox")
    status, _ = await browser.post("/compose", {"subject": "x", "body": "y"}, csrf=False)
    assert status == 403


async def test_tenth_wrong_password_locks_the_account(portal_store, client_factory):
    account = await registered(portal_store, "p3@mail.example")
    browser = client_factory()
    for attempt in range(1, 11):
        # from ten addresses: one address alone is stopped by portal.login_client_limit first
        browser.headers = {"X-Forwarded-For": f"192.0.2.{attempt}"}
        status, _ = await browser.login("p3@mail.example", f"wrong {attempt}")
        assert status == 401
        locked = (await portal_store.account(account["id"]))["locked_until"] > time.time()
        assert locked == (attempt == 10), attempt
    status, _ = await browser.login("p3@mail.example", PASSWORD)
    assert status == 401                         # right password, but locked
    await portal_store.set_account(account["id"], locked_until=time.time() - 1)
    status, _ = await browser.login("p3@mail.example", PASSWORD)
    assert status == 200 and browser.last_url.endswith("/inbox")
    assert (await portal_store.account(account["id"]))["lock_count"] == 0


async def test_lock_doubles_on_repeat(portal_store, portal_config):
    from gateway.portal.auth import Authenticator, Lockout
    account = await registered(portal_store, "p4@mail.example")
    auth = Authenticator(portal_store, Lockout(threshold=2, base=100.0))
    for _ in range(2):
        assert await auth.login("p4@mail.example", "nope") is None
    first = (await portal_store.account(account["id"]))["locked_until"] - time.time()
    await portal_store.set_account(account["id"], locked_until=0.0)
    for _ in range(2):
        assert await auth.login("p4@mail.example", "nope") is None
    second = (await portal_store.account(account["id"]))["locked_until"] - time.time()
    assert 90 < first <= 100 and 190 < second <= 200


async def test_totp_required_when_set(portal_store, client_factory):
    account = await registered(portal_store, "p5@mail.example")
    secret = pyotp.random_base32()
    await portal_store.set_account(account["id"], totp_secret=secret)
    browser = client_factory()
    status, _ = await browser.login("p5@mail.example", PASSWORD, "000000"
                                    if pyotp.TOTP(secret).now() != "000000" else "111111")
    assert status == 401
    status, _ = await browser.login("p5@mail.example", PASSWORD, pyotp.TOTP(secret).now())
    assert status == 200 and browser.last_url.endswith("/inbox")


async def test_other_patients_message_is_not_readable(portal_action, upstream_sink, portal_store,
                                                      client_factory):
    await registered(portal_store, "alice@mail.example")
    await registered(portal_store, "bob@mail.example")
    alice_mid = await deposit_for(portal_action, upstream_sink, "alice@mail.example", "q-a")
    bob_mid = await deposit_for(portal_action, upstream_sink, "bob@mail.example", "q-b", count=2)
    bob = client_factory()
    await bob.login("bob@mail.example", PASSWORD)
    assert (await bob.get(f"/m/{bob_mid}"))[0] == 200
    status, _ = await bob.get(f"/m/{alice_mid}")
    assert status == 404
    status, _ = await bob.post(f"/m/{alice_mid}/reply", {"body": "hi"})
    assert status == 404
    alice_account = await portal_store.account_by_email("alice@mail.example")
    assert (await portal_store.inbox(alice_account["id"]))[0]["read_at"] is None


async def test_registration_link_works_once_and_expires(portal_action, upstream_sink,
                                                        portal_store, client_factory):
    await deposit_for(portal_action, upstream_sink, "new@mail.example", "q-r")
    path = link_from(upstream_sink.messages[0].data)
    new = await portal_store.account_by_email("new@mail.example")
    portal_store.approve_identity_sync(new["id"])       # identity proof: staff approval
    browser = client_factory()
    assert (await browser.get(path))[0] == 200
    fields = {"password": PASSWORD, "password2": PASSWORD}
    assert (await browser.post(path, fields))[0] == 200
    assert browser.last_url.endswith("/login")
    assert (await browser.get(path))[0] == 410
    assert (await browser.post(path, fields))[0] == 410
    # An expired link is refused even though it was never used.
    account = await portal_store.account_by_email("new@mail.example")
    token = await portal_store.issue_link(account["id"], "reset", ttl=-1)
    assert (await browser.get(f"/reset/{token}"))[0] == 410
    token = await portal_store.issue_link(account["id"], "reset", ttl=600)
    assert (await browser.get(f"/reset/{token}"))[0] == 200
    assert (await browser.post(f"/reset/{token}", {"password": "another passphrase",
                                                   "password2": "another passphrase"}))[0] == 200
    assert (await browser.post(f"/reset/{token}", fields))[0] == 410
    assert (await browser.login("new@mail.example", "another passphrase"))[0] == 200
    # The wrong kind of link does not work either.
    token = await portal_store.issue_link(account["id"], "register", ttl=600)
    assert (await browser.get(f"/reset/{token}"))[0] == 410


async def test_registration_asks_for_birth_date_when_known(portal_action, upstream_sink,
                                                           portal_store, client_factory):
    await portal_store.upsert_account("dob@mail.example", birth_date="1980-02-03")
    await deposit_for(portal_action, upstream_sink, "dob@mail.example", "q-d")
    path = link_from(upstream_sink.messages[0].data)
    browser = client_factory()
    _, page = await browser.get(path)
    assert 'name="birth_date"' in page
    bad = {"password": PASSWORD, "password2": PASSWORD, "birth_date": "1981-01-01"}
    assert (await browser.post(path, bad))[0] == 400
    assert (await browser.post(path, {**bad, "birth_date": "1980-02-03"}))[0] == 200
    assert browser.last_url.endswith("/login")


async def test_purge_removes_expired_messages(portal_action, upstream_sink, portal_store):
    mid = await deposit_for(portal_action, upstream_sink, "old@mail.example", "q-p")
    account = await portal_store.account_by_email("old@mail.example")
    assert portal_store.purge_sync(now=time.time()) == 0
    assert portal_store.purge_sync(now=time.time() + 91 * 86400) == 1
    assert await portal_store.open_message(account["id"], mid) is None


@pytest.mark.parametrize("path", ["/inbox", "/compose", "/m/anything"])
async def test_pages_need_a_session(client_factory, path):
    browser = client_factory()
    status, _ = await browser.get(path)
    assert status == 200 and browser.last_url.endswith("/login")
