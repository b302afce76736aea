"""The MDN timeout: a daemon task that wakes at the next tracking deadline,
marks recipients without a final notification as timed out and sends their
sender one PHI-free failure DSN per message through the spool.

The DSN is ``queue.dsn.build_dsn`` (the same as every other bounce) for a
stand-in item carrying the original queue id and the timed-out recipients.
"""
from __future__ import annotations

import asyncio

from gateway.audit import audit, get_logger
from gateway.config.types import format_duration
from gateway.direct.tracking import MdnTracker
from gateway.model import Action, Envelope, Plan
from gateway.queue.dsn import build_dsn
from gateway.queue.item import QueueItem, RecipientState, Status

log = get_logger("direct")
MAX_SLEEP = 60.0     # look again at least this often (records added by the CLI, clock jumps)


class MdnMonitor:
    def __init__(self, tracker: MdnTracker, spool, *, hostname: str, dsn_sender: str):
        self.tracker = tracker
        self.spool = spool
        self.hostname = hostname
        self.dsn_sender = dsn_sender or f"MAILER-DAEMON@{hostname}"
        self.wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def check(self) -> int:
        """Send DSNs for everything past its deadline; how many messages."""
        due = await asyncio.to_thread(self.tracker.expire)
        for record, late in due:
            reason = (f"5.4.7 no delivery notification from the recipient's Direct gateway "
                      f"within {format_duration(self.tracker.timeout)}")
            failed = [RecipientState(a, Action.DIRECT, status=Status.FAILED, last_error=reason)
                      for a in late]
            stand_in = QueueItem(record.queue_id, Envelope(record.sender, tuple(late)),
                                 Plan.relay_all(late), failed, created_at=record.sent_at)
            audit("bounced", queue_id=record.queue_id, recipients=late, reason=reason)
            if record.sender:
                data = build_dsn(stand_in, failed, self.hostname, self.dsn_sender)
                await self.spool.send_dsn(data, record.sender)
                audit("dsn_sent", queue_id=record.queue_id, recipients=len(late))
        return len(due)

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except OSError as exc:
                log.error("mdn tracking check failed", error=exc.__class__.__name__)
            deadline = await asyncio.to_thread(self.tracker.next_deadline)
            delay = MAX_SLEEP if deadline is None else deadline - self.tracker.clock()
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), max(0.05, min(delay, MAX_SLEEP)))
            except TimeoutError:
                pass

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
