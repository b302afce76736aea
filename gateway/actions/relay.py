"""RelayAction: plain delivery through the courier (the upstream provider over
verified TLS, or the local outbox).

Fail closed on its own: a message the classifiers marked as PHI (or could not
classify) is only relayed to a recipient whose state allows it
(``allow_phi_plaintext`` in the options of the action in effect: the matched
rule said so, or an administrator released it as relay); anything else is
held (``Permanent(kind=HOLD)``, the sender gets a held notice) and nothing is
sent. The courier's guard
(``gateway.delivery.guard``) checks the same rule again on the bytes.

Trusted source: when a recipient's state has the option ``sign: true``
the message is S/MIME clear-signed with the envelope sender's identity from
the certificate store before it goes out. Without a store or without a
usable identity that recipient gets Permanent(POLICY) (a DSN tells the
sender at once); it is never sent unsigned. A subject keyword the policy asked to strip is
removed first (``gateway.actions.rewrite``).
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.actions.rewrite import by_subject_variant
from gateway.actions.smime import NO_IDENTITY, signing_identity
from gateway.audit import audit
from gateway.crypto.smime_out import sign_only
from gateway.delivery.guard import plaintext_allowed
from gateway.model import Action, Outcome, Permanent, PermanentKind


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
                allowed.append(r)
            else:
                audit("refused", queue_id=item.id, recipient=r.address, action="relay",
                      reason="PHI may not be relayed in plaintext")
                outcomes[r.address] = Permanent(
                    "held by the gateway: the message carries PHI (or could not be "
                    "classified) and this recipient's rule does not allow it in plaintext",
                    kind=PermanentKind.HOLD)
        for data, members in by_subject_variant(raw, allowed):
            signed = [r.address for r in members if r.option("sign") is True]
            plain = [r.address for r in members if r.option("sign") is not True]
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
