"""SmimeAction: sign with the sender's identity, encrypt to each recipient's
certificate from the store, hand the result to the upstream courier.

Decisions (fail closed, never plaintext):

* A recipient without a usable certificate (``CertStore.certificate_for``)
  gets ``Permanent(kind=NO_CERTIFICATE)``: the dispatcher moves it to the
  plan's fallback (portal), or reports it to the sender in a DSN.
* Recipients are checked first, so a recipient without a certificate always
  reaches its fallback, whatever the state of the practice's identity.
* The signing identity is the one for the *envelope* sender (authenticated
  at MAIL FROM), exact address first, then ``@domain``. When there is none
  (or its certificate cannot sign now) and ``smime.require_signature`` is on
  (the default), every recipient gets ``Permanent(kind=POLICY)``: this is
  the practice's own misconfiguration, so the sender learns of it at once
  from the DSN instead of after days of retries, and no fallback hides it.
  With ``require_signature: false`` the message is encrypted unsigned.
* The practice's own certificate is added as a recipient
  (``encrypt_to_self``) when it may encrypt, so its copy stays readable.
* The outer Subject becomes ``smime.neutral_subject`` when the config says
  ``strip_subject: true`` or the recipient's state has the rule's option
  ``strip_subject: true``. Recipients sharing that setting get one message
  with one RecipientInfo each (plus self). A subject keyword the policy asked
  to strip is removed before signing.

Signing and encryption run in a worker thread (CPU-bound, large messages).
"""
from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

from gateway.actions.rewrite import keyword_to_strip, strip_subject_keyword
from gateway.audit import audit
from gateway.config.models import SmimeConfig
from gateway.crypto.certstore import CertStore, Identity, usable
from gateway.crypto.smime_out import sign_and_encrypt
from gateway.model import Action, Outcome, Permanent, PermanentKind

NO_IDENTITY = Permanent("5.7.1 refused by the gateway: no S/MIME signing identity for the "
                        "sender (phigate certs identity import)", kind=PermanentKind.POLICY)


def signing_identity(store: CertStore, sender: str, *, require_email_protection: bool = False
                     ) -> Identity | None:
    """The sender's identity when its certificate may sign now, else None."""
    identity = store.identity_for(sender)
    now = dt.datetime.now(dt.UTC)
    if identity is None or not usable(identity.cert, "sign", now,
                                      require_email_protection=require_email_protection):
        return None
    return identity


def _wants_neutral_subject(recipient, config: SmimeConfig) -> bool:
    return config.strip_subject or recipient.option("strip_subject") is True


class SmimeAction:
    action = Action.SMIME

    def __init__(self, certstore: CertStore, config: SmimeConfig, courier):
        self.certstore = certstore
        self.config = config
        self.courier = courier

    async def execute(self, item, raw: bytes, recipients: Sequence) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        groups: dict[tuple, list[tuple[str, object]]] = {}
        for r in recipients:
            cert = self.certstore.certificate_for(r.address, purpose="encrypt")
            if cert is None:
                audit("refused", queue_id=item.id, recipient=r.address, action="smime",
                      reason="no valid certificate for the recipient")
                outcomes[r.address] = Permanent(
                    "5.7.1 no valid S/MIME certificate for the recipient",
                    kind=PermanentKind.NO_CERTIFICATE)
                continue
            key = (_wants_neutral_subject(r, self.config), keyword_to_strip(r))
            groups.setdefault(key, []).append((r.address, cert))
        if not groups:
            return outcomes
        identity = signing_identity(self.certstore, item.envelope.mail_from,
                                    require_email_protection=self.config.require_email_protection)
        if identity is None and self.config.require_signature:
            for members in groups.values():
                for address, _ in members:
                    audit("refused", queue_id=item.id, recipient=address, action="smime",
                          reason="no signing identity for the sender")
                    outcomes[address] = NO_IDENTITY
            return outcomes
        for (neutral, keyword), members in groups.items():
            data = strip_subject_keyword(raw, keyword) if keyword else raw
            outcomes.update(await self._send(item, data, identity, members, neutral))
        return outcomes

    def _self_certs(self, identity: Identity | None) -> list:
        if identity is None or not self.config.encrypt_to_self:
            return []
        now = dt.datetime.now(dt.UTC)
        return [identity.cert] if usable(identity.cert, "encrypt", now) else []

    async def _send(self, item, raw: bytes, identity: Identity | None,
                    members: list[tuple[str, object]], neutral: bool) -> dict[str, Outcome]:
        addresses = [a for a, _ in members]
        certs = [c for _, c in members] + self._self_certs(identity)
        data = await asyncio.to_thread(
            sign_and_encrypt, raw, identity, certs, cipher=self.config.cipher,
            neutral_subject=self.config.neutral_subject if neutral else None)
        audit("encrypted", queue_id=item.id, recipients=addresses, count=len(certs),
              mode=self.config.cipher,
              signer=identity.fingerprint if identity else None)
        return dict(await self.courier.send(item.envelope.mail_from, addresses, data))
