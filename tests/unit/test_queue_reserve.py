"""Names reserved ahead: a commit into one costs one fsync, and start-up tells a
sealed commit from a cut-short one."""
import asyncio
import errno
import json
import os
import stat
import threading

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


# ---- finished items' files reused as spares ----------------------------------------

def inode(path) -> int:
    return os.stat(path).st_ino


async def finish_all(store, items) -> None:
    for item in items:
        await store.finish(item.id)


async def test_a_finished_file_comes_back_as_a_spare_and_is_overwritten(tmp_path):
    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    big = b"Subject: x\r\n\r\n" + b"old line\r\n" * 300
    items = [await store.put(envelope(), big, plan(), item_id=store.new_id())
             for _ in range(BATCH)]
    inodes = {inode(tmp_path / "queue" / f"{item.id}.msg") for item in items}
    await finish_all(store, items)
    assert store.ids() == [] and list((tmp_path / "active").iterdir()) == []
    spares = {inode(tmp_path / "queue" / name) for name in reserved_names(tmp_path)}
    assert inodes <= spares                        # renamed, not deleted

    small = b"Subject: y\r\n\r\nnew\r\n"
    for _ in range(3 * BATCH):                     # every spare gets used, recycled ones too
        item_id = store.new_id()
        reused = inode(tmp_path / "queue" / f"{item_id}.new") in inodes
        item = await store.put(envelope(), small, plan(), item_id=item_id)
        if reused:
            break
    else:
        pytest.fail("no recycled file was handed out")
    path = tmp_path / "queue" / f"{item.id}.msg"
    assert path.stat().st_size > len(small) + 100  # the old message's tail is still there
    assert store.read_message(item.id) == small
    assert store.load(item.id).to_json() == item.to_json()
    loaded, raw = store.load_for_attempt(item.id)
    assert raw == small and loaded.id == item.id


async def test_start_up_keeps_a_commit_into_a_recycled_file_and_drops_unused_ones(tmp_path):
    """A recycled spare still holds the finished item it was (its header names
    another id): not a commit. A commit into one has its own id and seal."""
    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    items = [await store.put(envelope(), b"Subject: x\r\n\r\n" + b"old\r\n" * 200, plan(),
                             item_id=store.new_id()) for _ in range(BATCH)]
    await finish_all(store, items)
    later = [await store.put(envelope(), b"Subject: y\r\n\r\nnew\r\n", plan(),
                             item_id=store.new_id()) for _ in range(3 * BATCH)]
    await finish_all(store, later[:BATCH])         # recycled again: spares holding old items
    item = later[-1]
    os.rename(tmp_path / "queue" / f"{item.id}.msg", tmp_path / "queue" / f"{item.id}.new")
    committed = sorted(store.ids() + [item.id])
    # the daemon dies here (kill -9): nothing released, nothing closed by it
    spares = len(reserved_names(tmp_path)) - 1     # all but the commit
    holding = [n for n in reserved_names(tmp_path) if (tmp_path / "queue" / n).stat().st_size]
    assert len(holding) > BATCH // 2
    after = QueueStore(tmp_path)
    assert after.settle_reserved() == (1, spares)
    assert reserved_names(tmp_path) == [] and after.ids() == committed
    assert after.read_message(item.id) == b"Subject: y\r\n\r\nnew\r\n"


async def test_large_files_and_files_beyond_the_spare_limit_are_deleted(tmp_path):
    from gateway.queue.reserve import MAX_SPARES, RECYCLE_MAX

    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    large = await store.put(envelope(), b"x" * (RECYCLE_MAX + 1), plan(), item_id=store.new_id())
    await store.finish(large.id)
    assert max(os.stat(tmp_path / "queue" / n).st_size for n in reserved_names(tmp_path)) == 0

    items = [await store.put(envelope(), b"x", plan()) for _ in range(2 * MAX_SPARES)]
    await finish_all(store, items)
    spares = len(reserved_names(tmp_path))
    assert BATCH <= spares <= MAX_SPARES and store.ids() == []


async def test_release_deletes_recycled_files_not_yet_spares(tmp_path):
    before = open_files()
    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    items = [await store.put(envelope(), b"x", plan(), item_id=store.new_id())
             for _ in range(BATCH // 4)]
    await finish_all(store, items)                  # recycled, waiting for a batch's fsync
    store.release_reservations()
    assert reserved_names(tmp_path) == [] and open_files() == before


async def test_a_message_read_after_its_file_was_recycled_is_not_found(tmp_path):
    from gateway.queue.store import ItemNotFound

    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    item = await store.put(envelope(), b"x", plan(), item_id=store.new_id())
    other = store_module.new_id()
    os.link(tmp_path / "queue" / f"{item.id}.msg", tmp_path / "queue" / f"{other}.msg")
    with pytest.raises(ItemNotFound):
        store.read_message(other)                 # the header names another item


def test_the_seal_covers_its_size_and_names_its_item():
    from gateway.queue.reserve import is_sealed

    item_id = store_module.new_id()
    whole = sealed_file(item_id, b"message")
    assert is_sealed(whole, item_id)
    assert is_sealed(whole + b"old tail", item_id)
    assert not is_sealed(whole, store_module.new_id())
    assert not is_sealed(whole[:-1], item_id)
    assert not is_sealed(b"[1]\n", item_id) and not is_sealed(b'{"seal": 3}\nx', item_id)


async def test_a_removal_still_running_at_release_deletes_the_file_it_reused(
        tmp_path, monkeypatch):

    removing, go_on = threading.Event(), threading.Event()
    real = QueueStore._remove_finished

    def slow_removal(self, finished):
        removing.set()
        assert go_on.wait(10)
        return real(self, finished)
    monkeypatch.setattr(QueueStore, "_remove_finished", slow_removal)   # bound by __init__
    before = open_files()
    store = QueueStore(tmp_path)
    await store.reserve_ahead()
    item = await store.put(envelope(), b"x", plan(), item_id=store.new_id())
    taken = store.new_id()                          # taken, never claimed before release
    finishing = asyncio.ensure_future(store.finish(item.id))
    assert await asyncio.to_thread(removing.wait, 10)
    store.release_reservations()
    go_on.set()
    await finishing
    assert reserved_names(tmp_path) == [f"{taken}.new"]   # only the unclaimed one, for start-up
    assert open_files() == before and store.ids() == []
    again = await store.put(envelope(), b"y", plan(), item_id=taken)   # the plain road
    assert store.read_message(again.id) == b"y"
