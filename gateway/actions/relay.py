"""RelayAction: plain delivery through the courier (the upstream provider over
verified TLS, or the local outbox).

Fail closed on its own: a message the classifiers marked as PHI is only
relayed to a recipient whose matched rule said ``allow_phi_plaintext: true``
or whom an administrator explicitly released as relay; anything else is a
Permanent(POLICY) outcome and nothing is sent.
"""
from __future__ import annotations

from typing import Sequence

from gateway.audit import audit
from gateway.model import Action, Outcome, Permanent, PermanentKind


def plaintext_allowed(item, recipient) -> bool:
    if not item.plan.verdict.phi:
        return True
    if recipient.steps.get("released_as") == Action.RELAY.value:
        return True
    try:
        decision = item.plan.decision_for(recipient.address)
    except KeyError:
        return False
    return decision.options.get("allow_phi_plaintext") is True and decision.action is Action.RELAY


class RelayAction:
    action = Action.RELAY

    def __init__(self, courier):
        self.courier = courier

    async def execute(self, item, raw: bytes, recipients: Sequence) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        allowed = []
        for r in recipients:
            if plaintext_allowed(item, r):
                allowed.append(r.address)
            else:
                audit("refused", queue_id=item.id, recipient=r.address, action="relay",
                      reason="PHI may not be relayed in plaintext")
                outcomes[r.address] = Permanent(
                    "5.7.1 refused by the gateway: PHI may not be relayed in plaintext",
                    kind=PermanentKind.POLICY)
        if allowed:
            outcomes.update(await self.courier.send(item.envelope.mail_from, allowed, raw))
        return outcomes
