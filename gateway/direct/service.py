"""The Direct role of one gateway process, built from ``direct:`` by app.py:
the two actions (outbound ``direct``, ``direct_inbound``), the MDN tracker
and its timeout monitor, and the Direct MX listener when ``direct.listen``
is set. Outbound Direct messages and MDNs go to ``direct.relay`` (another
HISP or the practice's smart host), or through the upstream when unset;
opened inbound messages go to the practice's mailboxes through the upstream.
"""
from __future__ import annotations

from gateway.actions.direct import DirectAction, DiscoveryFinder, StoreFinder
from gateway.actions.direct_in import DirectInboundAction
from gateway.config.types import split_hostport
from gateway.crypto.discovery import Discoverer, load_anchors
from gateway.delivery.guard import GuardedCourier
from gateway.delivery.smtp import UpstreamCourier
from gateway.direct.intake import direct_inbound_plan, direct_verdict
from gateway.direct.monitor import MdnMonitor
from gateway.direct.spool import Spool
from gateway.direct.tracking import MdnTracker
from gateway.ingress.direct_mx import DirectMXServer
from gateway.model import Action
from gateway.submission import Submission


def tracking_dir(config):
    return config.state_dir / "direct" / "tracking"


class DirectService:
    def __init__(self, config, *, store, dispatcher, certstore, courier, hostname: str,
                 tls_context=None, listener: bool = True):
        direct = config.direct
        self.anchors = load_anchors(direct.anchors)
        self.discoverer = Discoverer(direct.resolver, self.anchors, config.state_dir / "direct" / "cache")
        self.tracker = MdnTracker(tracking_dir(config), direct.mdn_timeout)
        self.spool = Spool(dispatcher)
        self.relay = self._own_relay = None     # None: through the upstream courier
        if direct.relay:
            host, port = split_hostport(direct.relay)
            self.relay = GuardedCourier(UpstreamCourier(config.upstream.model_copy(update={
                "host": host, "port": port, "tls": direct.relay_tls, "username": None,
                "password_file": None}), hostname))
            self._own_relay = self.relay
        finder = DiscoveryFinder(self.discoverer, StoreFinder(certstore))
        self.handlers = {
            Action.DIRECT: DirectAction(
                finder, certstore, self.relay or courier, self.tracker, cipher=config.smime.cipher,
                request_mdn=direct.request_mdn, final_delivery=direct.final_delivery,
                hostname=hostname),
            Action.DIRECT_INBOUND: DirectInboundAction(
                certstore, lambda: self.anchors, courier, self.spool, self.tracker,
                trust=self.discoverer.trust, crl_dir=config.effective_crl_cache,
                revocation=config.smime.crl,
                hostname=hostname),
        }
        self.monitor = MdnMonitor(self.tracker, self.spool, hostname=hostname,
                                  dsn_sender=config.dsn.sender) if listener else None
        if self.monitor is not None:
            self.handlers[Action.DIRECT].on_tracked = self.monitor.wake.set
        self.mx = None
        if direct.listen and listener:
            acceptor = Submission(store, dispatcher, hostname=hostname,
                                  classify=direct_verdict, decide=direct_inbound_plan)
            self.mx = DirectMXServer(direct.listen, direct.domains, acceptor, hostname=hostname,
                                     limits=config.limits, tls_context=tls_context)

    async def start(self) -> None:
        if self.mx is not None:
            await self.mx.start()
        if self.monitor is not None:
            self.monitor.start()

    async def stop(self) -> None:
        """Stop accepting and watching (before the dispatcher stops)."""
        if self.mx is not None:
            await self.mx.stop()
        if self.monitor is not None:
            await self.monitor.stop()

    async def close(self) -> None:
        """Close the relay connections (after the dispatcher stopped)."""
        if self._own_relay is not None:
            await self._own_relay.close()
