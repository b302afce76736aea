"""Portal hardening (issue 10): identity proof at registration, date-of-birth
guessing limited per link and per account, every link of an account voided
once a password is set, upload types decided from content (no .exe, .html
or zip bomb), CR/LF in a subject, data: links, bidi characters in file
names, RFC 6266 file names, no server version, a per-client login throttle
that leaves the patient able to log in elsewhere, database files 0600 and
TOTP secrets encrypted at rest. Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import io
import stat
import zipfile

import aiohttp
import pytest
import sqlalchemy as sa

from gateway.portal.auth import hash_password
from gateway.portal.security import sanitize_html
from tests.portal.conftest import link_from, phi_message, portal_item

PASSWORD = "a long passphrase 1"
DOB = "1980-02-03"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


async def registered(store, email: str, **fields) -> dict:
    account = await store.upsert_account(email, **fields)
    await store.set_account(account["id"], password_hash=await hash_password(PASSWORD))
    return await store.account(account["id"])


async def notice_link(action, sink, email: str, queue_id: str, count: int = 1,
                      attachment=None) -> str:
    item = portal_item(queue_id, [email])
    await action.execute(item, phi_message(email, "Your results", "see portal",
                                           attachment=attachment), item.pending())
    await sink.wait_for(count, timeout=30)
    return link_from(sink.messages[count - 1].data)


FIELDS = {"password": PASSWORD, "password2": PASSWORD}


# ---------------------------------------------------------------- identity
async def test_registration_without_identity_proof_waits_for_staff(
        portal_action, upstream_sink, portal_store, client_factory):
    path = await notice_link(portal_action, upstream_sink, "new@mail.example", "q-i1")
    browser = client_factory()
    status, page = await browser.get(path)
    assert status == 403 and 'name="password"' not in page and "call" in page.lower()
    status, _ = await browser.post(path, FIELDS)
    assert status == 403
    account = await portal_store.account_by_email("new@mail.example")
    assert account["password_hash"] is None
    # "Forgot password?" on the unregistered account is no way round it
    reset = await portal_store.issue_link(account["id"], "reset", 600)
    assert (await browser.get(f"/reset/{reset}"))[0] == 403
    assert (await browser.post(f"/reset/{reset}", FIELDS))[0] == 403
    pending = [a["email"] for a in portal_store.pending_accounts_sync(10)]
    assert pending == ["new@mail.example"]
    portal_store.approve_identity_sync(account["id"])           # staff confirmed by phone
    assert portal_store.pending_accounts_sync(10) == []
    assert (await browser.get(path))[0] == 200
    assert (await browser.post(path, FIELDS))[0] == 200 and browser.last_url.endswith("/login")


async def test_birth_date_guessing_limited_per_link_and_per_account(
        portal_action, upstream_sink, portal_store, client_factory):
    await portal_store.upsert_account("dob@mail.example", birth_date=DOB)
    first = await notice_link(portal_action, upstream_sink, "dob@mail.example", "q-g1")
    second = await notice_link(portal_action, upstream_sink, "dob@mail.example", "q-g2", 2)
    third = await notice_link(portal_action, upstream_sink, "dob@mail.example", "q-g3", 3)
    browser = client_factory()
    await browser.get(first)
    statuses = []
    for day in range(1, 6):
        statuses.append((await browser.post(first, {**FIELDS,
                                                    "birth_date": f"1980-01-{day:02d}"}))[0])
    assert statuses == [400, 400, 400, 400, 410]        # the fifth wrong date voids the link
    assert (await browser.post(first, {**FIELDS, "birth_date": DOB}))[0] == 410
    await browser.get(second)
    for day in range(1, 6):                              # ten wrong dates on the account
        await browser.post(second, {**FIELDS, "birth_date": f"1979-01-{day:02d}"})
    assert (await browser.get(third))[0] == 410          # every link of the account void
    account = await portal_store.account_by_email("dob@mail.example")
    assert account["password_hash"] is None
    assert [a["email"] for a in portal_store.pending_accounts_sync(10)] == ["dob@mail.example"]
    portal_store.approve_identity_sync(account["id"])
    token = await portal_store.issue_link(account["id"], "register", 600)
    assert (await browser.get(f"/register/{token}"))[0] == 200
    assert (await browser.post(f"/register/{token}", {**FIELDS, "birth_date": DOB}))[0] == 200


async def test_second_reset_link_refused_after_first_used(portal_store, client_factory):
    account = await registered(portal_store, "reset@mail.example")
    one = await portal_store.issue_link(account["id"], "reset", 600)
    two = await portal_store.issue_link(account["id"], "reset", 600)
    browser = client_factory()
    await browser.get(f"/reset/{one}")
    assert (await browser.post(f"/reset/{one}", {"password": "brand new passphrase",
                                                "password2": "brand new passphrase"}))[0] == 200
    assert (await browser.get(f"/reset/{two}"))[0] == 410
    assert (await browser.post(f"/reset/{two}", FIELDS))[0] == 410
    assert (await browser.login("reset@mail.example", "brand new passphrase"))[0] == 200


# ----------------------------------------------------------------- uploads
def zip_bomb() -> bytes:
    """A .docx-looking zip whose document expands ~1000:1 beyond the limit."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * 60_000_000)
    return buf.getvalue()


def plain_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "hello")
    return buf.getvalue()


@pytest.mark.parametrize("name,data,declared", [
    ("setup.exe", b"MZ\x90\x00" + b"\0" * 200, "application/octet-stream"),
    ("results.pdf", b"MZ\x90\x00" + b"\0" * 200, "application/pdf"),   # lies about its type
    ("page.html", b"<!doctype html><html><script>alert(1)</script></html>", "text/html"),
    ("page.txt", b"<html><body onload=alert(1)>hi</body></html>", "text/plain"),
    ("report.docx", None, "application/vnd.openxmlformats-officedocument"),
    ("photos.zip", plain_zip(), "application/zip"),
])
async def test_refused_uploads_give_a_form_error(portal_store, client_factory, name, data,
                                                 declared):
    await registered(portal_store, "up@mail.example")
    browser = client_factory()
    await browser.login("up@mail.example", PASSWORD)
    await browser.get("/compose")
    form = aiohttp.FormData()
    form.add_field("subject", "A question")
    form.add_field("body", "See attached.")
    form.add_field("file", data if data is not None else zip_bomb(), filename=name,
                   content_type=declared)
    status, page = await browser.post("/compose", form)
    assert status == 400 and "cannot be sent" in page and "A question" in page


async def test_allowed_upload_typed_from_content(portal_store, client_factory):
    await registered(portal_store, "ok@mail.example")
    browser = client_factory()
    await browser.login("ok@mail.example", PASSWORD)
    await browser.get("/compose")
    form = aiohttp.FormData()
    form.add_field("subject", "Insurance card")
    form.add_field("body", "Attached.")
    form.add_field("file", PDF, filename="card", content_type="application/octet-stream")
    status, page = await browser.post("/compose", form)
    assert status == 200 and "was sent" in page


async def test_subject_with_line_break_is_a_form_error(portal_store, client_factory):
    await registered(portal_store, "crlf@mail.example")
    browser = client_factory()
    await browser.login("crlf@mail.example", PASSWORD)
    await browser.get("/compose")
    status, page = await browser.post("/compose", {"subject": "Hi\r\nBcc: evil@x.example",
                                                   "body": "text"})
    assert status == 400 and "line break" in page


# ------------------------------------------------------------ shown messages
def test_data_urls_removed_from_links():
    clean = sanitize_html('<a href="data:text/html;base64,PHNjcmlwdD4=">open</a>'
                          '<a href=" DATA:text/html,x">two</a><img src="data:image/png;base64,AA==">')
    assert "data:text" not in clean.lower() and 'src="data:image/png' in clean


async def test_file_names_cleaned_and_encoded(portal_action, upstream_sink, portal_store,
                                              client_factory):
    account = await registered(portal_store, "names@mail.example")
    item = portal_item("q-n1", ["names@mail.example"])
    raw = phi_message("names@mail.example", "Files", "see",
                      attachment=("invoice\u202egpj.exe", PDF))
    await portal_action.execute(item, raw, item.pending())
    item2 = portal_item("q-n2", ["names@mail.example"])
    raw = phi_message("names@mail.example", "Files", "see", attachment=("Röntgen.pdf", PDF))
    await portal_action.execute(item2, raw, item2.pending())
    await upstream_sink.wait_for(2, timeout=30)
    browser = client_factory()
    await browser.login("names@mail.example", PASSWORD)
    dispositions = []
    for it in (item, item2):
        mid = it.recipient("names@mail.example").steps["portal_message_id"]
        status, page = await browser.get(f"/m/{mid}")
        assert status == 200 and "\u202e" not in page
        link = page.split(f'href="/m/{mid}/a/', 1)[1].split('"', 1)[0]
        async with browser.session.get(f"{browser.base}/m/{mid}/a/{link}") as r:
            dispositions.append(r.headers["Content-Disposition"])
    assert "\u202e" not in dispositions[0] and "invoicegpj.exe" in dispositions[0]
    assert "filename*=UTF-8''R%C3%B6ntgen.pdf" in dispositions[1]
    assert dispositions[1].isascii()
    assert account


async def test_no_server_version_header(client_factory):
    browser = client_factory()
    await browser.get("/login")
    server = browser.last_headers.get("Server", "")
    assert "aiohttp" not in server.lower() and "python" not in server.lower()


# -------------------------------------------------------------------- login
async def test_login_throttle_per_client_is_soft(portal_store, client_factory):
    account = await registered(portal_store, "soft@mail.example")
    attacker, patient = client_factory(), client_factory()
    attacker.headers = {"X-Forwarded-For": "203.0.113.9"}
    patient.headers = {"X-Forwarded-For": "198.51.100.7"}
    for i in range(5):
        assert (await attacker.login("soft@mail.example", f"guess {i}"))[0] == 401
    status, page = await attacker.login("soft@mail.example", PASSWORD)
    assert status == 429 and "wait" in page.lower()                 # this address waits
    assert (await patient.login("soft@mail.example", PASSWORD))[0] == 200
    assert (await portal_store.account(account["id"]))["locked_until"] == 0


async def test_account_lock_is_capped_and_lifted_by_reset_link(portal_store, client_factory):
    account = await registered(portal_store, "cap@mail.example")
    await portal_store.set_account(account["id"], lock_count=20)   # many locks before
    for i in range(10):
        browser = client_factory()
        browser.headers = {"X-Forwarded-For": f"192.0.2.{i + 1}"}
        await browser.login("cap@mail.example", f"guess {i}")
    fresh = await portal_store.account(account["id"])
    import time
    assert 0 < fresh["locked_until"] - time.time() <= 3600          # portal.lockout_max
    token = await portal_store.issue_link(account["id"], "reset", 600)
    patient = client_factory()
    await patient.get(f"/reset/{token}")
    await patient.post(f"/reset/{token}", {"password": "brand new passphrase",
                                           "password2": "brand new passphrase"})
    assert (await patient.login("cap@mail.example", "brand new passphrase"))[0] == 200


# -------------------------------------------------------------- at rest
async def test_database_files_private_and_totp_encrypted(tmp_path):
    from gateway.config.models import PortalConfig
    from gateway.portal.service import open_portal_store
    state = tmp_path / "state"
    store = open_portal_store(PortalConfig(enabled=True), state)
    try:
        account = await store.upsert_account("totp@mail.example")
        await store.set_account(account["id"], totp_secret="JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
                                totp_pending="KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU")
        assert (await store.account(account["id"]))["totp_secret"] == \
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
        with store.engine.connect() as conn:
            raw = conn.execute(sa.text("SELECT totp_secret, totp_pending FROM accounts")).one()
        assert "JBSWY3DP" not in raw[0] and "KRSXG5CT" not in raw[1]
        for name in ("portal.db", "portal.db-wal", "portal.db-shm", "portal-totp.key"):
            path = state / name
            assert path.exists(), name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
    finally:
        store.close()


async def test_refused_reply_attachment_shows_the_message_again(portal_action, upstream_sink,
                                                                portal_store, client_factory):
    await registered(portal_store, "reply@mail.example")
    item = portal_item("q-r1", ["reply@mail.example"])
    await portal_action.execute(item, phi_message("reply@mail.example", "Your results", "see"),
                                item.pending())
    await upstream_sink.wait_for(1, timeout=30)
    mid = item.recipient("reply@mail.example").steps["portal_message_id"]
    browser = client_factory()
    await browser.login("reply@mail.example", PASSWORD)
    await browser.get(f"/m/{mid}")
    form = aiohttp.FormData()
    form.add_field("body", "Here is my form.")
    form.add_field("file", b"MZ\x90\x00" + b"\0" * 64, filename="form.exe",
                   content_type="application/octet-stream")
    status, page = await browser.post(f"/m/{mid}/reply", form)
    assert status == 400 and "cannot be sent" in page and "Here is my form." in page
    assert "Your results" in page
