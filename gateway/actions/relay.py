"""RelayAction: plain delivery through the courier (the upstream provider over
verified TLS, or the local outbox).

Fail closed on its own: a message the classifiers marked as PHI is only
relayed to a recipient whose matched rule said ``allow_phi_plaintext: true``
or whom an administrator explicitly released as relay; anything else is a
Permanent(POLICY) outcome and nothing is sent.

Trusted source: when a recipient's decision has ``options["sign"] is True``
the message is S/MIME clear-signed with the envelope sender's identity from
the certificate store before it goes out. Without a store or without a
usable identity that recipient gets Permanent(POLICY) (a DSN tells the
sender at once); it is never sent unsigned. A subject keyword the policy asked to strip is
removed first (``gateway.actions.rewrite``).
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.actions.base import decision_option
from gateway.actions.rewrite import by_subject_variant
from gateway.actions.smime import NO_IDENTITY, signing_identity
from gateway.audit import audit
from gateway.crypto.smime_out import sign_only
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


def wants_signature(item, address: str) -> bool:
    return decision_option(item, address, "sign") is True


class RelayAction:
    action = Action.RELAY

    def __init__(self, courier, certstore=None, smime_config=None):
        """``certstore`` (a ``CertStore``) and ``smime_config`` are needed only
        for decisions with ``sign: true``."""
        self.courier = courier
        self.certstore = certstore
        self.require_email_protection = bool(
            smime_config and smime_config.require_email_protection)

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
        for data, members in by_subject_variant(item, raw, allowed):
            signed = [a for a in members if wants_signature(item, a)]
            plain = [a for a in members if a not in signed]
            if plain:
                outcomes.update(await self.courier.send(item.envelope.mail_from, plain, data))
            if signed:
                outcomes.update(await self._send_signed(item, data, signed))
        return outcomes

    async def _send_signed(self, item, raw: bytes, addresses: list[str]) -> dict[str, Outcome]:
        identity = self.certstore and signing_identity(
            self.certstore, item.envelope.mail_from,
            require_email_protection=self.require_email_protection)
        if not identity:
            for a in addresses:
                audit("refused", queue_id=item.id, recipient=a, action="relay",
                      reason="no signing identity for the sender")
            return dict.fromkeys(addresses, NO_IDENTITY)
        data = await asyncio.to_thread(sign_only, raw, identity)
        audit("signed", queue_id=item.id, recipients=addresses, signer=identity.fingerprint)
        return dict(await self.courier.send(item.envelope.mail_from, addresses, data))
