"""Names reserved ahead: a commit into one costs one fsync, and start-up tells a
sealed commit from a cut-short one."""
import json
import os
import stat

import pytest

from gateway.model import Envelope, Plan
from gateway.queue import store as store_module
from gateway.queue.dispatcher import Dispatcher
from gateway.queue.item import QueueItem
from gateway.queue.reserve import BATCH, seal
from gateway.queue.store import QueueFull, QueueStore


def envelope():
    return Envelope("a@clinic.test", ("b@partner.test",), received_at=1.0)


def plan():
    return Plan.relay_all(["b@partner.test"])


def reserved_names(root):
    return sorted(p.name for p in (root / "queue").iterdir() if p.suffix == ".new")


def sealed_file(item_id: str, raw: bytes) -> bytes:
    """What ``put`` writes into a reserved name, as a crash after its fsync leaves it."""
    header = QueueItem.new(item_id, envelope(), plan()).to_json()
    header["seal"] = seal(raw)
    return json.dumps(header).encode() + b"\n" + raw


@pytest.fixture
def fsyncs(monkeypatch):
    """Every wait for the disk: an fsync or fdatasync (True for a directory,
    False for a file) and a write with ``RWF_DSYNC`` (False: always a file)."""
    calls = []

    def counting(real):
        def sync(fd):
            calls.append(stat.S_ISDIR(os.fstat(fd).st_mode))
            return real(fd)
        return sync

    real_pwritev = os.pwritev

    def pwritev(fd, buffers, offset, flags=0):
        if flags & os.RWF_DSYNC:
            calls.append(False)
        return real_pwritev(fd, buffers, offset, flags)
    monkeypatch.setattr(os, "fsync", counting(os.fsync))
    monkeypatch.setattr(os, "fdatasync", counting(os.fdatasync))
    monkeypatch.setattr(os, "pwritev", pwritev)
    return calls


async def test_reserved_names_are_made_in_batches_and_hidden_from_listings(tmp_path):
    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    assert len(reserved_names(tmp_path)) == BATCH
    for name in reserved_names(tmp_path):
        info = os.stat(tmp_path / "queue" / name)
        assert (info.st_size, stat.S_ISREG(info.st_mode), stat.S_IMODE(info.st_mode)) == (
            0, True, 0o600)
    assert store.ids() == [] and store.size == 0


async def test_a_put_into_a_reserved_name_costs_one_file_fsync(tmp_path, fsyncs):
    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    fsyncs.clear()
    item = await store.put(envelope(), b"Subject: x\r\n\r\nbody\r\n", plan(),
                           item_id=store.new_id())
    assert fsyncs == [False]                      # the message's file; no directory
    assert f"{item.id}.new" not in reserved_names(tmp_path)
    path = tmp_path / "queue" / f"{item.id}.msg"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert store.read_message(item.id) == b"Subject: x\r\n\r\nbody\r\n"
    assert store.load(item.id).to_json() == item.to_json()
    assert store.was_in_flight(item.id) and store.size == 1

    fsyncs.clear()
    await store.put(envelope(), b"x", plan(), item_id="ab" * 16)  # an id of its own
    assert sorted(fsyncs) == [False, True]        # the plain road: file and queue/


async def test_the_spares_are_refilled_before_they_run_out(tmp_path):
    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    for _ in range(3 * BATCH):
        await store.put(envelope(), b"x", plan())
    assert len(store.ids()) == 3 * BATCH
    assert reserved_names(tmp_path)               # new batches came while they were used


async def test_a_full_queue_gives_the_name_back(tmp_path):
    store = QueueStore(tmp_path, max_items=1)
    await store.reserve_ahead()
    await store.put(envelope(), b"x", plan())
    item_id = store.new_id()
    with pytest.raises(QueueFull):
        await store.put(envelope(), b"x", plan(), item_id=item_id)
    assert f"{item_id}.new" in reserved_names(tmp_path)
    assert store.new_id() == item_id


async def test_a_missing_reserved_name_is_never_created_by_the_write(tmp_path):
    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    item_id = store.new_id()
    os.unlink(tmp_path / "queue" / f"{item_id}.new")
    with pytest.raises(FileNotFoundError):
        await store.put(envelope(), b"x", plan(), item_id=item_id)
    assert store.ids() == [] and store.size == 0
    assert f"{item_id}.new" not in reserved_names(tmp_path)


async def test_release_removes_the_spares(tmp_path):
    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    taken = store.new_id()
    store.release_reservations()
    assert reserved_names(tmp_path) == [f"{taken}.new"]   # left for start-up to settle
    await store.put(envelope(), b"x", plan())             # the plain road: no new batch
    assert reserved_names(tmp_path) == [f"{taken}.new"] and store.size == 1


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_release_closes_every_spare_and_a_batch_made_meanwhile(tmp_path, monkeypatch):
    import asyncio
    import threading

    from gateway.queue.reserve import LOW, Reservations

    before = open_files()
    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    assert open_files() == before + BATCH          # each spare is kept open
    making, go_on, made = threading.Event(), threading.Event(), threading.Event()
    real = Reservations._create

    def slow_create(self, ids):
        making.set()
        assert go_on.wait(10)
        try:
            return real(self, ids)
        finally:
            made.set()
    monkeypatch.setattr(Reservations, "_create", slow_create)
    for _ in range(BATCH - LOW + 2):               # fewer than LOW left: the next batch starts
        store.new_id()
    assert await asyncio.to_thread(making.wait, 10)
    store.release_reservations()
    go_on.set()
    assert await asyncio.to_thread(made.wait, 10)
    for _ in range(500):                           # bounded: the batch's files get closed
        if open_files() == before:
            break
        await asyncio.sleep(0.01)
    assert open_files() == before


def test_settle_keeps_sealed_commits_and_removes_the_rest(tmp_path):
    QueueStore(tmp_path, shard=0, shards=2)
    queue = tmp_path / "queue"
    raw = b"Subject: x\r\n\r\n" + b"line\r\n" * 500
    whole, cut, empty, garbled, others = (
        store_module.new_id(0, 2), store_module.new_id(0, 2), store_module.new_id(0, 2),
        store_module.new_id(0, 2), store_module.new_id(1, 2))
    (queue / f"{whole}.new").write_bytes(sealed_file(whole, raw))
    (queue / f"{cut}.new").write_bytes(sealed_file(cut, raw)[:-100])
    (queue / f"{empty}.new").write_bytes(b"")
    flipped = bytearray(sealed_file(garbled, raw))
    flipped[-10] ^= 0x20
    (queue / f"{garbled}.new").write_bytes(bytes(flipped))
    (queue / f"{others}.new").write_bytes(b"")

    store = QueueStore(tmp_path, shard=0, shards=2)
    assert store.settle_reserved() == (1, 3)
    assert store.own_ids() == [whole] and store.size == 1
    assert store.read_message(whole) == raw
    assert reserved_names(tmp_path) == [f"{others}.new"]   # another shard's to settle


async def test_recovery_schedules_a_sealed_commit(tmp_path):
    raw = b"Subject: x\r\n\r\nbody\r\n"
    item_id = store_module.new_id()
    QueueStore(tmp_path)
    (tmp_path / "queue" / f"{item_id}.new").write_bytes(sealed_file(item_id, raw))
    store = QueueStore(tmp_path)
    dispatcher = Dispatcher(store, {})
    assert dispatcher.recover() == 1
    assert item_id in dispatcher._due
    assert store.read_message(item_id) == raw


async def test_a_disk_error_while_reserving_leaves_the_plain_road(tmp_path, monkeypatch):
    import errno

    from structlog.testing import capture_logs

    from gateway.queue.reserve import Reservations

    def full(self, ids):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(Reservations, "_create", full)
    store = QueueStore(tmp_path)
    with capture_logs() as captured:
        await store.reserve_ahead()
        for _ in range(3):
            item = await store.put(envelope(), b"x", plan(), item_id=store.new_id())
            assert store.read_message(item.id) == b"x"
    warnings = [e for e in captured if e["log_level"] == "warning"]
    assert [(w["event"], w["error"]) for w in warnings] == [
        ("could not reserve spool names; committing without them", "OSError")]
    assert reserved_names(tmp_path) == [] and store.size == 3


async def test_put_sync_never_takes_a_reserved_name(tmp_path):
    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    before = reserved_names(tmp_path)
    item = store.put_sync(envelope(), b"x", plan())
    assert f"{item.id}.new" not in before and reserved_names(tmp_path) == before
    assert store.read_message(item.id) == b"x"
