"""QueueStore: the commit point and the areas on disk."""
import asyncio
import errno
import json
import os
import stat
import threading

import pytest

from gateway.model import Envelope, Plan
from gateway.queue.item import SCHEMA_VERSION, QueueItem
from gateway.queue.store import HOLD, QUEUE, SHUNT, QueueFull, QueueStore


def envelope(*rcpts):
    return Envelope("a@clinic.test", tuple(rcpts or ("b@partner.test",)), received_at=1.0)


async def test_put_writes_message_and_state_0600(tmp_path):
    store = QueueStore(tmp_path)
    env = envelope("b@partner.test", "c@partner.test")
    item = await store.put(env, b"Subject: x\r\n\r\nbody\r\n", Plan.relay_all(env.rcpt_tos))
    path = tmp_path / "queue" / f"{item.id}.msg"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    header, _, raw = path.read_bytes().partition(b"\n")
    assert raw == b"Subject: x\r\n\r\nbody\r\n"
    assert store.read_message(item.id) == raw
    state = json.loads(header)
    assert state["schema_version"] == SCHEMA_VERSION == 2
    assert [r["address"] for r in state["recipients"]] == ["b@partner.test", "c@partner.test"]
    assert store.load(item.id).to_json() == item.to_json()
    assert list((tmp_path / "tmp").iterdir()) == []
    assert store.size == 1


async def test_ids_are_random_128_bit(tmp_path):
    store = QueueStore(tmp_path)
    ids = {(await store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]))).id
           for _ in range(20)}
    assert len(ids) == 20 and all(len(i) == 32 for i in ids)


async def test_queue_full(tmp_path):
    store = QueueStore(tmp_path, max_items=2)
    for _ in range(2):
        await store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]))
    with pytest.raises(QueueFull):
        await store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]))
    assert len(store.ids()) == 2


async def test_move_and_error_text(tmp_path):
    store = QueueStore(tmp_path)
    item = await store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]))
    await store.move(item.id, QUEUE, SHUNT, "Traceback ...\n")
    assert store.find(item.id) == SHUNT
    assert store.read_error(item.id) == "Traceback ...\n"
    assert store.size == 0
    await store.move(item.id, SHUNT, HOLD)
    assert store.find(item.id) == HOLD


async def test_staging_leftovers_are_cleaned(tmp_path):
    store = QueueStore(tmp_path)
    (tmp_path / "tmp" / "abc123.msg").write_bytes(b"partial")
    assert store.clean_tmp() == 1
    assert list((tmp_path / "tmp").iterdir()) == []


def test_state_round_trip_rejects_unknown_schema():
    env = envelope()
    item = QueueItem.new("x", env, Plan.relay_all(env.rcpt_tos))
    data = item.to_json()
    assert QueueItem.from_json(json.loads(json.dumps(data))).to_json() == data
    data["schema_version"] = 99
    with pytest.raises(ValueError):
        QueueItem.from_json(data)


@pytest.mark.parametrize("shards", [1, 2, 3, 4])
def test_ids_shard_by_owner(shards):
    from gateway.queue.store import new_id, owner
    for shard in range(shards):
        for _ in range(50):
            item_id = new_id(shard, shards)
            assert len(item_id) == 32 and owner(item_id, shards) == shard


async def test_shards_see_only_their_own_items(tmp_path):
    a, b = QueueStore(tmp_path, shard=0, shards=2), QueueStore(tmp_path, shard=1, shards=2)
    for store in (a, a, b):
        await store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]))
    assert len(a.own_ids()) == 2 and len(b.own_ids()) == 1 and len(a.ids()) == 3
    assert QueueStore(tmp_path, shard=0, shards=2).size == 2


async def test_saved_state_wins_and_orphans_are_cleaned(tmp_path):
    store = QueueStore(tmp_path)
    item = await store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]))
    item.recipients[0].attempts = 3
    await store.save(item)
    assert store.load(item.id).recipients[0].attempts == 3
    assert store.read_message(item.id) == b"x"
    await store.finish(item.id)
    (tmp_path / "queue" / "abcd.state").write_bytes(b"{}")     # .msg gone: an orphan
    assert store.clean_orphans() == 1
    assert list((tmp_path / "queue").iterdir()) == []


def test_group_commit_syncs_after_each_request(tmp_path):
    """Concurrent callers all return, and each is covered by an fsync that
    started after its call (counted through a wrapped fsync)."""

    from gateway.queue import store as store_module
    calls = []
    real = store_module.fsync_dir
    store_module.fsync_dir = lambda p: (calls.append(p), real(p))
    try:
        sync = store_module.DirSync(tmp_path)
        threads = [threading.Thread(target=sync.sync) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert all(not t.is_alive() for t in threads)
        assert 1 <= len(calls) <= 20
        assert sync._done == sync._requested == 20
    finally:
        store_module.fsync_dir = real


async def test_schema_1_items_are_upgraded_when_read(tmp_path):
    """Schema 1 kept the rule's options only in the plan; reading such an
    item moves them into the recipient state (only for the decided action;
    a release as relay keeps its permission)."""
    from gateway.model import Action, Decision, Verdict
    plan = Plan(Verdict(phi=True), (
        Decision("a@x.test", Action.RELAY, "internal", reason="staff",
                 options={"allow_phi_plaintext": True}),
        Decision("b@x.test", Action.SMIME, "partner", (Action.PORTAL,), reason="partner",
                 options={"strip_subject": True}),
        Decision("c@x.test", Action.HOLD, "subject", reason="PHI in subject")))
    v1 = {"schema_version": 1, "id": "1" * 32,
          "envelope": envelope("a@x.test", "b@x.test", "c@x.test").to_json(),
          "plan": plan.to_json(), "created_at": 1.0, "crashes": 0, "dsn_sent": False,
          "held_reason": "",
          "recipients": [
              {"address": "a@x.test", "action": "relay", "status": "pending"},
              {"address": "b@x.test", "action": "portal", "status": "pending"},
              {"address": "c@x.test", "action": "relay", "status": "pending",
               "steps": {"released_as": "relay"}}]}
    item = QueueItem.from_json(json.loads(json.dumps(v1)))
    a, b, c = item.recipients
    assert (a.rule, a.reason, a.options) == ("internal", "staff", {"allow_phi_plaintext": True})
    assert (b.rule, b.options) == ("partner", {})         # now on its fallback
    assert c.options == {"allow_phi_plaintext": True}      # released as relay
    assert item.to_json()["schema_version"] == SCHEMA_VERSION
    assert "dsn_sent" not in item.to_json()


def test_put_sync_under_the_lock_marks_no_attempt(tmp_path):
    daemon = QueueStore(tmp_path)
    assert daemon.lock()
    tool = QueueStore(tmp_path)
    assert not tool.lock(blocking=False)              # the daemon runs: use its socket
    daemon.unlock()
    assert tool.lock(blocking=False)
    env = envelope("b@partner.test")
    item = tool.put_sync(env, b"Subject: x\r\n\r\nbody\r\n", Plan.relay_all(env.rcpt_tos))
    tool.unlock()
    assert tool.size == 1 and not tool.was_in_flight(item.id)
    assert QueueStore(tmp_path).ids(QUEUE) == [item.id]    # found by the daemon's recovery


async def test_finished_items_share_one_trip_to_the_removal_thread(tmp_path):
    """Items finished together are removed in one batch, and each ``finish``
    returns only once its own files (and its in-flight marker) are gone."""
    store = QueueStore(tmp_path)
    items = [await store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]))
             for _ in range(20)]
    batches = []
    remove_all = store._removals.remove_all
    store._removals.remove_all = lambda entries: (batches.append(len(entries)), remove_all(entries))[1]
    await asyncio.gather(*(store.finish(item.id) for item in items))
    assert batches == [20]
    assert list((tmp_path / "queue").iterdir()) == []
    assert list((tmp_path / "active").iterdir()) == []
    assert store.size == 0


def test_pieces_are_written_whole_when_the_kernel_takes_less(tmp_path, monkeypatch):
    """``writev`` may write fewer bytes than asked; the rest follows, in order."""
    from gateway.queue import safeio

    real = os.writev
    calls = []

    def stingy(fd, buffers):
        calls.append(len(buffers))
        first = bytes(buffers[0])[:3]
        return real(fd, [first])
    monkeypatch.setattr(os, "writev", stingy)
    path = tmp_path / "item"
    safeio.write_new(path, (b"header\n", b"", b"body bytes"))
    assert path.read_bytes() == b"header\nbody bytes"
    assert len(calls) == 7 and calls[0] == 3       # 3 + 3 + 1, then 3 + 3 + 3 + 1


def open_empty(path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)


def test_a_synced_fill_cut_short_is_finished_and_then_fdatasynced(tmp_path, monkeypatch):
    """``pwritev`` with ``RWF_DSYNC`` may write less than asked; the rest goes
    after it, at its offset, and an ``fdatasync`` covers that rest."""
    from gateway.queue import safeio

    real, synced = os.pwritev, []

    def stingy(fd, buffers, offset, flags=0):
        return real(fd, [bytes(buffers[0])[:4]], offset, flags)
    monkeypatch.setattr(os, "pwritev", stingy)
    monkeypatch.setattr(os, "fdatasync", synced.append)
    fd = open_empty(tmp_path / "item")
    try:
        safeio.fill_open(fd, (b"header\n", b"", b"body bytes"))
    finally:
        os.close(fd)
    assert (tmp_path / "item").read_bytes() == b"header\nbody bytes"
    assert synced == [fd]


@pytest.mark.parametrize("error", [errno.EOPNOTSUPP, errno.EINVAL])
def test_a_file_system_without_synced_writes_gets_a_write_and_an_fdatasync(
        tmp_path, monkeypatch, error):
    from gateway.queue import safeio

    real, synced = os.pwritev, []

    def no_dsync(fd, buffers, offset, flags=0):
        if flags:
            raise OSError(error, os.strerror(error))
        return real(fd, buffers, offset)
    monkeypatch.setattr(os, "pwritev", no_dsync)
    monkeypatch.setattr(os, "fdatasync", synced.append)
    fd = open_empty(tmp_path / "item")
    try:
        safeio.fill_open(fd, (b"header\n", b"body"))
    finally:
        os.close(fd)
    assert (tmp_path / "item").read_bytes() == b"header\nbody" and synced == [fd]


def test_a_disk_error_in_a_synced_fill_is_raised(tmp_path, monkeypatch):
    from gateway.queue import safeio

    def full(fd, buffers, offset, flags=0):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "pwritev", full)
    fd = open_empty(tmp_path / "item")
    try:
        with pytest.raises(OSError) as raised:
            safeio.fill_open(fd, (b"header\n", b"body"))
    finally:
        os.close(fd)
    assert raised.value.errno == errno.ENOSPC


async def test_a_put_cancelled_mid_write_closes_its_file_only_after_the_write(
        tmp_path, monkeypatch):
    """The reserved file's descriptor is closed once the spool thread is done
    with it, never under it (its number could be reused by another file)."""
    from gateway.queue import store as store_module

    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    item_id = store.new_id()
    fd = store._reservations._fds[item_id]
    writing, go_on, written = threading.Event(), threading.Event(), threading.Event()
    real = store_module._fill_sealed

    def slow_fill(*args):
        writing.set()
        assert go_on.wait(10)
        real(*args)
        written.set()
    monkeypatch.setattr(store_module, "_fill_sealed", slow_fill)
    closes, closed = [], asyncio.Event()           # for fd: was the write over at its close?
    real_close = os.close

    def watched_close(number):
        if number == fd:                           # by the done-callback, on this loop
            closes.append(written.is_set())
            closed.set()
        real_close(number)
    monkeypatch.setattr(os, "close", watched_close)
    put = asyncio.ensure_future(store.put(envelope(), b"x", Plan.relay_all(["b@partner.test"]),
                                          item_id=item_id))
    assert await asyncio.to_thread(writing.wait, 10)
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    assert closes == []                            # still open: the write goes on
    go_on.set()
    await asyncio.wait_for(closed.wait(), 10)
    assert closes == [True]                        # closed once, after the write's end
    assert store.size == 0 and f"{item_id}.new" not in os.listdir(tmp_path / "queue")
