"""The administrator's daily digest, itself a queue item.

Once per ``admin.digest_interval`` (the time of the last one is kept in
``<state_dir>/digest.json`` so a restart neither repeats nor skips it) the
digest lists, PHI-free (queue ids, ages, rule names, reasons; no subject, no
body, no recipient address): what is held, what is shunted, what failed
since the previous digest, and the S/MIME certificates expiring within the
warning window. It goes to ``admin.address`` through ``Dispatcher.enqueue``
like every other mail. The same pass purges failed/ items older than
``queue.keep_failed``. ``phigate queue digest`` asks for one at once.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from gateway.audit import audit, get_logger
from gateway.model import Envelope, Plan
from gateway.queue.item import Status
from gateway.queue.notices import DigestLine, ExpiringCert, digest_text, mail_bytes, summarize
from gateway.queue.safeio import atomic_replace
from gateway.queue.store import FAILED, HOLD, QUEUE, SHUNT, ItemNotFound, QueueStore

log = get_logger("digest")


class Digest:
    def __init__(self, store: QueueStore, spool, *, address: str, hostname: str, sender: str,
                 interval: float, cert_window: float, state_path: Path,
                 certificates: Callable[[], Iterable[ExpiringCert]] = list,
                 keep_failed: float = 0.0, clock: Callable[[], float] = time.time):
        self.store, self.spool = store, spool
        self.address, self.hostname, self.sender = address, hostname, sender
        self.interval, self.cert_window = interval, cert_window
        self.state_path = Path(state_path)
        self.certificates = certificates
        self.keep_failed = keep_failed
        self.clock = clock

    # ---- what it says --------------------------------------------------------
    def collect(self, since: float) -> list[DigestLine]:
        now = self.clock()
        lines = []
        for area in (QUEUE, HOLD, SHUNT, FAILED):
            for item_id in self.store.ids(area):
                try:
                    item = self.store.load(item_id, area)
                except (ItemNotFound, ValueError, KeyError):
                    lines.append(DigestLine(item_id, SHUNT if area == SHUNT else area, 0.0, 0,
                                            "-", "unreadable state"))
                    continue
                if area == QUEUE:          # held recipients of an item still in delivery
                    if any(r.status is Status.HELD for r in item.recipients):
                        lines.append(summarize(item, HOLD, now))
                    continue
                if area == FAILED and self._changed(item_id) < since:
                    continue               # reported in an earlier digest
                lines.append(summarize(item, area, now))
        return lines

    def _changed(self, item_id: str) -> float:
        try:
            return self.store.file(item_id, FAILED, ".state").stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def expiring(self) -> list[ExpiringCert]:
        limit = self.clock() + self.cert_window
        return sorted((c for c in self.certificates() if c.not_after <= limit),
                      key=lambda c: c.not_after)

    def build(self, since: float) -> bytes:
        text = digest_text(self.hostname, self.collect(since), self.expiring(),
                           round(self.cert_window / 86400))
        subject = f"Mail gateway daily report ({time.strftime('%Y-%m-%d', time.gmtime(self.clock()))})"
        return mail_bytes(self.sender, self.address, subject, text, self.hostname, self.clock())

    # ---- when ------------------------------------------------------------------
    def last_sent(self) -> float:
        try:
            return float(json.loads(self.state_path.read_bytes())["last_sent"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return 0.0

    async def send_now(self) -> str:
        """Queue a digest now; returns its queue id."""
        now = self.clock()
        since = self.last_sent() or now - self.interval
        data = await asyncio.to_thread(self.build, since)
        envelope = Envelope(mail_from="", rcpt_tos=(self.address,), received_at=now,
                            source="digest")
        queue_id = await self.spool.enqueue(envelope, data,
                                            Plan.relay_all([self.address], rule="digest"))
        await asyncio.to_thread(atomic_replace, self.state_path,
                                json.dumps({"last_sent": now}).encode())
        audit("notice_sent", queue_id=queue_id, action="digest")
        return queue_id

    async def run(self) -> None:
        """Until cancelled: purge old failed items, send the digest when due.
        The first digest of a new installation goes out one interval after
        its first start."""
        if not self.last_sent():
            await asyncio.to_thread(atomic_replace, self.state_path,
                                    json.dumps({"last_sent": self.clock()}).encode())
        while True:
            if self.keep_failed > 0:
                await asyncio.to_thread(self.store.purge_failed, self.clock() - self.keep_failed)
            due = self.last_sent() + self.interval
            if self.clock() >= due:
                try:
                    await self.send_now()
                except Exception as exc:  # noqa: BLE001 — retried at the next pass
                    log.error("digest not queued", error=exc.__class__.__name__)
                    due = self.clock() + 300
                else:
                    due = self.clock() + self.interval
            await asyncio.sleep(max(1.0, min(due - self.clock(), 3600.0)))
