"""The last check on every road out: ``GuardedCourier`` wraps each courier the
wiring builds, so nothing leaves phigate without passing it.

The dispatcher names the queue item being delivered (``delivering``, a
context variable set around each action call). For every recipient the guard
then decides on its own, from the item and the bytes actually handed over:

* bytes that are S/MIME enveloped data (``application/pkcs7-mime`` with
  ``smime-type=enveloped-data`` or ``authEnveloped-data``) are not plaintext:
  they pass;
* plaintext passes when the item's verdict is PHI-free (no PHI and no
  classifier error), or when the recipient's state allows PHI in plaintext
  (``allow_phi_plaintext`` in the options of the action in effect: a rule
  that says so, the portal's delivery into the practice's own mailbox, or an
  administrator's release as relay);
* anything else is not sent: the recipient gets ``Permanent(kind=HOLD)`` and
  the dispatcher holds it with the reason, for an administrator.

A send outside any queue item (a fire-and-forget send) is refused outright.
"""
from __future__ import annotations

import contextvars
import email.policy
from collections.abc import Sequence
from email.parser import BytesHeaderParser

from gateway.audit import audit
from gateway.model import Outcome, Permanent, PermanentKind

delivering: contextvars.ContextVar = contextvars.ContextVar("phigate_delivering", default=None)

ENCRYPTED_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
ENVELOPED = ("enveloped-data", "authenveloped-data")

NOT_FROM_SPOOL = Permanent("5.7.1 refused by the gateway: mail must leave through the queue",
                           kind=PermanentKind.POLICY)


def phi_suspect(item) -> bool:
    """PHI found, or the classifiers could not tell (fail closed)."""
    verdict = item.plan.verdict
    return bool(verdict.phi or verdict.errors)


def plaintext_allowed(item, recipient) -> bool:
    """May ``item`` go to ``recipient`` (its RecipientState) in plaintext?"""
    return not phi_suspect(item) or recipient.option("allow_phi_plaintext") is True


def _plaintext_allowed(item, address: str) -> bool:
    try:
        return plaintext_allowed(item, item.recipient(address))
    except KeyError:
        return False            # not a recipient of this item: never


def is_encrypted(data: bytes) -> bool:
    end = data.find(b"\r\n\r\n")
    if end == -1:
        end = data.find(b"\n\n")
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(
        data[:end if end != -1 else len(data)])
    if len(headers.get_all("Content-Type", [])) != 1:
        return False                              # none, or ambiguous: a reader may pick either
    try:
        ctype = headers.get_content_type()
        smime_type = (headers.get_param("smime-type") or "").lower()
    except (ValueError, TypeError, IndexError):     # a header we cannot read: not encrypted
        return False
    return ctype in ENCRYPTED_TYPES and smime_type in ENVELOPED


class GuardedCourier:
    """A courier that checks every recipient before the inner courier sends."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):          # address, contains, … of the inner courier
        return getattr(self.inner, name)

    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, Outcome]:
        item = delivering.get()
        if item is None:
            return dict.fromkeys(rcpts, NOT_FROM_SPOOL)
        outcomes: dict[str, Outcome] = {}
        allowed = [address for address in rcpts if _plaintext_allowed(item, address)]
        if len(allowed) < len(rcpts) and is_encrypted(data):
            allowed = list(rcpts)
        for address in rcpts:
            if address not in allowed:
                audit("held", queue_id=item.id, recipient=address, reason="plaintext guard")
                outcomes[address] = Permanent(
                    "held by the gateway's last check: the message carries PHI (or could not "
                    "be classified) and would have left in plaintext, which this recipient's "
                    "rule does not allow", kind=PermanentKind.HOLD)
        if allowed:
            outcomes.update(await self.inner.send(mail_from, allowed, data))
        return outcomes

    async def close(self) -> None:
        await self.inner.close()
