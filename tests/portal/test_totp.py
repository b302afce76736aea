"""The optional TOTP second factor from the patient's side, on SQLite and
PostgreSQL: turn it on under "Sign-in security" (key as text and an otpauth
URI, QR image), confirm with a current code, log in
with password + code (a used code is not accepted again), turn it off with
password + code. Codes are computed with pyotp."""
from __future__ import annotations

import base64
import re
import time
from urllib.parse import parse_qs, urlsplit

import pyotp

from gateway.portal.auth import Authenticator, Lockout, hash_password
from tests.portal.conftest import PRACTICE

PASSWORD = "a long passphrase 1"


async def logged_in(store, client_factory, email: str):
    account = await store.upsert_account(email, first_name="Ana", provider="Dr Smith")
    await store.set_account(account["id"], password_hash=await hash_password(PASSWORD))
    browser = client_factory()
    status, _ = await browser.login(email, PASSWORD)
    assert status == 200 and browser.last_url.endswith("/inbox")
    return account, browser


def key_on(page: str) -> str:
    m = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page)
    assert m, "no key on the page"
    return m.group(1).replace(" ", "")


def other_code(totp: pyotp.TOTP) -> str:
    """A well-formed code valid at no step near now."""
    near = {totp.at(time.time() + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


async def test_turn_on_confirm_and_log_in_with_a_code(portal_store, client_factory):
    account, browser = await logged_in(portal_store, client_factory, "ana@mail.example")
    _, inbox = await browser.get("/inbox")
    assert 'href="/security"' in inbox
    status, page = await browser.get("/security")
    assert status == 200 and "Two-step sign-in is off" in page
    status, page = await browser.post("/security/totp/start", {})
    assert status == 200 and browser.last_url.endswith("/security")
    secret = key_on(page)
    assert len(secret) == 32
    uri = re.search(r'<code class="secret">(otpauth://[^<]+)</code>', page).group(1)
    uri = uri.replace("&amp;", "&")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    query = parse_qs(parts.query)
    assert query["secret"] == [secret] and query["issuer"] == [PRACTICE]
    for label in ("Code from your authenticator app", "Turn on two-step sign-in"):
        assert label in page
    assert 'for="code"' in page and 'id="code"' in page
    # Still off until confirmed; a wrong code does not turn it on.
    assert (await portal_store.account(account["id"]))["totp_secret"] is None
    totp = pyotp.TOTP(secret)
    status, page = await browser.post("/security/totp/confirm", {"code": other_code(totp)})
    assert status == 400 and "did not match" in page
    assert key_on(page) == secret                    # the same key, try again
    status, page = await browser.post("/security/totp/confirm", {"code": totp.now()})
    assert status == 200 and "Two-step sign-in is on" in page
    assert "otpauth" not in page and secret not in page.replace(" ", "")   # never shown again
    stored = await portal_store.account(account["id"])
    assert stored["totp_secret"] == secret and stored["totp_pending"] is None
    assert ("totp_on", "") in portal_store.access_events_sync(account["id"])

    await browser.post("/logout", {})
    assert (await browser.login("ana@mail.example", PASSWORD))[0] == 401          # no code
    used = totp.generate_otp(stored["totp_last_step"])
    assert (await browser.login("ana@mail.example", PASSWORD, used))[0] == 401    # replayed
    following = totp.generate_otp(stored["totp_last_step"] + 1)
    status, _ = await browser.login("ana@mail.example", PASSWORD, following)
    assert status == 200 and browser.last_url.endswith("/inbox")


async def test_turn_off_needs_password_and_code(portal_store, client_factory):
    account, browser = await logged_in(portal_store, client_factory, "bo@mail.example")
    secret = pyotp.random_base32()
    await portal_store.set_account(account["id"], totp_secret=secret)
    totp = pyotp.TOTP(secret)
    status, page = await browser.get("/security")
    assert status == 200 and "Two-step sign-in is on" in page and secret not in page
    assert 'for="password"' in page and 'for="code"' in page
    now_step = totp.timecode(time.time())
    status, page = await browser.post("/security/totp/off",
                                      {"password": "wrong password", "code": totp.now()})
    assert status == 400 and "did not work" in page
    status, _ = await browser.post("/security/totp/off",
                                   {"password": PASSWORD, "code": other_code(totp)})
    assert status == 400
    stored = await portal_store.account(account["id"])
    assert stored["totp_secret"] == secret and stored["failed_logins"] == 2   # counted
    code = totp.generate_otp(max(now_step, stored["totp_last_step"] or 0) + 1)
    status, page = await browser.post("/security/totp/off", {"password": PASSWORD, "code": code})
    assert status == 200 and "Two-step sign-in is off" in page
    stored = await portal_store.account(account["id"])
    assert stored["totp_secret"] is None and stored["totp_last_step"] is None
    assert ("totp_off", "") in portal_store.access_events_sync(account["id"])
    await browser.post("/logout", {})
    status, _ = await browser.login("bo@mail.example", PASSWORD)                  # no code now
    assert status == 200 and browser.last_url.endswith("/inbox")


async def test_cancel_setup_and_forms_need_csrf(portal_store, client_factory):
    account, browser = await logged_in(portal_store, client_factory, "cy@mail.example")
    await browser.get("/security")
    assert (await browser.post("/security/totp/start", {}, csrf=False))[0] == 403
    assert (await portal_store.account(account["id"]))["totp_pending"] is None
    await browser.post("/security/totp/start", {})
    assert (await portal_store.account(account["id"]))["totp_pending"]
    status, page = await browser.post("/security/totp/cancel", {})
    assert status == 200 and "Two-step sign-in is off" in page
    stored = await portal_store.account(account["id"])
    assert stored["totp_pending"] is None and stored["totp_secret"] is None
    for path in ("/security/totp/confirm", "/security/totp/off"):
        assert (await browser.post(path, {"code": "123456"}, csrf=False))[0] == 403


async def test_security_page_needs_a_session(client_factory):
    browser = client_factory()
    status, _ = await browser.get("/security")
    assert status == 200 and browser.last_url.endswith("/login")


async def test_qr_code_of_the_key(portal_store, client_factory):
    _, browser = await logged_in(portal_store, client_factory, "qr@mail.example")
    await browser.get("/security")
    _, page = await browser.post("/security/totp/start", {})
    m = re.search(r'<img class="qr" src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)" '
                  r'alt="([^"]+)"', page)
    assert m and m.group(2)
    svg = base64.b64decode(m.group(1))
    assert svg.startswith(b"<svg") and b"<script" not in svg


async def test_a_code_is_accepted_once(portal_store):
    account = await portal_store.upsert_account("dan@mail.example")
    secret = pyotp.random_base32()
    await portal_store.set_account(account["id"], password_hash=await hash_password(PASSWORD),
                                   totp_secret=secret)
    auth = Authenticator(portal_store, Lockout())
    code = pyotp.TOTP(secret).now()
    assert await auth.login("dan@mail.example", PASSWORD, code) is not None
    assert await auth.login("dan@mail.example", PASSWORD, code) is None
