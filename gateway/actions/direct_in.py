"""DirectInboundAction: open a Direct message that reached the Direct MX
listener, tell the sender's gateway, deliver it to the practice's mailbox.

1. ``inbound.open_message`` decrypts with the practice identities and
   verifies against the Direct trust anchors (path, validity, key usage, CRLs
   from the cache, the signer bound to From), then the Direct validator
   (``DirectTrust``: the same checks with CRLs fetched from the signer's
   distribution points and intermediates from AIA); the wrapped original is
   taken out (``direct_message.unwrap``) and its From must be the outer From. Any
   failure: ``Permanent(POLICY)`` for every recipient, nothing delivered and
   no MDN (the Direct rule: never acknowledge what is not trusted).
2. An MDN or DSN (``read_report``) updates the tracking of the message we
   sent and reaches the sender's mailbox only when the tracker passes it on
   (not after a timeout or once final). It is never answered with an MDN.
3. Anything else: a ``processed`` MDN per recipient (queued, signed and
   encrypted by DirectAction) to the From address, the one the signature
   was bound to (never to a different ``Disposition-Notification-To``: a
   notification is no way to make the gateway mail a third party), delivery
   through the courier
   with the ``X-Phigate-*`` result fields, then ``dispatched`` with the Direct
   extension field when the sender asked for final delivery, or ``failed``
   when delivery failed for good. Each MDN is a recorded step
   (``recipient.steps``), so a retry never repeats one.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from gateway.audit import audit
from gateway.crypto.certstore import CertStore, fingerprint
from gateway.crypto.direct_message import (
    FINAL_DELIVERY,
    build_mdn,
    domain_signed,
    header_address,
    header_value,
    message_id,
    read_report,
    signer_certificates,
    unwrap,
)
from gateway.crypto.inbound import open_message
from gateway.model import Action, Delivered, Outcome, Permanent, PermanentKind

ADDRESS_MISMATCH = "signer address does not match From"     # gateway.crypto.verify's reason


def wants_final_delivery(message: bytes) -> bool:
    """A well-formed ``Disposition-Notification-Options`` asking for the
    Direct final-delivery notification (``…=optional,true`` or ``required,true``)."""
    value = header_value(message, "disposition-notification-options") or ""
    for option in value.split(";"):
        name, _, params = option.partition("=")
        importance, _, flag = params.partition(",")
        if (name.strip().upper() == FINAL_DELIVERY and importance.strip().lower()
                in ("optional", "required") and flag.strip().lower() == "true"):
            return True
    return False


class DirectInboundAction:
    action = Action.DIRECT_INBOUND

    def __init__(self, certstore: CertStore, anchors: Callable[[], list], courier, spool,
                 tracker=None, *, trust=None, crl_dir=None, revocation: str = "soft",
                 hostname: str = "localhost"):
        self.certstore = certstore
        self.anchors = anchors
        self.courier = courier
        self.spool = spool
        self.tracker = tracker
        self.trust = trust
        self.crl_dir = crl_dir
        self.revocation = revocation
        self.hostname = hostname

    async def execute(self, item, raw: bytes, recipients: Sequence) -> dict[str, Outcome]:
        addresses = [r.address for r in recipients]
        result = await asyncio.to_thread(
            open_message, raw, identities=self.certstore.identities(), anchors=self.anchors(),
            intermediates=self.certstore.intermediates(), crl_dir=self.crl_dir,
            revocation=self.revocation)
        for event, fields in result.audit_events():
            audit(event, queue_id=item.id, **fields)
        problem, message = await self._check(raw, result, unwrap(result.message))
        if problem:
            for a in addresses:
                audit("refused", queue_id=item.id, recipient=a, action="direct_inbound",
                      reason=problem)
            return dict.fromkeys(addresses, Permanent(
                f"5.7.5 Direct message refused: {problem}", kind=PermanentKind.POLICY))
        report = read_report(message)
        if report is not None:
            return await self._report(item, report, message, recipients)
        sender = header_address(message, "from")     # the verified signer's address, only
        original_id = message_id(message)
        final = wants_final_delivery(message)
        for r in recipients:
            await self._mdn(r, "processed", sender, original_id)
        outcomes = dict(await self.courier.send(item.envelope.mail_from, addresses, message))
        for r in recipients:
            outcome = outcomes.get(r.address)
            if isinstance(outcome, Delivered) and final:
                await self._mdn(r, "dispatched", sender, original_id, final_delivery=True)
            elif isinstance(outcome, Permanent):
                await self._mdn(r, "failed", sender, original_id, failure=outcome.reason)
        return outcomes

    async def _check(self, raw: bytes, result, message: bytes) -> tuple[str, bytes]:
        """("" or why the message is not trusted, the message with its result
        fields). A signer bound to the From's domain (SAN dNSName, which the
        S/MIME verifier does not bind) is accepted when the Direct validator
        says so, and the result field then says ``binding=domain``."""
        if result.decrypted != "yes":
            return ("not encrypted to a practice identity" if result.decrypted == "no"
                    else "decryption failed"), message
        sig = result.signature
        domain_bound = (sig is not None and not sig.valid and sig.trusted
                        and sig.reason == ADDRESS_MISMATCH and self.trust is not None)
        if sig is None or not (sig.valid or domain_bound):
            return f"signature {sig.reason if sig else 'missing'}", message
        outer_from = header_address(raw, "from")
        inner_from = header_address(message, "from")
        if not outer_from or (inner_from or "").lower() != outer_from.lower():
            return "wrapped From differs from the signed From", message
        if self.trust is None:
            return "", message
        certs = await asyncio.to_thread(signer_certificates, raw, self.certstore.identities())
        signer = next((c for c in certs if fingerprint(c) == sig.fingerprint), None)
        if signer is None:
            return "signer certificate not found", message
        verdict = await self.trust.validate(signer, outer_from, purpose="sign",
                                            intermediates=certs)
        if not verdict.valid:
            return f"signer {verdict.reason}", message
        if domain_bound:
            if verdict.binding != "domain":
                return f"signature {sig.reason}", message
            message = domain_signed(message, outer_from, verdict.revocation)
        return "", message

    async def _mdn(self, recipient, disposition: str, to: str | None, original_id: str | None,
                   *, final_delivery: bool = False, failure: str = "") -> None:
        step = f"mdn_{disposition}"
        if to is None or recipient.steps.get(step):
            return
        mdn = build_mdn(reporter=recipient.address, to=to, original_id=original_id,
                        disposition=disposition, hostname=self.hostname,
                        final_delivery=final_delivery, failure=failure)
        queue_id = await self.spool.send_mdn(mdn, reporter=recipient.address, to=to)
        recipient.steps[step] = queue_id
        audit("mdn_sent", queue_id=queue_id, recipient=to, status=disposition)

    async def _report(self, item, report, message: bytes, recipients: Sequence
                      ) -> dict[str, Outcome]:
        addresses = [r.address for r in recipients]
        decided = {r.address: r.steps.get("passed_on") for r in recipients}
        if all(v is not None for v in decided.values()):        # a retry: decided before
            passed = any(decided.values())
        elif self.tracker is None:
            passed = True
        else:
            results = []
            for reporter, disposition in report.recipients:
                event = disposition if report.kind == "mdn" else (
                    "dsn-failed" if disposition == "failed" else disposition)
                results.append(await asyncio.to_thread(
                    self.tracker.report, report.original_id, reporter, event,
                    report.final_delivery))
            passed = any(results) or not results
        for r in recipients:
            r.steps["passed_on"] = passed
        audit("mdn_received", queue_id=item.id, source=report.kind,
              status=",".join(d for _, d in report.recipients), outcome=(
                  "passed on" if passed else "suppressed"))
        if not passed:
            return dict.fromkeys(addresses, Delivered("notification recorded, not passed on"))
        return dict(await self.courier.send(item.envelope.mail_from, addresses, message))
