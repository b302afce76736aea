"""Dispatcher logic: outcomes per recipient, fallbacks, give-up + DSN, shunting,
crash recovery and admin operations. Handlers here are scripted ActionHandlers
(our own protocol), so every outcome path can be driven deterministically; the
real couriers are exercised in tests/integration."""
import asyncio

import pytest

from gateway.model import (
    Action,
    Decision,
    Delivered,
    Envelope,
    Permanent,
    PermanentKind,
    Plan,
    Transient,
    Verdict,
)
from gateway.queue import dispatcher as dispatcher_module
from gateway.queue.dispatcher import Dispatcher
from gateway.queue.item import Status
from gateway.queue.store import FAILED, HOLD, QUEUE, SHUNT, QueueStore


class Scripted:
    """Returns the scripted outcome per recipient, records calls."""

    def __init__(self, action, outcomes=None, default=None, crash=False):
        self.action = action
        self.outcomes = outcomes or {}
        self.default = default or Delivered()
        self.crash = crash
        self.calls = []
        self.called = asyncio.Event()

    async def execute(self, item, raw, recipients):
        self.calls.append((item.id, [r.address for r in recipients], raw))
        self.called.set()
        if self.crash:
            raise RuntimeError("bug")
        return {r.address: self.outcomes.get(r.address, self.default) for r in recipients}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def plan(*decisions, phi=False):
    return Plan(Verdict(phi=phi), tuple(decisions))


async def run_once(dispatcher, item, raw=b"data"):
    """Attempt one item and wait for the attempt to end (no background loop)."""
    dispatcher.submit(item, raw)
    dispatcher._due.pop(item.id, None)
    await dispatcher._attempt(item.id)


@pytest.fixture
def store(tmp_path):
    return QueueStore(tmp_path)


async def put(store, rcpts, p):
    env = Envelope("staff@clinic.test", tuple(rcpts), received_at=1000.0)
    return await store.put(env, b"data", p)


async def test_per_recipient_outcomes_and_dsn(store):
    relay = Scripted(Action.RELAY, {"bad@x.test": Permanent("550 5.1.1 no such user"),
                                    "slow@x.test": Transient("451 4.3.0 later")})
    clock = Clock()
    d = Dispatcher(store, {Action.RELAY: relay}, clock=clock, hostname="gw.test")
    rcpts = ["ok@x.test", "bad@x.test", "slow@x.test"]
    item = await put(store, rcpts, Plan.relay_all(rcpts))
    await run_once(d, item)
    saved = store.load(item.id)
    status = {r.address: r.status for r in saved.recipients}
    assert status == {"ok@x.test": Status.DELIVERED, "bad@x.test": Status.FAILED,
                      "slow@x.test": Status.PENDING}
    slow = saved.recipient("slow@x.test")
    assert slow.attempts == 1 and slow.next_attempt > clock.now
    assert slow.last_error == "451 4.3.0 later"
    # exactly one DSN, queued as its own item to the sender, without the body
    dsn_ids = [i for i in store.ids() if i != item.id]
    assert len(dsn_ids) == 1
    dsn = store.load(dsn_ids[0])
    assert dsn.envelope.mail_from == "" and dsn.envelope.rcpt_tos == ("staff@clinic.test",)
    text = store.read_message(dsn_ids[0])
    assert b"bad@x.test" in text and b"550 5.1.1" in text and b"slow@x.test" not in text
    assert saved.recipient("bad@x.test").steps["dsn"] is True


async def test_give_up_after_fails_pending_with_dsn(store):
    relay = Scripted(Action.RELAY, default=Transient("connection refused"))
    clock = Clock()
    d = Dispatcher(store, {Action.RELAY: relay}, clock=clock, give_up_after=3600)
    item = await put(store, ["a@x.test"], Plan.relay_all(["a@x.test"]))
    await run_once(d, item)
    assert store.load(item.id).recipient("a@x.test").status is Status.PENDING
    clock.now += 3600
    d._due.pop(item.id, None)
    await d._attempt(item.id)
    assert item.id not in store.ids()               # finished: failed + reported
    (dsn_id,) = store.ids()
    assert b"gave up after" in store.read_message(dsn_id)


async def test_no_certificate_moves_to_fallback(store):
    smime = Scripted(Action.SMIME, default=Permanent("no certificate", kind=PermanentKind.NO_CERTIFICATE))
    portal = Scripted(Action.PORTAL)
    d = Dispatcher(store, {Action.SMIME: smime, Action.PORTAL: portal})
    p = plan(Decision("p@x.test", Action.SMIME, "phi", fallbacks=(Action.PORTAL,)), phi=True)
    item = await put(store, ["p@x.test"], p)
    await run_once(d, item)
    assert smime.calls and portal.calls
    assert store.ids() == []


async def test_unavailable_action_without_fallback_is_held(store):
    d = Dispatcher(store, {Action.RELAY: Scripted(Action.RELAY)})
    p = plan(Decision("p@x.test", Action.DIRECT, "direct"), phi=True)
    item = await put(store, ["p@x.test"], p)
    await run_once(d, item)
    assert store.find(item.id) == HOLD
    held = store.load(item.id, HOLD).recipient("p@x.test")
    assert held.status is Status.HELD and "not available" in held.last_error


async def test_hold_decision_and_release_to_portal_for_phi(store):
    portal = Scripted(Action.PORTAL)
    d = Dispatcher(store, {Action.PORTAL: portal})
    p = plan(Decision("p@x.test", Action.HOLD, "phi-in-subject", reason="PHI in the subject"), phi=True)
    item = await put(store, ["p@x.test"], p)
    await run_once(d, item)
    assert store.find(item.id) == HOLD
    assert store.load(item.id, HOLD).recipient("p@x.test").last_error == "PHI in the subject"
    assert await d.release(item.id) is Action.PORTAL
    assert store.find(item.id) == QUEUE
    d._due.pop(item.id, None)
    await d._attempt(item.id)
    assert portal.calls and store.ids() == []


async def test_handler_crash_counts_then_shunts(store):
    bad = Scripted(Action.RELAY, crash=True)
    d = Dispatcher(store, {Action.RELAY: bad}, max_crashes=3)
    item = await put(store, ["a@x.test"], Plan.relay_all(["a@x.test"]))
    for _ in range(3):
        d._due.pop(item.id, None)
        await d._attempt(item.id)
    assert store.find(item.id) == SHUNT
    assert "RuntimeError" in store.read_error(item.id)


async def test_recover_counts_crash_marker_and_shunts_at_limit(store):
    item = await put(store, ["a@x.test"], Plan.relay_all(["a@x.test"]))
    for expected in (1, 2):
        store.mark_in_flight(item.id)            # as left by kill -9 mid-attempt
        d = Dispatcher(store, {}, max_crashes=3)
        assert d.recover() == 1
        assert store.load(item.id).crashes == expected
    store.mark_in_flight(item.id)
    d = Dispatcher(store, {}, max_crashes=3)
    assert d.recover() == 0
    assert store.find(item.id) == SHUNT


async def test_run_loop_delivers_submitted_items(store):
    relay = Scripted(Action.RELAY)
    d = Dispatcher(store, {Action.RELAY: relay})
    loop_task = asyncio.create_task(d.run())
    items = [await put(store, [f"r{i}@x.test"], Plan.relay_all([f"r{i}@x.test"])) for i in range(5)]
    for item in items:
        d.submit(item, b"data")
    async with asyncio.timeout(10):
        while store.ids():
            await asyncio.sleep(0.01)
    await d.stop()
    await loop_task
    assert sorted(c[1][0] for c in relay.calls) == sorted(f"r{i}@x.test" for i in range(5))


def test_backoff_grows_and_is_capped():
    d = Dispatcher(QueueStore.__new__(QueueStore), {}, retry_min=30, retry_max=3600, jitter=0)
    assert [d.backoff(n) for n in (1, 2, 3)] == [30, 60, 120]
    assert d.backoff(30) == 3600


async def test_guard_hold_outcome_holds_and_tells_the_sender_once(store):
    """Permanent(kind=HOLD) (the last-step guard) holds the recipient; a
    PHI-free held notice to the sender is queued once, naming recipient and
    reason, with the null envelope sender."""
    from gateway.queue.notices import HeldNotice
    relay = Scripted(Action.RELAY, {"p@x.test": Permanent("held by the gateway's last check",
                                                          kind=PermanentKind.HOLD)})
    d = Dispatcher(store, {Action.RELAY: relay}, held_notice=HeldNotice("gw.test"))
    p = plan(Decision("p@x.test", Action.RELAY, "phi-anyone"),
             Decision("ok@x.test", Action.RELAY, "phi-anyone"), phi=True)
    item = await put(store, ["p@x.test", "ok@x.test"], p)
    await run_once(d, item)
    assert store.find(item.id) == HOLD
    held = store.load(item.id, HOLD).recipient("p@x.test")
    assert held.status is Status.HELD and held.steps["held_notice"] is True
    (notice_id,) = store.ids(QUEUE)
    notice = store.load(notice_id)
    assert notice.envelope.mail_from == "" and notice.envelope.rcpt_tos == ("staff@clinic.test",)
    assert notice.envelope.source == "notice" and not notice.plan.verdict.phi
    text = store.read_message(notice_id).decode()
    assert "p@x.test: held by the gateway's last check" in text and item.id in text
    assert "ok@x.test" not in text and "data" not in text.split("\r\n\r\n", 1)[1]


async def test_no_held_notice_about_mail_phigate_wrote(store):
    from gateway.queue.notices import HeldNotice
    d = Dispatcher(store, {}, held_notice=HeldNotice("gw.test"))
    env = Envelope("portal@clinic.test", ("p@x.test",), received_at=1000.0, source="portal")
    item = await store.put(env, b"data", plan(Decision("p@x.test", Action.HOLD, "r"), phi=True))
    await run_once(d, item)
    assert store.find(item.id) == HOLD and store.ids(QUEUE) == []


async def test_fallback_and_release_decide_the_plaintext_permission(store):
    """The rule's allow_phi_plaintext belongs to the action it chose: a
    fallback drops it; an administrator's explicit release as relay grants it."""
    d = Dispatcher(store, {Action.RELAY: Scripted(Action.RELAY)})
    p = plan(Decision("p@x.test", Action.DIRECT, "partner", fallbacks=(Action.HOLD,),
                      options={"allow_phi_plaintext": True, "sign": True}), phi=True)
    item = await put(store, ["p@x.test"], p)
    await run_once(d, item)
    held = store.load(item.id, HOLD).recipient("p@x.test")
    assert held.action is Action.HOLD and held.options == {"sign": True}
    assert await d.release(item.id, Action.RELAY) is Action.RELAY
    released = store.load(item.id).recipient("p@x.test")
    assert released.options["allow_phi_plaintext"] is True
    assert released.steps["released_as"] == "relay"


async def test_failed_items_are_kept_in_failed_when_configured(store):
    relay = Scripted(Action.RELAY, default=Permanent("550 5.1.1 no such user"))
    d = Dispatcher(store, {Action.RELAY: relay}, keep_failed=86400)
    item = await put(store, ["a@x.test"], Plan.relay_all(["a@x.test"]))
    await run_once(d, item)
    assert store.find(item.id) == FAILED
    assert store.load(item.id, FAILED).recipient("a@x.test").status is Status.FAILED
    with pytest.raises(ValueError, match="failed"):
        await d.release(item.id)
    assert store.purge_failed(older_than=0) == 0
    assert store.purge_failed(older_than=float("inf")) == 1 and store.ids(FAILED) == []


async def test_enqueue_commits_then_attempts(store):
    relay = Scripted(Action.RELAY)
    d = Dispatcher(store, {Action.RELAY: relay})
    env = Envelope("", ("admin@x.test",), received_at=1000.0, source="digest")
    queue_id = await d.enqueue(env, b"report", Plan.relay_all(["admin@x.test"]))
    assert store.ids(QUEUE) == [queue_id] and store.size == 1      # durable before any attempt
    assert await d.drain() == 1
    assert relay.calls == [(queue_id, ["admin@x.test"], b"report")] and store.ids() == []


async def until(condition, seconds=10.0):
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.001)


async def test_a_fresh_item_waiting_for_a_lull_starts_at_the_lull(store, monkeypatch):
    monkeypatch.setattr(dispatcher_module, "LULL_WAIT", 3600.0)   # only the lull can start it
    relay = Scripted(Action.RELAY)
    d = Dispatcher(store, {Action.RELAY: relay})
    loop_task = asyncio.create_task(d.run())
    item = await put(store, ["r@x.test"], Plan.relay_all(["r@x.test"]))
    d.submit(item, b"data", wait_for_lull=True)
    for _ in range(50):                 # the run loop gets every chance to start it early
        await asyncio.sleep(0)
    assert relay.calls == [] and d.in_flight == 0
    d.lull()
    await until(lambda: not store.ids())
    assert relay.calls == [(item.id, ["r@x.test"], b"data")]
    # the entry for the end of the wait is superseded: ``run`` dropped it rather than
    # sleep until it is due, to wake up for nothing
    assert d._heap == []
    await d.stop()
    await loop_task


async def test_without_a_lull_a_fresh_item_starts_after_the_wait(store, monkeypatch):
    """On a monotonic timer: a wall clock that stands still (or was set back) does not
    hold the item."""
    monkeypatch.setattr(dispatcher_module, "LULL_WAIT", 0.01)
    relay = Scripted(Action.RELAY)
    d = Dispatcher(store, {Action.RELAY: relay}, clock=Clock())
    loop_task = asyncio.create_task(d.run())
    item = await put(store, ["r@x.test"], Plan.relay_all(["r@x.test"]))
    d.submit(item, b"data", wait_for_lull=True)
    await until(lambda: not store.ids())
    assert [c[0] for c in relay.calls] == [item.id]
    await d.stop()
    await loop_task


async def test_a_lull_starts_no_retry_before_its_time(store):
    relay = Scripted(Action.RELAY, default=Transient("451 try later"))
    clock = Clock()
    d = Dispatcher(store, {Action.RELAY: relay}, clock=clock, retry_min=30, jitter=0)
    item = await put(store, ["r@x.test"], Plan.relay_all(["r@x.test"]))
    d.submit(item, b"data", wait_for_lull=True)
    d.lull()
    assert await d.drain() == 1                       # the first attempt, due at once
    assert d._due[item.id] == clock.now + 30          # deferred: its retry in 30 s
    d.lull()
    assert d._due[item.id] == clock.now + 30 and await d.drain() == 0


async def test_stop_sends_the_fresh_items_still_waiting_for_a_lull(store, monkeypatch):
    monkeypatch.setattr(dispatcher_module, "LULL_WAIT", 3600.0)
    relay = Scripted(Action.RELAY)
    d = Dispatcher(store, {Action.RELAY: relay})
    loop_task = asyncio.create_task(d.run())
    item = await put(store, ["r@x.test"], Plan.relay_all(["r@x.test"]))
    d.submit(item, b"data", wait_for_lull=True)
    await d.stop()
    await loop_task
    assert relay.calls == [(item.id, ["r@x.test"], b"data")] and store.ids() == []
    assert not store.was_in_flight(item.id)           # no crash counted at the next start


async def test_a_lull_does_not_start_an_item_twice(store):
    gate = asyncio.Event()

    class Blocking(Scripted):
        async def execute(self, item, raw, recipients):
            await gate.wait()
            return await super().execute(item, raw, recipients)

    relay = Blocking(Action.RELAY)
    d = Dispatcher(store, {Action.RELAY: relay}, concurrency=1)
    loop_task = asyncio.create_task(d.run())
    first = await put(store, ["a@x.test"], Plan.relay_all(["a@x.test"]))
    second = await put(store, ["b@x.test"], Plan.relay_all(["b@x.test"]))
    d.submit(first, b"a")
    d.submit(second, b"b", wait_for_lull=True)
    d.lull()
    await until(lambda: d.in_flight == 2)     # the first runs, the second waits for the slot
    d.lull()
    assert second.id not in d._due            # started once already: not due again
    gate.set()
    await until(lambda: not store.ids())
    await d.stop()
    await loop_task
    assert sorted(c[0] for c in relay.calls) == sorted([first.id, second.id])


async def test_an_item_held_while_it_waits_for_a_lull_is_released_as_released(store, monkeypatch):
    monkeypatch.setattr(dispatcher_module, "LULL_WAIT", 3600.0)
    relay, portal = Scripted(Action.RELAY), Scripted(Action.PORTAL)
    d = Dispatcher(store, {Action.RELAY: relay, Action.PORTAL: portal})
    item = await put(store, ["r@x.test"], Plan.relay_all(["r@x.test"]))
    d.submit(item, b"data", wait_for_lull=True)
    await d.hold(item.id)
    d.lull()
    assert await d.drain() == 0                       # held: nothing to start
    assert await d.release(item.id, Action.PORTAL) is Action.PORTAL
    assert await d.drain() == 1
    assert relay.calls == [] and [c[0] for c in portal.calls] == [item.id]
