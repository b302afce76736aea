"""Dispatcher: runs the actions for queued recipients after the commit point.

It owns every item in ``queue/`` while the daemon runs. Its schedule is in
memory (a heap of due times) and rebuilt from disk at start-up by
``recover()``. One attempt of one item:

1. mark the item in flight (a crash now counts against it at the next start),
2. group the due pending recipients by the action in effect and call that
   action's handler,
3. apply each recipient's Outcome: Delivered; Transient → backoff with
   jitter; Permanent(no certificate) → the plan's next fallback at once;
   Permanent(hold) (the courier's last check, ``gateway.delivery.guard``) →
   held; Permanent → failed; past ``give_up_after`` → failed,
4. send one PHI-free DSN for newly failed recipients and one PHI-free held
   notice for newly held ones (``gateway.queue.notices``), each itself a
   queue item,
5. persist: when every recipient is final remove the item (or move it to
   failed/ when one failed, kept for ``keep_failed``), move it to hold/ when
   only held recipients remain, else save its state atomically.

Everything phigate sends is a queue item delivered here (``enqueue``): relayed
mail, portal notices and patients' messages, read notices, reset links, DSNs,
held notices and the administrator's digest. While a handler runs, the item
is named in ``gateway.delivery.guard.delivering`` so the guarded couriers can
check each recipient against it, and a message its envelope calls wire-ready
in ``gateway.delivery.smtp_wire.wire_ready`` (sent upstream as it is).

Handler exceptions are bugs: the item's crash count goes up and after
``max_crashes`` it is moved to shunt/ with the traceback beside it (<id>.error).
Administrative operations (hold, release, drop, retry) go through the
dispatcher so they never race with an attempt on the same item.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Mapping

from gateway.audit import audit, get_logger
from gateway.delivery.guard import delivering
from gateway.delivery.smtp_wire import wire_ready
from gateway.model import Action, Delivered, Envelope, Permanent, PermanentKind, Plan, Transient
from gateway.queue import filethreads
from gateway.queue.dsn import build_dsn
from gateway.queue.item import QueueItem, Status
from gateway.queue.notices import HeldNotice
from gateway.queue.store import FAILED, HOLD, QUEUE, SHUNT, ItemNotFound, QueueStore

log = get_logger("dispatcher")

MAX_ROUNDS = 8     # fallbacks can add immediate work within one attempt
LULL_WAIT = 0.005  # seconds a fresh item may wait for a lull (``submit``)

# An action with no handler on this gateway behaves like "no certificate": the
# plan's fallback takes over, and without one the recipient is held (fail closed).
_UNAVAILABLE = PermanentKind.NO_CERTIFICATE


class Dispatcher:
    def __init__(self, store: QueueStore, handlers: Mapping[Action, object] | None = None, *,
                 retry_min: float = 30.0, retry_max: float = 3600.0, jitter: float = 0.2,
                 give_up_after: float = 5 * 86400.0, concurrency: int = 50,
                 max_crashes: int = 3, hostname: str = "localhost", dsn_sender: str = "",
                 held_notice: HeldNotice | None = None, keep_failed: float = 0.0,
                 metrics=None, clock: Callable[[], float] = time.time):
        """``handlers`` may also be set later (``self.handlers``): actions that
        send mail of their own take the dispatcher as their spool."""
        self.store = store
        self.handlers = dict(handlers or {})
        self.held_notice = held_notice
        self.keep_failed = keep_failed
        self.retry_min, self.retry_max, self.jitter = retry_min, retry_max, jitter
        self.give_up_after = give_up_after
        self.max_crashes = max_crashes
        self.hostname = hostname
        self.dsn_sender = dsn_sender or f"MAILER-DAEMON@{hostname}"
        self.metrics = metrics
        self.clock = clock
        self._concurrency = asyncio.Semaphore(concurrency)
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}
        self._seq = itertools.count()
        self._fresh: dict[str, tuple[QueueItem, bytes]] = {}
        self._lull_timer: asyncio.TimerHandle | None = None
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self.alive = False

    # ---- scheduling ---------------------------------------------------------
    def schedule(self, item_id: str, due: float) -> None:
        if self._due.get(item_id, float("inf")) <= due:
            return
        self._due[item_id] = due
        heapq.heappush(self._heap, (due, next(self._seq), item_id))
        self._wake.set()

    def submit(self, item: QueueItem, raw: bytes, wait_for_lull: bool = False) -> None:
        """A freshly committed item: attempt it now, from memory; with
        ``wait_for_lull``, at the next ``lull`` but within ``LULL_WAIT``."""
        self._fresh[item.id] = (item, raw)
        if not wait_for_lull:
            self.schedule(item.id, 0.0)
            return
        # In the schedule, so that ``lull`` and ``stop`` know it has not started; the timer,
        # on the loop's monotonic clock, is what ends the wait if no lull comes (a wall
        # clock that stands still or is set back cannot hold the item).
        self.schedule(item.id, self.clock() + LULL_WAIT)
        if self._lull_timer is None:
            self._lull_timer = asyncio.get_running_loop().call_later(LULL_WAIT, self.lull)

    def lull(self) -> None:
        """The caller is about to wait for another process (the SMTP edge, for
        a classifier child's verdict), so the event loop has nothing to do for
        a while: start the fresh attempts that wait for that. Run between a
        client's commands instead, their work on the loop delays its replies
        (with one client at a time, ~0.3 ms of a ~2.4 ms session)."""
        if self._lull_timer is not None:
            self._lull_timer.cancel()
            self._lull_timer = None
        for item_id in self._fresh:
            if item_id in self._due:                 # not started yet
                self.schedule(item_id, 0.0)

    async def enqueue(self, envelope: Envelope, raw: bytes, plan: Plan) -> str:
        """The one road out for mail phigate writes itself: commit it to the
        spool (``QueueStore.put``, fsynced) and attempt it now. Returns the
        queue id once the item is durable."""
        item = await self.store.put(envelope, raw, plan)
        audit("queued", queue_id=item.id, sender=envelope.mail_from, source=envelope.source,
              recipients=len(envelope.rcpt_tos), size=len(raw), phi=plan.verdict.phi,
              decisions=[f"{d.action.value}:{d.rule}" for d in plan.decisions])
        self.submit(item, raw)
        self._update_sizes()
        return item.id

    def recover(self) -> int:
        """Rebuild the schedule from disk; count and shunt crashed items."""
        removed = self.store.clean_tmp()
        if removed:
            log.warning("removed incomplete staging items", count=removed)
        committed, removed = self.store.settle_reserved()
        if committed:
            log.info("kept items committed into reserved names", count=committed)
        if removed:
            log.info("removed unused or incomplete reserved names", count=removed)
        self.store.clean_orphans()
        count = 0
        for item_id in self.store.own_ids(QUEUE):
            try:
                item = self.store.load(item_id)
            except Exception as exc:  # noqa: BLE001 — unreadable state: a human must look
                self.store.move_sync(item_id, QUEUE, SHUNT,
                                     f"unreadable state: {exc.__class__.__name__}\n")
                audit("shunted", queue_id=item_id, reason="unreadable state")
                continue
            if self.store.was_in_flight(item_id):
                item.crashes += 1
                if item.crashes >= self.max_crashes:
                    self.store.save_sync(item)
                    self.store.move_sync(item_id, QUEUE, SHUNT,
                                         f"crashed {item.crashes} times during delivery\n")
                    audit("shunted", queue_id=item_id, crashes=item.crashes)
                    self._count("shunted")
                    continue
                self.store.save_sync(item)
            pending = item.pending()
            self.schedule(item_id, min((r.next_attempt for r in pending), default=0.0))
            count += 1
        audit("recovered", count=count)
        return count

    async def run(self) -> None:
        """Pick due items until ``stop()``; each attempt runs as its own task."""
        self.alive = True
        try:
            while not self._stopping:
                now = self.clock()
                while self._heap and self._heap[0][0] <= now:
                    due, _, item_id = heapq.heappop(self._heap)
                    if self._due.get(item_id) != due:
                        continue                      # superseded entry
                    self._start(item_id)
                self._wake.clear()
                due = self._next_due()
                timeout = None if due is None else due - now
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            self.alive = False

    def _next_due(self) -> float | None:
        """When the earliest live entry of the schedule is due; None when none is.
        Superseded entries on top are dropped first: an item moved earlier (a fresh
        item started at a lull) leaves its later entry behind, and waiting for that
        would wake ``run`` for nothing, once or twice a message."""
        heap, live = self._heap, self._due
        while heap and live.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def _start(self, item_id: str) -> None:
        """An attempt of a due item, as a task of its own."""
        del self._due[item_id]
        task = asyncio.create_task(self._attempt(item_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> int:
        """Attempt every item due now, one after another in this task, until
        none is due; the number of attempts. (``run`` does the same work
        concurrently and forever; this is the deterministic one-shot form.)"""
        attempts = 0
        while self._heap and self._heap[0][0] <= self.clock():
            due, _, item_id = heapq.heappop(self._heap)
            if self._due.get(item_id) != due:
                continue
            del self._due[item_id]
            await self._attempt(item_id)
            attempts += 1
        return attempts

    async def stop(self, grace: float = 30.0) -> None:
        """Stop picking work; let attempts in flight finish within ``grace``,
        and the fresh items still waiting for a lull, started now."""
        self._stopping = True
        self._wake.set()
        if self._lull_timer is not None:
            self._lull_timer.cancel()
            self._lull_timer = None
        for item_id in [i for i in self._fresh if i in self._due]:
            self._start(item_id)
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # ---- one attempt ----------------------------------------------------------
    async def _attempt(self, item_id: str) -> None:
        lock = self._locks[item_id]
        async with self._concurrency, lock:
            try:
                fresh = self._fresh.pop(item_id, None)
                if fresh is None:
                    try:
                        item, raw = await filethreads.run(self.store.load_for_attempt, item_id)
                    except ItemNotFound:
                        return                       # dropped or moved meanwhile
                else:
                    item, raw = fresh                # put() marked it in flight
                try:
                    await self._deliver(item, raw)
                except asyncio.CancelledError:
                    self.store.clear_in_flight(item_id)
                    raise
                except Exception as exc:  # noqa: BLE001 — a bug in an action: count, maybe shunt
                    await self._crashed(item, exc)
            finally:
                self._fresh.pop(item_id, None)
        if item_id not in self._due and not lock.locked():
            self._locks.pop(item_id, None)

    async def _deliver(self, item: QueueItem, raw: bytes) -> None:
        now = self.clock()
        expired = now - item.created_at >= self.give_up_after
        for _ in range(MAX_ROUNDS):
            due = [r for r in item.pending() if r.next_attempt <= now]
            if not due:
                break
            groups: dict[Action, list] = defaultdict(list)
            for r in due:
                groups[r.action].append(r)
            for action, rcpts in groups.items():
                await self._run_group(item, raw, action, rcpts, now, expired)
        if expired:
            for r in item.pending():
                self._fail(item, r, f"gave up after {self.give_up_after / 86400:g} days: "
                           f"{r.last_error or 'not delivered'}")
        await self._send_dsn(item)
        await self._send_held_notice(item)
        await self._persist(item)

    async def _run_group(self, item, raw, action, rcpts, now, expired) -> None:
        if action is Action.HOLD:
            for r in rcpts:
                r.status = Status.HELD
                r.last_error = r.reason or "held by policy"
                audit("held", queue_id=item.id, recipient=r.address, rule=r.rule)
                self._count("held")
            return
        handler = self.handlers.get(action)
        if handler is None:
            outcome = Permanent(f"{action.value} delivery is not available on this gateway",
                                kind=_UNAVAILABLE)
            outcomes = {r.address: outcome for r in rcpts}
        else:
            for r in rcpts:
                r.attempts += 1
            audit("attempt", queue_id=item.id, action=action.value, recipients=len(rcpts))
            token = delivering.set(item)
            ready = wire_ready.set(raw if item.envelope.wire_ready else None)
            try:
                outcomes = await handler.execute(item, raw, rcpts)
            finally:
                wire_ready.reset(ready)
                delivering.reset(token)
        for r in rcpts:
            outcome = outcomes.get(r.address) or Transient("no outcome reported")
            self._apply(item, r, outcome, now, expired, handler is None)

    def _apply(self, item, r, outcome, now, expired, unavailable) -> None:
        if isinstance(outcome, Delivered):
            r.status = Status.DELIVERED
            r.last_error = ""
            audit("delivered", queue_id=item.id, recipient=r.address, action=r.action.value)
            self._count("delivered")
            if self.metrics is not None:
                self.metrics.observe_delivery(max(0.0, now - item.created_at))
        elif isinstance(outcome, Transient):
            r.last_error = outcome.reason
            if expired:
                return                                # failed below, with the reason
            r.next_attempt = now + self.backoff(r.attempts)
            audit("deferred", queue_id=item.id, recipient=r.address, action=r.action.value,
                  reason=outcome.reason, next_attempt=round(r.next_attempt))
            self._count("deferred")
        elif outcome.kind is PermanentKind.HOLD:
            r.status = Status.HELD
            r.last_error = outcome.reason
            self._count("held")           # audited where decided (guard: held; relay: refused)
        elif outcome.wants_fallback and r.fallbacks:
            previous = r.action
            r.change_action(r.fallbacks.pop(0))
            r.next_attempt = now
            r.last_error = outcome.reason
            audit("fallback", queue_id=item.id, recipient=r.address, action=previous.value,
                  fallback=r.action.value, reason=outcome.reason)
        elif unavailable:
            r.status = Status.HELD
            r.last_error = outcome.reason + "; held"
            audit("held", queue_id=item.id, recipient=r.address, reason=outcome.reason)
            self._count("held")
        else:
            self._fail(item, r, outcome.reason)

    def _fail(self, item, r, reason: str) -> None:
        r.status = Status.FAILED
        r.last_error = reason
        audit("bounced", queue_id=item.id, recipient=r.address, reason=reason)
        self._count("bounced")

    def backoff(self, attempts: int) -> float:
        delay = min(self.retry_max, self.retry_min * 2 ** max(0, attempts - 1))
        return max(1.0, delay * (1 + random.uniform(-self.jitter, self.jitter)))

    async def _send_dsn(self, item: QueueItem) -> None:
        unreported = [r for r in item.recipients
                      if r.status is Status.FAILED and not r.steps.get("dsn")]
        if not unreported:
            return
        sender = item.envelope.mail_from
        if sender and item.envelope.source != "dsn":
            data = build_dsn(item, unreported, self.hostname, self.dsn_sender)
            envelope = Envelope(mail_from="", rcpt_tos=(sender,), received_at=self.clock(),
                                source="dsn")
            await self.enqueue(envelope, data, Plan.relay_all([sender], rule="dsn"))
            audit("dsn_sent", queue_id=item.id, recipients=len(unreported))
        for r in unreported:
            r.steps["dsn"] = True

    async def _send_held_notice(self, item: QueueItem) -> None:
        """One PHI-free notice to the sender for recipients newly held (only
        for staff submissions: never about mail phigate wrote itself)."""
        unreported = [r for r in item.recipients
                      if r.status is Status.HELD and not r.steps.get("held_notice")]
        if not unreported:
            return
        sender = item.envelope.mail_from
        if self.held_notice is not None and sender and item.envelope.source == "smtp":
            data = self.held_notice.build(item, unreported, self.dsn_sender, self.clock())
            envelope = Envelope(mail_from="", rcpt_tos=(sender,), received_at=self.clock(),
                                source="notice")
            await self.enqueue(envelope, data, Plan.relay_all([sender], rule="held-notice"))
            audit("notice_sent", queue_id=item.id, action="held_notice",
                  recipients=len(unreported))
        for r in unreported:
            r.steps["held_notice"] = True

    async def _persist(self, item: QueueItem) -> None:
        statuses = {r.status for r in item.recipients}
        if Status.PENDING not in statuses and Status.HELD not in statuses:
            if Status.FAILED in statuses and self.keep_failed > 0:
                await self.store.save(item)
                await self.store.move(item.id, QUEUE, FAILED)
            else:
                await self.store.finish(item.id)
            self._forget(item.id)
            self._update_sizes()
            return
        await self.store.save(item)
        if Status.PENDING in statuses:
            self.schedule(item.id, min(r.next_attempt for r in item.pending()))
        else:
            await self.store.move(item.id, QUEUE, HOLD)
            self._forget(item.id)
        self._update_sizes()

    async def _crashed(self, item: QueueItem, exc: Exception) -> None:
        item.crashes += 1
        log.error("delivery attempt crashed", queue_id=item.id, error=exc.__class__.__name__,
                  crashes=item.crashes)
        await self.store.save(item)
        if item.crashes >= self.max_crashes:
            text = "".join(traceback.format_exception(exc))
            await self.store.move(item.id, QUEUE, SHUNT, text)
            self._forget(item.id)
            audit("shunted", queue_id=item.id, crashes=item.crashes)
            self._count("shunted")
        else:
            self.schedule(item.id, self.clock() + self.backoff(item.crashes))

    # ---- administration ---------------------------------------------------------
    async def hold(self, item_id: str, reason: str = "held by an administrator") -> None:
        async with self._locks[item_id]:
            item = self.store.load(item_id, QUEUE)
            for r in item.pending():
                r.status = Status.HELD
                r.last_error = reason
            item.held_reason = reason
            await self.store.save(item)
            await self.store.move(item_id, QUEUE, HOLD)
            audit("held", queue_id=item_id, reason=reason)
        self._forget(item_id)

    async def release(self, item_id: str, action: Action | None = None) -> Action:
        """Send held recipients on. Default: the portal for a PHI message,
        relay otherwise; ``--as relay`` on PHI is an explicit admin override."""
        async with self._locks[item_id]:
            area = self.store.find(item_id)
            if area in (QUEUE, FAILED):
                raise ValueError("item is not held" if area == QUEUE else
                                 "item failed; the sender was told (drop it or resubmit)")
            item = self.store.load(item_id, area)
            chosen = action or (Action.PORTAL if item.plan.verdict.phi else Action.RELAY)
            for r in item.recipients:
                if r.status is Status.HELD or (area == SHUNT and r.status is Status.PENDING):
                    r.status = Status.PENDING
                    r.change_action(chosen)
                    if action is Action.RELAY:        # the administrator's explicit word
                        r.options["allow_phi_plaintext"] = True
                    r.fallbacks = []
                    r.next_attempt = 0.0
                    r.steps["released_as"] = chosen.value
            item.held_reason = ""
            item.crashes = 0
            await self.store.save(item, area)
            await self.store.move(item_id, area, QUEUE)
            audit("released", queue_id=item_id, action=chosen.value)
            self.schedule(item_id, 0.0)
            return chosen

    async def drop(self, item_id: str) -> None:
        async with self._locks[item_id]:
            area = self.store.find(item_id)
            await self.store.drop(item_id, area)
            audit("dropped", queue_id=item_id)
        self._forget(item_id)

    async def retry(self, item_id: str) -> None:
        """Attempt pending recipients now instead of at their backoff time."""
        async with self._locks[item_id]:
            item = self.store.load(item_id, QUEUE)
            for r in item.pending():
                r.next_attempt = 0.0
            await self.store.save(item)
        self.schedule(item_id, 0.0)

    def _forget(self, item_id: str) -> None:
        """The item left queue/: drop its schedule entry, its fresh copy (after a
        release its attempt must read what the release wrote) and its lock."""
        self._due.pop(item_id, None)
        self._fresh.pop(item_id, None)
        lock = self._locks.get(item_id)
        if lock is not None and not lock.locked():
            del self._locks[item_id]

    # ---- metrics ---------------------------------------------------------------
    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.count_outcome(outcome)

    def _update_sizes(self) -> None:
        if self.metrics is not None:
            self.metrics.set_queue_sizes(queue=self.store.size)

