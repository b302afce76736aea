"""The administrator's digest from a real spool: what it lists (held in
hold/ and in queue/, shunted, failed since the last digest only, unreadable
items, certificates inside the warning window), that it says nothing of a
message, and when the loop sends it (one interval after the first start,
remembered across restarts)."""
import asyncio
import json
import os

from gateway.model import Action, Decision, Envelope, Plan, Verdict
from gateway.queue.digest import Digest
from gateway.queue.dispatcher import Dispatcher
from gateway.queue.item import Status
from gateway.queue.notices import ExpiringCert
from gateway.queue.store import FAILED, HOLD, QUEUE, SHUNT, QueueStore
from tests.leaks import shown_tokens

NOW = 1_000_000.0
DAY = 86400.0


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now


async def item_in(store, area, rule, status, reason, subject=b"Jane Roe DOB 1980"):
    env = Envelope("staff@clinic.test", ("pat@x.test",), received_at=NOW - 7200)
    plan = Plan(Verdict(phi=True), (Decision("pat@x.test", Action.HOLD, rule, reason=reason),))
    item = await store.put(env, b"Subject: " + subject + b"\r\n\r\nbody\r\n", plan)
    item.recipients[0].status = status
    item.recipients[0].last_error = reason
    await store.save(item)
    if area != QUEUE:
        await store.move(item.id, QUEUE, area)
    return item.id


def make_digest(store, spool, clock, tmp_path, certs=()):
    return Digest(store, spool, address="it@clinic.test", hostname="gw.test",
                  sender="MAILER-DAEMON@gw.test", interval=DAY, cert_window=30 * DAY,
                  state_path=tmp_path / "digest.json", certificates=lambda: list(certs),
                  clock=clock)


async def test_what_the_digest_lists(tmp_path):
    store = QueueStore(tmp_path / "spool")
    clock = Clock()
    held = await item_in(store, HOLD, "phi-in-subject", Status.HELD, "PHI in the subject")
    waiting = await item_in(store, QUEUE, "strict", Status.HELD, "held by policy")
    pending = await item_in(store, QUEUE, "relay", Status.PENDING, "451 later")
    shunted = await item_in(store, SHUNT, "relay", Status.PENDING, "")
    new_fail = await item_in(store, FAILED, "relay", Status.FAILED, "550 5.1.1 no such user")
    old_fail = await item_in(store, FAILED, "relay", Status.FAILED, "550 old")
    old_state = store.file(old_fail, FAILED, ".state")
    os.utime(old_state, (NOW - 3 * DAY, NOW - 3 * DAY))     # reported by an earlier digest
    new_state = store.file(new_fail, FAILED, ".state")
    os.utime(new_state, (NOW - 3600, NOW - 3600))
    certs = [ExpiringCert("ab" * 32, "partner@surgery.test", NOW + 10 * DAY),
             ExpiringCert("cd" * 32, "later@surgery.test", NOW + 90 * DAY)]
    digest = make_digest(store, None, clock, tmp_path, certs)
    lines = {(line.queue_id, line.area) for line in digest.collect(since=NOW - DAY)}
    assert lines == {(held, HOLD), (waiting, HOLD), (shunted, SHUNT), (new_fail, FAILED)}
    assert pending not in {q for q, _ in lines}
    text = digest.build(since=NOW - DAY).decode()
    assert "Held (waiting for you): 2" in text and "Failed (the sender got" in text
    assert "550 5.1.1 no such user" in text and "550 old" not in text
    assert "partner@surgery.test" in text and "later@surgery.test" not in text
    assert shown_tokens(text, ("Jane", "1980", "pat@x.test")) == []


async def test_loop_sends_one_interval_after_the_first_start_and_remembers(tmp_path):
    store = QueueStore(tmp_path / "spool")
    clock = Clock()
    spool = Dispatcher(store, {})
    digest = make_digest(store, spool, clock, tmp_path)
    loop = asyncio.create_task(digest.run())
    async with asyncio.timeout(10):                  # the first pass writes the start time
        while not (tmp_path / "digest.json").exists():
            await asyncio.sleep(0.01)
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
    assert store.ids(QUEUE) == []                    # nothing on a first start
    assert json.loads((tmp_path / "digest.json").read_text()) == {"last_sent": NOW}

    clock.now += DAY                                  # a restart a day later: due
    loop = asyncio.create_task(make_digest(store, spool, clock, tmp_path).run())
    async with asyncio.timeout(10):                  # sent and remembered (in that order)
        while json.loads((tmp_path / "digest.json").read_text()) != {"last_sent": NOW + DAY}:
            await asyncio.sleep(0.01)
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
    [queued] = store.ids(QUEUE)
    item = store.load(queued)
    assert item.envelope.rcpt_tos == ("it@clinic.test",) and item.envelope.mail_from == ""
    assert item.envelope.source == "digest" and not item.plan.verdict.phi
    assert json.loads((tmp_path / "digest.json").read_text()) == {"last_sent": NOW + DAY}
