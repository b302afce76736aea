"""``portal.read_notice: true``: the first time the patient opens a message,
its sender gets a short notice through the upstream (a queue item with a
PHI-free relay plan, delivered by the dispatcher) with no text of the message, no subject and
no patient name or address; once only, and never in the patient's Sent view.
SQLite and PostgreSQL."""
from __future__ import annotations

import email
import email.policy

import pytest

from gateway.portal.auth import hash_password
from tests.portal.conftest import PRACTICE, phi_message, portal_item

PASSWORD = "a long passphrase 1"
PATIENT = "jane.doe@mail.example"
SUBJECT = "Crown prep tooth 14 Jane Doe"
BODY = "Jane, your crown on tooth #14 (D2740) is ready."


@pytest.fixture
def portal_config(portal_config):
    return portal_config.model_copy(update={"read_notice": True})


async def test_sender_is_told_once_that_the_message_was_read(
        portal_store, portal_action, portal_spool, upstream_sink, client_factory):
    item = portal_item("q-n1", [PATIENT])
    await portal_action.execute(item, phi_message(PATIENT, SUBJECT, BODY), item.pending())
    await portal_spool.drain()
    await upstream_sink.wait_for(1, timeout=30)                       # the patient's notice
    mid = item.recipient(PATIENT).steps["portal_message_id"]
    account = await portal_store.upsert_account(PATIENT, first_name="Jane", last_name="Doe")
    await portal_store.set_account(account["id"], password_hash=await hash_password(PASSWORD))
    browser = client_factory()
    await browser.login(PATIENT, PASSWORD)
    assert (await browser.get(f"/m/{mid}"))[0] == 200
    assert (await browser.get(f"/m/{mid}"))[0] == 200                  # second look: no notice
    assert await portal_spool.drain() == 1
    await upstream_sink.wait_for(2, timeout=30)
    notice = upstream_sink.messages[1]
    assert notice.rcpt_tos == ["dr.smith@smiledental.example"]       # the original From
    parsed = email.message_from_bytes(notice.data, policy=email.policy.default)
    assert parsed["Subject"] == "Your secure message was read"
    assert parsed["In-Reply-To"] == "<orig-1@smiledental.example>"
    assert parsed["Auto-Submitted"] == "auto-replied"
    text = parsed.get_content()
    assert PRACTICE in text and "<orig-1@smiledental.example>" in text
    shown = (text + str(parsed["Subject"]) + str(parsed["To"]) + str(parsed["From"])).lower()
    for private in ("crown", "tooth", "d2740", "jane", "doe", "mail.example"):
        assert private not in shown, private
    assert await portal_spool.drain() == 0
    _, page = await browser.get("/sent")
    assert "was read" not in page and "You have not sent any messages yet." in page
