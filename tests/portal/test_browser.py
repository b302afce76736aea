"""The patient's whole journey in a real Chromium on a phone-sized screen:
PHI message submitted over SMTP → notice (no PHI) → register from the link → log in → inbox → read → download
the attachment → reply with a file → the reply is unread in the provider's
mailbox on a real Dovecot. Screenshots of login, inbox and message pages go
to ``test-output/``. Runs with the store on SQLite and on PostgreSQL."""
from __future__ import annotations

import asyncio
import email
import email.policy

from gateway.portal.app import build_app, serve
from gateway.portal.outbox import OutboxDelivery
from tests.portal.conftest import link_from, phi_message, submit
from tests.portal.test_imap import PROVIDER, courier_for

PATIENT = "maria.lopez@mail.example"
SUBJECT = "Maria Lopez periapical radiograph tooth 30"
BODY = "Maria, the radiograph of tooth #30 shows a periapical lesion (K04.5); see attached."


async def test_patient_journey(gateway_with_portal, portal_store, portal_config, portal_port,
                               upstream_sink, dovecot, browser_page, screenshot_dir, tmp_path,
                               request):
    store_kind = request.node.callspec.params["portal_store"]
    dovecot.add_user(PROVIDER, "imap-secret")
    outbox = OutboxDelivery(portal_store, portal_config, {},
                            default_mailbox=courier_for(dovecot, tmp_path), interval=3600)
    runner = await serve(build_app(portal_store, portal_config, b"s" * 32, outbox=outbox),
                         "127.0.0.1", portal_port)
    loop_task = asyncio.create_task(outbox.run())
    try:
        raw = phi_message(PATIENT, SUBJECT, BODY, html=f"<p>{BODY}</p>",
                          attachment=("radiograph.pdf", b"%PDF-1.4 tooth 30"))
        # the birth date on file (``phigate portal grant``) proves identity at registration
        await portal_store.upsert_account(PATIENT, birth_date="1980-02-03")
        await submit(gateway_with_portal, raw, PATIENT)          # SMTP submission
        await upstream_sink.wait_for(1, timeout=60)
        notice = email.message_from_bytes(upstream_sink.messages[0].data,
                                          policy=email.policy.default)
        shown = (notice.get_content() + str(notice["Subject"])).lower()
        for token in ("maria", "lopez", "radiograph", "tooth", "periapical", "k04"):
            assert token not in shown, token

        page = browser_page
        base = portal_config.base_url
        await page.goto(base + link_from(upstream_sink.messages[0].data))
        await page.get_by_label("Your date of birth").fill("1980-02-03")
        await page.get_by_label("New password", exact=True).fill("sunny morning 42")
        await page.get_by_label("New password again").fill("sunny morning 42")
        await page.get_by_role("button", name="Save password").click()
        await page.wait_for_url(base + "/login")
        await page.screenshot(path=screenshot_dir / f"portal-login-{store_kind}.png",
                              full_page=True)
        await page.get_by_label("E-mail address").fill(PATIENT)
        await page.get_by_label("Password", exact=True).fill("sunny morning 42")
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(base + "/inbox")
        assert "@" not in page.url
        await page.get_by_text(SUBJECT).wait_for()
        await page.screenshot(path=screenshot_dir / f"portal-inbox-{store_kind}.png",
                              full_page=True)

        await page.get_by_text(SUBJECT).click()
        await page.get_by_text("periapical lesion").wait_for()
        await page.screenshot(path=screenshot_dir / f"portal-message-{store_kind}.png",
                              full_page=True)
        async with page.expect_download() as download_info:
            await page.get_by_role("link", name="radiograph.pdf").click()
        download = await download_info.value
        assert download.suggested_filename == "radiograph.pdf"
        assert (await download.path()).read_bytes() == b"%PDF-1.4 tooth 30"

        upload = tmp_path / "insurance-card.png"
        upload.write_bytes(b"\x89PNG\r\n\x1a\n card")
        await page.get_by_label("Your reply").fill("Thank you. Can I come Tuesday?")
        await page.get_by_label("Attach files (optional)").set_input_files(upload)
        await page.get_by_role("button", name="Send reply").click()
        await page.get_by_text("was sent").wait_for()

        async with asyncio.timeout(30):
            while not (stored := await dovecot.messages(PROVIDER, "imap-secret")):
                await asyncio.sleep(0.2)   # polling the mailbox, bounded by the timeout
        assert len(stored) == 1
        flags, data = stored[0]
        assert "\\Seen" not in flags
        reply = email.message_from_bytes(data, policy=email.policy.default)
        assert reply["From"].addresses[0].addr_spec == PATIENT
        assert "Tuesday" in reply.get_body(preferencelist=("plain",)).get_content()
        assert [p.get_filename() for p in reply.iter_attachments()] == ["insurance-card.png"]
        account = await portal_store.account_by_email(PATIENT)
        message_ref = (await portal_store.inbox(account["id"]))[0]["public_id"]
        assert ("read_receipt", message_ref) in portal_store.access_events_sync(account["id"])
    finally:
        loop_task.cancel()
        await runner.cleanup()


async def test_forgot_password_in_the_browser(portal_server, portal_store, upstream_sink,
                                              browser_page, screenshot_dir, request):
    """Login page → "Forgot password?" → e-mail address → the link from the
    mail → new password → log in; no address in any URL on the way."""
    from gateway.portal.auth import hash_password
    from tests.portal.conftest import link_from

    store_kind = request.node.callspec.params["portal_store"]
    account = await portal_store.upsert_account(PATIENT, first_name="Maria")
    await portal_store.set_account(account["id"],
                                   password_hash=await hash_password("forgotten one 1"))
    page = browser_page
    seen = []
    page.on("framenavigated", lambda frame: seen.append(frame.url))
    await page.goto(portal_server + "/login")
    await page.get_by_role("link", name="Forgot password?").click()
    await page.wait_for_url(portal_server + "/forgot")
    await page.get_by_label("E-mail address").fill(PATIENT)
    await page.get_by_role("button", name="Send me a link").click()
    await page.get_by_role("heading", name="Check your e-mail").wait_for()
    await page.screenshot(path=screenshot_dir / f"portal-forgot-{store_kind}.png",
                          full_page=True)
    await upstream_sink.wait_for(1, timeout=30)
    await page.goto(portal_server + link_from(upstream_sink.messages[0].data, "reset"))
    await page.get_by_label("New password", exact=True).fill("remembered now 2")
    await page.get_by_label("New password again").fill("remembered now 2")
    await page.get_by_role("button", name="Save password").click()
    await page.wait_for_url(portal_server + "/login")
    await page.get_by_label("E-mail address").fill(PATIENT)
    await page.get_by_label("Password", exact=True).fill("remembered now 2")
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(portal_server + "/inbox")
    assert seen and not any("@" in url or "maria" in url.lower() for url in seen), seen
