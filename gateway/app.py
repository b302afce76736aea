"""The only wiring place: validated Config → concrete objects → running roles.

``Gateway`` builds the queue store, the dispatcher with its explicit action
registry, the submission acceptor (classifier + policy), the SMTP listener,
the health/metrics endpoint, the admin control socket, the portal role and
the administrator's digest; ``run_daemon`` runs them under signal handling.
Every courier it builds is wrapped in the last-step guard
(``gateway.delivery.guard``), and every mail phigate writes itself (portal
notices and mails, DSNs, held notices, the digest) goes through
``Dispatcher.enqueue``: one road out.

- SIGTERM/SIGINT: stop accepting, finish transactions and attempts in flight,
  exit 0 (STOPPING=1 to systemd first).
- SIGHUP: load the config again; if it is bad, log why and keep the running
  one; else swap in what can change without a restart (policy, users,
  classifier shadow list).

Everything else in phigate depends on small protocols, never on this module.
"""
from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from gateway import sdnotify
from gateway.actions.relay import RelayAction
from gateway.actions.smime import SmimeAction
from gateway.audit import audit, configure_logging, get_logger
from gateway.auth.users import UserDirectory
from gateway.config import Config, ConfigError, load_config
from gateway.crypto.certstore import CertStore
from gateway.delivery.guard import GuardedCourier
from gateway.delivery.outbox import OutboxCourier
from gateway.delivery.smtp import UpstreamCourier
from gateway.ingress.smtp import SubmissionServer
from gateway.malloc import freeze_startup_objects, reuse_large_buffers
from gateway.metrics import Metrics
from gateway.model import Action
from gateway.policy import PolicyEngine, load_policy
from gateway.policy.classifiers import check_shadow
from gateway.policy.classifiers.isolated import IsolatedClassifier
from gateway.queue.control import ControlServer, control_socket
from gateway.queue.dispatcher import Dispatcher
from gateway.queue.notices import HeldNotice
from gateway.queue.safeio import ensure_dir
from gateway.queue.store import QueueStore
from gateway.submission import Submission
from gateway.supervisor import die_with_parent
from gateway.tlsutil import ensure_self_signed, server_tls_context

if TYPE_CHECKING:
    from gateway.direct.service import DirectService
    from gateway.queue.digest import Digest

log = get_logger("app")


def hostname_of(config: Config) -> str:
    return config.smtp.hostname or socket.getfqdn() or "localhost"


def build_courier(config: Config, hostname: str):
    """The upstream courier (or the local outbox), behind the last-step guard."""
    if config.upstream.host:
        return GuardedCourier(UpstreamCourier(config.upstream, hostname))
    outbox = config.effective_outbox
    log.warning("NO UPSTREAM CONFIGURED: messages are written to the local outbox, not sent",
                path=str(outbox))
    return GuardedCourier(OutboxCourier(outbox))


def build_certstore(config: Config) -> CertStore:
    return CertStore(config.smime.store_dir or config.state_dir / "certs",
                     require_email_protection=config.smime.require_email_protection)


def build_policy(config: Config, certstore: CertStore | None = None, isolated: bool = False):
    """(classify, decide) for the Submission; ``decide`` is the PolicyEngine
    itself (callable, and its ``.policy`` is what ``policy check`` shows).
    ``certstore`` answers the ``recipient_has_certificate`` condition.
    ``isolated``: classify in worker processes (the daemon: a message cannot
    blow up its memory; it only checks the shadow names and never compiles the
    patterns itself). Raises ConfigError."""
    shadow, timeout = config.classifier.shadow, config.classifier.timeout
    try:
        if isolated:
            check_shadow(shadow)
        else:
            from gateway.policy.classifiers import build_classifier  # the patterns, in-process

            classify = build_classifier(shadow, timeout=timeout).classify
    except ValueError as exc:
        raise ConfigError([(f"classifier.shadow: {exc}; remove it or fix the name "
                           "(phigate policy detectors lists them)")]) from None
    try:
        policy = load_policy(config.policy)
    except ConfigError as exc:
        raise ConfigError([f"policy: {problem}" for problem in exc.problems]) from None
    has_certificate = None
    if certstore is not None:
        def has_certificate(address: str) -> bool:
            return certstore.certificate_for(address) is not None
    if isolated:
        classify = IsolatedClassifier(shadow, timeout).classify
    return classify, PolicyEngine(policy, has_certificate)


class Gateway:
    """One complete gateway process. With several workers (``supervisor``),
    each is a Gateway with its own ``shard`` of the queue and the shared
    listening socket ``listen_sock``; the supervisor then serves /health."""

    def __init__(self, config: Config, config_path: Path | None = None, *, shard: int = 0,
                 shards: int = 1, listen_sock=None):
        self.config = config
        self.config_path = config_path
        self.shard, self.shards = shard, shards
        self.hostname = hostname_of(config)
        self.metrics = Metrics()
        ensure_dir(config.state_dir)
        self.store = QueueStore(config.queue.dir, max_items=max(1, config.queue.max_items // shards),
                                shard=shard, shards=shards)
        self.courier = build_courier(config, self.hostname)
        self.certstore = build_certstore(config)
        self.portal_store = self.build_portal_store()
        # Inbound IMAP mailboxes: watched, and their items delivered, by worker 0 only.
        self.inbound_book = self.build_inbound_book(shard)
        q = config.queue
        held = config.held_notice
        self.dispatcher = Dispatcher(
            self.store, retry_min=q.retry.min, retry_max=q.retry.max, jitter=q.retry.jitter,
            give_up_after=q.give_up_after, concurrency=q.concurrency, max_crashes=q.max_crashes,
            hostname=self.hostname, dsn_sender=config.dsn.sender,
            held_notice=HeldNotice(self.hostname, held.template) if held.enabled else None,
            keep_failed=q.keep_failed, metrics=self.metrics)
        self.dispatcher.handlers = self.build_handlers()
        self.direct = self.build_direct(shard)
        classify, decide = build_policy(config, self.certstore, isolated=True)
        self.submission = Submission(self.store, self.dispatcher, hostname=self.hostname,
                                     classify=classify, decide=decide,
                                     classifier_timeout=config.classifier.timeout,
                                     metrics=self.metrics)
        self.users = UserDirectory.load(config.auth.users_file)
        self.smtp = SubmissionServer(config, self.submission, self.users, self.tls_context(),
                                     metrics=self.metrics, sock=listen_sock)
        self.health = self.build_health() if config.metrics.address and shards == 1 else None
        self.digest = self.build_digest() if config.admin.address and shard == 0 else None
        self.control = ControlServer(self.dispatcher, control_socket(config.state_dir, shard, shards),
                                     digest=self.digest)
        self.portal = self.build_portal() if config.portal.enabled and shard == 0 else None
        self.inbound = self.build_inbound_watchers() if self.inbound_book is not None else None
        self._dispatch_task: asyncio.Task | None = None
        self._digest_task: asyncio.Task | None = None
        # Cluster view (gateway/cluster.py): this node reports itself in the portal database.
        self.heartbeat = (self.build_heartbeat()
                          if self.portal_store is not None and shard == 0 else None)
        self._heartbeat_task: asyncio.Task | None = None

    # The build_* methods below import their roles' modules themselves: a daemon loads
    # only what its config uses (the portal's SQLAlchemy and aiohttp, Direct's LDAP and
    # DNS, the IMAP clients stay out of a relay-only process; issue 13, memory).

    def build_portal_store(self):
        """The portal database, when the portal or a cluster database is configured."""
        portal = self.config.portal
        if not (portal.enabled or portal.database_url):
            return None
        from gateway.portal.service import open_portal_store
        return open_portal_store(portal, self.config.state_dir, put=self.store.put_sync)

    def build_inbound_book(self, shard: int):
        if not (self.config.inbound.mailboxes and shard == 0):
            return None
        from gateway.inbound_state import StateBook
        return StateBook(self.config.state_dir)

    def build_health(self):
        from gateway.health import HealthServer
        return HealthServer(self.metrics, self.config.metrics.address)

    def build_portal(self):
        from gateway.portal.service import PortalService
        return PortalService(self.config.portal, self.config.state_dir, self.portal_store,
                             spool=self.dispatcher)

    def build_inbound_watchers(self):
        from gateway.actions.inbound import SpoolIntake
        from gateway.ingress.imap import InboundWatchers
        return InboundWatchers(self.config.inbound, self.inbound_book,
                               SpoolIntake(self.store, self.dispatcher))

    def build_heartbeat(self):
        from gateway.cluster import Heartbeat, spool_counter
        return Heartbeat(self.portal_store.engine, lambda: self.config, self.config_path,
                         spool_counter(self.store))

    def build_handlers(self) -> dict:
        """The explicit action registry (the Direct actions join it in
        ``build_direct``). An action missing here (direct without a ``direct:``
        section, portal while no portal store is configured) fails closed:
        the dispatcher takes the decision's fallback, or holds the recipient
        with the reason."""
        smime = self.config.smime
        handlers = {Action.RELAY: RelayAction(self.courier, self.certstore, smime),
                    Action.SMIME: SmimeAction(self.certstore, smime, self.courier)}
        if self.portal_store is not None:
            from gateway.actions.mailbox import MailboxAction
            from gateway.actions.portal import PortalAction
            from gateway.delivery.imap import ImapCourier
            portal = self.config.portal
            handlers[Action.PORTAL] = PortalAction(self.portal_store, portal, self.dispatcher)
            mailboxes = {name: GuardedCourier(ImapCourier.from_config(m))
                         for name, m in portal.provider_mailboxes.items()}
            default = (GuardedCourier(ImapCourier.from_config(portal.default_mailbox))
                       if portal.default_mailbox else None)
            handlers[Action.MAILBOX] = MailboxAction(mailboxes, default, self.courier,
                                                     self.portal_store)
        if self.inbound_book is not None:
            from gateway.actions.inbound import InboundAction
            handlers[Action.INBOUND] = InboundAction(
                self.config.inbound.mailboxes, self.certstore, smime,
                self.config.effective_crl_cache, self.inbound_book)
        return handlers

    def build_digest(self) -> Digest:
        from gateway.queue.digest import Digest
        from gateway.queue.notices import ExpiringCert
        admin = self.config.admin

        def certificates() -> list[ExpiringCert]:
            return [ExpiringCert(r.fingerprint, ", ".join(r.addresses),
                                 r.not_after.timestamp()) for r in self.certstore.list()]
        return Digest(self.store, self.dispatcher, address=admin.address,
                      hostname=self.hostname,
                      sender=self.config.dsn.sender or f"MAILER-DAEMON@{self.hostname}",
                      interval=admin.digest_interval, cert_window=admin.cert_warning,
                      state_path=self.config.state_dir / "digest.json",
                      certificates=certificates, keep_failed=self.config.queue.keep_failed)

    def build_direct(self, shard: int) -> DirectService | None:
        """Direct messaging when ``direct:`` is configured: its actions join the
        registry; the MX listener and MDN monitor run in worker 0 only."""
        d = self.config.direct
        if not (d.anchors or d.domains or d.listen):
            return None
        from gateway.direct.service import DirectService
        service = DirectService(self.config, store=self.store, dispatcher=self.dispatcher,
                                certstore=self.certstore, courier=self.courier,
                                hostname=self.hostname,
                                tls_context=self.tls_context() if d.listen else None,
                                listener=shard == 0)
        self.dispatcher.handlers.update(service.handlers)
        return service

    def tls_context(self):
        tls = self.config.listen.submission.tls
        if tls is not None:
            return server_tls_context(tls.cert, tls.key)
        cert, key, fingerprint = ensure_self_signed(self.config.state_dir, self.hostname)
        log.warning("using a self-signed TLS certificate; configure listen.submission.tls "
                    "for production", path=str(cert), fingerprint=fingerprint)
        return server_tls_context(cert, key)

    async def start(self) -> None:
        await asyncio.to_thread(self.store.lock)      # a CLI may be putting into the spool
        recovered = self.dispatcher.recover()
        await self.store.reserve_ahead()
        self._dispatch_task = asyncio.create_task(self.dispatcher.run())
        await self.control.start()
        if self.digest is not None:
            self._digest_task = asyncio.create_task(self.digest.run())
        if self.heartbeat is not None:
            self._heartbeat_task = asyncio.create_task(self.heartbeat.run())
        if self.health is not None:
            self.health.add_check("dispatcher", lambda: self.dispatcher.alive)
            self.health.add_check("smtp", lambda: self.smtp.serving)
            await self.health.start()
        if self.portal is not None:
            await self.portal.start()
        if self.direct is not None:
            await self.direct.start()
        await self.smtp.start()
        if self.inbound is not None:
            await self.inbound.start()
        self.metrics.set_queue_sizes(queue=self.store.size)
        audit("started", listener=f"{self.smtp.address[0]}:{self.smtp.address[1]}",
              count=recovered, upstream=self.config.upstream.host or "outbox")

    async def stop(self, grace: float = 30.0) -> None:
        audit("stopping")
        await self.smtp.stop(grace)
        if self.direct is not None:
            await self.direct.stop()
        if self.inbound is not None:
            await self.inbound.stop()
        if self.portal is not None:
            await self.portal.stop()               # nothing new from the web before the queue stops
            self.portal = None
        if self._digest_task is not None:
            self._digest_task.cancel()
            await asyncio.gather(self._digest_task, return_exceptions=True)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
        await self.dispatcher.stop(grace)
        if self._dispatch_task is not None:
            await self._dispatch_task
        if self.direct is not None:
            await self.direct.close()
        await self.control.stop()
        if self.health is not None:
            await self.health.stop()
        if self.portal is not None:
            await self.portal.stop()
        if self.portal_store is not None:
            self.portal_store.close()
        await self.courier.close()
        await self.submission.classify.__self__.close()
        self.store.release_reservations()
        self.store.unlock()

    def healthy(self) -> bool:
        return self.dispatcher.alive and self.smtp.serving

    def reload(self) -> bool:
        """SIGHUP: apply a new config if it is valid; keep the old one if not."""
        try:
            new = load_config(self.config_path)
            users = UserDirectory.load(new.auth.users_file)
            classify, decide = build_policy(new, self.certstore, isolated=True)
        except ConfigError as exc:
            audit("config_rejected", errors=exc.problems)
            log.error("new configuration rejected; keeping the running one",
                      problems=exc.problems)
            return False
        self.users.replace(users)
        retired = self.submission.classify.__self__          # its idle children exit
        asyncio.get_running_loop().create_task(retired.close())
        self.submission.classify, self.submission.decide = classify, decide
        self.submission.classifier_timeout = new.classifier.timeout
        self.config = new
        audit("config_loaded", path=str(self.config_path or "(defaults)"))
        return True


async def run_daemon(config: Config, config_path: Path | None, *, shard: int = 0,
                     shards: int = 1, listen_sock=None) -> int:
    gateway = Gateway(config, config_path, shard=shard, shards=shards, listen_sock=listen_sock)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def on_hup() -> None:
        sdnotify.notify("RELOADING=1")
        gateway.reload()
        sdnotify.notify("READY=1")

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    await gateway.start()
    freeze_startup_objects()
    host, port = gateway.smtp.address
    sdnotify.notify(f"READY=1\nSTATUS=accepting mail on {host}:{port}")
    watchdog = asyncio.create_task(sdnotify.watchdog_loop(gateway.healthy))
    try:
        await stop.wait()
    finally:
        sdnotify.notify("STOPPING=1")
        watchdog.cancel()
        await gateway.stop()
    return 0


def _run(coro) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(config: Config, config_path: Path | None, *, worker: int | None = None,
         listen_fd: int | None = None) -> int:
    """``phigate run``: one process, a supervisor of ``workers``, or one worker."""
    reuse_large_buffers(on_trim=lambda: log.info("heap trimmed after large messages"))
    configure_logging(config.logging.level, config.logging.file)
    if worker is not None:
        die_with_parent()
        sock = socket.socket(fileno=listen_fd)
        return _run(run_daemon(config, config_path, shard=worker, shards=config.workers,
                               listen_sock=sock))
    if config.workers > 1:
        from gateway.supervisor import Supervisor

        async def supervise() -> int:
            return await Supervisor(config, config_path, config.workers,
                                    hostname=hostname_of(config)).run()
        return _run(supervise())
    return _run(run_daemon(config, config_path))
