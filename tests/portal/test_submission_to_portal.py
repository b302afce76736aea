"""From SMTP submission to the portal, in one process with the lead's real
parts (listener, classifier, queue, dispatcher, upstream courier): a PHI
message to a patient is queued, deposited in the portal and announced by a
notice at the upstream sink that carries no body or subject text, while the
non-PHI message to the same patient is relayed as usual.

The ``gateway_with_portal`` fixture (conftest) is a whole Gateway as
``gateway/app.py`` wires it, with a policy file that sends PHI to the portal.
"""
from __future__ import annotations

import email
import email.policy

from tests.leaks import shown_tokens
from tests.portal.conftest import phi_message, submit

PATIENT = "maria.lopez@mail.example"
async def test_phi_submission_becomes_portal_message_and_notice(gateway_with_portal,
                                                                upstream_sink, portal_store):
    subject = "Maria Lopez DOB 03/14/1982 crown tooth #30"
    body = ("Hi Maria, your crown on tooth #30 (D2740) is scheduled. Patient DOB 03/14/1982, "
            "chart 448812. Take amoxicillin 500mg one hour before.")
    await submit(gateway_with_portal, phi_message(PATIENT, subject, body), PATIENT)
    await upstream_sink.wait_for(1, timeout=60)
    notice = upstream_sink.messages[0]
    assert notice.rcpt_tos == [PATIENT]
    parsed = email.message_from_bytes(notice.data, policy=email.policy.default)
    shown = (parsed.get_content() + str(parsed["Subject"])).lower()
    assert shown_tokens(shown, ("maria", "lopez", "crown", "tooth", "d2740", "448812",
                                "amoxicillin", "1982")) == []
    assert "/register/" in shown
    account = await portal_store.account_by_email(PATIENT)
    inbox = await portal_store.inbox(account["id"])
    assert [m["subject"] for m in inbox] == [subject]

    await submit(gateway_with_portal, phi_message(PATIENT, "Office closed Monday",
                                                  "We are closed on Monday for the holiday."),
                 PATIENT)
    await upstream_sink.wait_for(2, timeout=60)
    assert b"closed on Monday" in upstream_sink.messages[1].data       # relayed, not diverted
    assert len(await portal_store.inbox(account["id"])) == 1
