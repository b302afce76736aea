"""DirectAction: send a message as Direct (sign + encrypt to discovered certificates).

For each recipient the ``CertificateFinder`` gives every usable certificate
(``DiscoveryFinder``: Direct discovery with trust validation, then the
certificate store for partners imported by hand; ``StoreFinder``: the store
only). A recipient with none gets
``Permanent(kind=NO_CERTIFICATE)``: the dispatcher moves it to the plan's
fallback (portal, hold), or the sender gets a failure DSN at once. When
discovery failed for now (DNS, LDAP or a URL did not answer) and nothing was
found, the recipient is retried later (``Transient``).

The signing identity is the practice's for the envelope sender (address,
then ``@domain``) from the certificate store; an MDN the gateway sends names
its signer in the decision option ``direct_signer``. Without one, every
recipient gets ``Permanent(POLICY)`` (the practice's misconfiguration, told
to the sender at once). All recipients with certificates get one message
(one per variant when the policy strips a subject keyword for some),
wrapped, signed and encrypted to all their certificates
(``crypto.direct_message``), sent through the Direct courier.

Notifications: when ``request_mdn`` is on, the message asks for MDNs to the
envelope sender (and for the ``dispatched`` one when ``final_delivery`` is
on), and each recipient is tracked (``direct.tracking``) from just before
the first send: a receiving gateway that is down counts against
``mdn_timeout`` like one that never answers. Recipients the peer refused
for good are untracked again (they get the dispatcher's DSN). MDNs
themselves (``Envelope.source == "direct-mdn"``) ask for nothing and are not
tracked.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from cryptography import x509

from gateway.actions.rewrite import by_subject_variant
from gateway.actions.smime import NO_IDENTITY, signing_identity
from gateway.audit import audit
from gateway.crypto.certstore import CertStore
from gateway.crypto.direct_message import build_direct
from gateway.direct.spool import MDN_SOURCE
from gateway.model import Action, Outcome, Permanent, PermanentKind, Transient

LOOKUP_FAILED = Transient("4.4.3 Direct certificate lookup failed for now; will retry")
NO_CERTIFICATE = Permanent("5.7.1 no trusted Direct certificate found for the recipient",
                           kind=PermanentKind.NO_CERTIFICATE)


class LookupUnavailable(Exception):
    """The certificate lookup failed for now (DNS, LDAP or a URL did not
    answer) and found nothing: try again later rather than give up."""


class CertificateFinder(Protocol):
    async def certificates(self, address: str) -> list[x509.Certificate]:
        """Every usable, trusted certificate for ``address`` (empty: none).
        Raises ``LookupUnavailable`` when that cannot be known now."""
        ...


class StoreFinder:
    """Certificates imported by hand into the certificate store (``phigate
    certs import``): the best usable one for the address."""

    def __init__(self, certstore: CertStore):
        self.certstore = certstore

    async def certificates(self, address: str) -> list[x509.Certificate]:
        cert = self.certstore.certificate_for(address, purpose="encrypt")
        return [cert] if cert is not None else []


class DiscoveryFinder:
    """Direct discovery (DNS CERT, LDAP; validated against the Direct
    anchors), then the certificates imported by hand when discovery chose none."""

    def __init__(self, discoverer, store: StoreFinder | None = None):
        self.discoverer = discoverer
        self.store = store

    async def certificates(self, address: str) -> list[x509.Certificate]:
        result = await self.discoverer.discover(address)
        chosen = list(result.chosen)
        if not chosen and self.store is not None:
            chosen = await self.store.certificates(address)
        if not chosen and result.temporary_failure:
            raise LookupUnavailable(address)
        return chosen


class DirectAction:
    action = Action.DIRECT

    def __init__(self, finder: CertificateFinder, certstore: CertStore, courier, tracker=None, *,
                 cipher: str = "aes128", request_mdn: bool = True, final_delivery: bool = False,
                 hostname: str = "localhost"):
        self.finder = finder
        self.certstore = certstore
        self.courier = courier
        self.tracker = tracker
        self.cipher = cipher
        self.request_mdn = request_mdn and tracker is not None
        self.final_delivery = final_delivery
        self.hostname = hostname
        self.on_tracked = lambda: None      # the MDN monitor's wake-up (set by the service)

    async def execute(self, item, raw: bytes, recipients: Sequence) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        certificates: dict[str, list[x509.Certificate]] = {}
        for r in recipients:
            try:
                found = await self.finder.certificates(r.address)
            except LookupUnavailable:
                outcomes[r.address] = LOOKUP_FAILED
                continue
            if not found:
                audit("refused", queue_id=item.id, recipient=r.address, action="direct",
                      reason="no trusted Direct certificate")
                outcomes[r.address] = NO_CERTIFICATE
                continue
            certificates[r.address] = found
        if not certificates:
            return outcomes
        reachable = [r for r in recipients if r.address in certificates]
        signer = reachable[0].option("direct_signer") or item.envelope.mail_from
        identity = signing_identity(self.certstore, signer)
        if identity is None:
            for r in reachable:
                audit("refused", queue_id=item.id, recipient=r.address, action="direct",
                      reason="no Direct signing identity for the sender")
                outcomes[r.address] = NO_IDENTITY
            return outcomes
        for data, members in by_subject_variant(raw, reachable):
            addresses = [r.address for r in members]
            certs = [c for a in addresses for c in certificates[a]]
            outcomes.update(await self._send(item, data, identity, addresses, certs))
        return outcomes

    async def _send(self, item, raw: bytes, identity, members: list[str],
                    certs: list[x509.Certificate]) -> dict[str, Outcome]:
        notify = (item.envelope.mail_from if self.request_mdn and item.envelope.mail_from
                  and item.envelope.source != MDN_SOURCE else None)
        data, msgid = await asyncio.to_thread(
            build_direct, raw, identity, certs, cipher=self.cipher, notify_to=notify,
            final_delivery=self.final_delivery, hostname=self.hostname,
            fallback_id=f"<{item.id}.direct@{self.hostname}>")
        audit("encrypted", queue_id=item.id, recipients=members, count=len(certs),
              mode=self.cipher, signer=identity.fingerprint)
        if notify:
            await asyncio.to_thread(self.tracker.track, msgid, notify, item.id, members,
                                    self.final_delivery)
            self.on_tracked()
        sent = dict(await self.courier.send(item.envelope.mail_from, members, data))
        refused = [a for a in members if isinstance(sent.get(a), Permanent)]
        if notify and refused:
            await asyncio.to_thread(self.tracker.forget, msgid, refused)
        return sent
