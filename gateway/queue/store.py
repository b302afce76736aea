"""QueueStore: the spool on disk, and the commit point.

One queued message is one file, so that committing it costs one file fsync
— the same order of work as Postfix — once its name was made durable ahead
of time (``reserve``), and one more (shared) directory fsync otherwise:

    tmp/<id>.msg         staging; anything here at start-up was never acknowledged → deleted
    queue/<id>.new       a name reserved ahead (empty), or a message being committed into
                         it; at start-up a sealed one becomes <id>.msg, the rest are deleted
    queue/<id>.msg       line 1: the item's JSON state at acceptance (envelope, plan,
                         per-recipient state); then the message bytes exactly as
                         accepted (when line 1 has a ``seal``, its ``size`` bytes: a
                         recycled file may hold more after them). Never rewritten
                         while it is this item's; once the item is finished, its file
                         may become a spare name (``reserve``).
    queue/<id>.state     the newest JSON state, once it changed (atomic replace)
    active/<id>          present while an attempt runs; left behind only by a crash
                         (a hard link to queue/<id>.msg: a name, no new inode)
                         (its own directory, so creating it never waits on a
                         queue/ fsync)
    hold/<id>.*          parked for an administrator
    shunt/<id>.*         poison items, with <id>.error (the traceback) for a human
    failed/<id>.*        finished items with a failed recipient (the sender got a DSN),
                         kept ``queue.keep_failed`` for the administrator, then purged

``put`` with an id from ``new_id`` that has a reservation: write the sealed
item into queue/<id>.new, kept open since it was made, with one synced write
(``RWF_DSYNC``), then rename it to <id>.msg. Otherwise: write
tmp/<id>.msg, fsync it, rename it into queue/, fsync queue/. Only after
``put`` returns may the SMTP edge answer 250. Concurrent puts share directory
fsyncs (group commit): a put waits for an fsync of queue/ that started after
its rename, which one syscall can satisfy for many puts.
Blocking file work (writes, fsyncs, unlinks) runs on the spool's threads
(``filethreads``) so the event loop keeps serving.

    lock-<shard>         flock(2)ed by the daemon process owning the shard for as
                         long as it runs. A command-line tool that finds it free
                         may ``put`` into the spool itself (``mark=False``); the
                         daemon's ``recover()`` picks the item up when it starts.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from gateway.audit import get_logger
from gateway.model import Envelope, Plan
from gateway.queue import filethreads
from gateway.queue.item import QueueItem
from gateway.queue.reserve import RECYCLE_MAX, RESERVED, Reservations, is_sealed, seal, sealed_size
from gateway.queue.safeio import (
    atomic_replace,
    ensure_dir,
    fill_open,
    fsync_dir,
    unlink_if_present,
    write_new,
)

MSG, STATE, ERROR = ".msg", ".state", ".error"
QUEUE, HOLD, SHUNT, FAILED = "queue", "hold", "shunt", "failed"
AREAS = (QUEUE, HOLD, SHUNT, FAILED)
_SUFFIXES = (MSG, STATE, ERROR)
_HEX_DIGITS = frozenset("0123456789abcdef")

log = get_logger("queue")


class QueueFull(Exception):
    """The queue holds ``max_items`` items: the client must retry later (451)."""


class ItemNotFound(KeyError):
    pass


_entropy = bytearray()


def _random_hex16() -> str:
    """128 bits from the OS CSPRNG, fetched 4 KiB at a time (one getrandom
    call per 256 ids instead of one per id: it costs ~0.1 ms here)."""
    global _entropy
    if len(_entropy) < 16:
        _entropy = bytearray(secrets.token_bytes(4096))
    chunk = bytes(_entropy[:16])
    del _entropy[:16]
    return chunk.hex()


def new_id(shard: int = 0, shards: int = 1) -> str:
    """A random id with no meaning (safe in replies and logs): 128 random bits,
    except that with several worker processes the first hex digit is chosen
    so that ``owner(id, shards) == shard``."""
    item_id = _random_hex16()
    if shards == 1:
        return item_id
    first = int(item_id[0], 16)
    first = first - first % shards + shard
    if first > 15:
        first -= shards
    return f"{first:x}{item_id[1:]}"


def owner(item_id: str, shards: int) -> int:
    """Which worker process owns an item (see ``new_id``)."""
    return int(item_id[0], 16) % shards if shards > 1 else 0


def _encode(item: QueueItem) -> bytes:
    return json.dumps(item.to_json(), separators=(",", ":")).encode()


def _fill_sealed(fd: int, item: QueueItem, raw: bytes) -> None:
    """The item's header line, with the seal of ``raw``, and ``raw`` into its
    reserved file, on disk when this returns (a spool thread: the CRC of a
    large message and the JSON stay off the event loop)."""
    header = item.to_json()
    header["seal"] = seal(raw)
    fill_open(fd, (json.dumps(header, separators=(",", ":")).encode() + b"\n", raw))


def _close_when_done(fd: int) -> Callable[[asyncio.Future], None]:
    """A done-callback closing ``fd`` once the spool thread writing it has
    finished (not before: the number could be reused under the write)."""
    def close(job: asyncio.Future) -> None:
        if not job.cancelled():
            job.exception()      # seen here; the caller raised its own error
        os.close(fd)
    return close


class DirSync:
    """Group commit for one directory: ``sync()`` returns once an fsync of the
    directory that *started after the call* has completed."""

    def __init__(self, path: Path):
        self.path = path
        self._cond = threading.Condition()
        self._requested = 0
        self._done = 0
        self._running = False

    def sync(self) -> None:
        with self._cond:
            self._requested += 1
            ticket = self._requested
            while self._done < ticket:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                covered = self._requested
                self._cond.release()
                try:
                    fsync_dir(self.path)
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._done = max(self._done, covered)
                    self._cond.notify_all()


class BatchRemoval:
    """``await remove(entry)``: hand ``entry`` to ``remove_all`` in a worker
    thread, with every other entry that arrives while a batch is running in the
    next batch (the same idea as the group commit above, for removals); what
    ``remove_all`` returns goes to ``removed``, on the event loop."""

    def __init__(self, remove_all, removed):
        self.remove_all = remove_all
        self.removed = removed
        self._next: tuple[list, asyncio.Future] | None = None
        self._running = False

    async def remove(self, entry) -> None:
        if self._next is None:
            self._next = ([], asyncio.get_running_loop().create_future())
        entries, done = self._next
        entries.append(entry)
        if not self._running:
            self._running = True
            asyncio.ensure_future(self._run())
        await asyncio.shield(done)     # a cancelled caller leaves the batch running

    async def _run(self) -> None:
        try:
            while self._next is not None:
                (entries, done), self._next = self._next, None
                try:
                    self.removed(await filethreads.run(self.remove_all, entries))
                except Exception as exc:  # noqa: BLE001 — handed to every waiter
                    done.set_exception(exc)
                else:
                    done.set_result(None)
        finally:
            self._running = False


class QueueStore:
    """One spool. With several worker processes each worker opens the same
    spool with its own ``shard``: it creates, recovers and counts only the
    items it owns, so no two processes ever deliver the same item."""

    def __init__(self, root: Path, max_items: int = 20_000, shard: int = 0, shards: int = 1):
        self.root = Path(root)
        self._root = str(self.root)
        self.max_items = max_items
        self.shard, self.shards = shard, shards
        for area in ("tmp", "active", *AREAS):
            ensure_dir(self.root / area)
        self._queue_sync = DirSync(self.root / QUEUE)
        self._removals = BatchRemoval(self._remove_finished, self._recycled)
        self._reservations: Reservations | None = None
        self._count = len(self.own_ids(QUEUE))

    # ---- paths and listing -------------------------------------------------
    def file(self, item_id: str, area: str, suffix: str) -> Path:
        return Path(self._path(item_id, area, suffix))

    def _path(self, item_id: str, area: str, suffix: str) -> str:
        """``file`` as a string: what the per-message hot path hands to ``os``
        (building a ``Path`` costs more than the syscall it names)."""
        if not item_id or not _HEX_DIGITS.issuperset(item_id):
            raise ItemNotFound(item_id)
        return f"{self._root}/{area}/{item_id}{suffix}"

    def ids(self, area: str = QUEUE) -> list[str]:
        try:
            return sorted(e.name[:-len(MSG)] for e in os.scandir(self.root / area)
                          if e.name.endswith(MSG))
        except FileNotFoundError:
            return []

    def own_ids(self, area: str = QUEUE) -> list[str]:
        return [i for i in self.ids(area) if owner(i, self.shards) == self.shard]

    def new_id(self) -> str:
        """An id for the next ``put``: a reserved one when ``reserve_ahead`` is
        on and a spare is left."""
        if self._reservations is not None and (item_id := self._reservations.take()):
            return item_id
        return new_id(self.shard, self.shards)

    async def reserve_ahead(self) -> None:
        """From now on ``new_id`` hands out reserved names (see ``reserve``);
        the daemon calls this once it has recovered the spool."""
        self._reservations = Reservations(f"{self._root}/{QUEUE}",
                                          lambda: new_id(self.shard, self.shards))
        await self._reservations.fill()

    def release_reservations(self) -> None:
        """Delete the spare names (the daemon is stopping); puts take the plain
        road from now on. The released reservations stay, to discard the files
        of removals still running."""
        if self._reservations is not None:
            self._reservations.release()

    def settle_reserved(self) -> tuple[int, int]:
        """Start-up, before ``clean_orphans``: a sealed queue/<id>.new of this
        shard is a committed item and becomes <id>.msg; the others (spares, or
        writes a crash cut short, never acknowledged) are deleted. Returns
        (kept, deleted)."""
        kept = deleted = 0
        for entry in os.scandir(self.root / QUEUE):
            stem = entry.name[:-len(RESERVED)]
            if (not entry.name.endswith(RESERVED) or not stem or not _HEX_DIGITS.issuperset(stem)
                    or owner(stem, self.shards) != self.shard):
                continue
            with open(entry.path, "rb") as reserved:
                committed = is_sealed(reserved.read(), stem)
            if not committed:
                os.unlink(entry.path)
                deleted += 1
            else:
                os.rename(entry.path, self._path(stem, QUEUE, MSG))
                kept += 1
        if kept:
            fsync_dir(self.root / QUEUE)
            self._count = len(self.own_ids(QUEUE))
        return kept, deleted

    def find(self, item_id: str) -> str:
        """The area (queue/hold/shunt/failed) holding ``item_id``."""
        for area in AREAS:
            if self.file(item_id, area, MSG).exists():
                return area
        raise ItemNotFound(item_id)

    @property
    def size(self) -> int:
        return self._count

    # ---- the owner's lock ------------------------------------------------------
    def lock(self, blocking: bool = True) -> bool:
        """Take this shard's lock (held until the process exits or ``unlock``);
        False when ``blocking`` is off and another process holds it."""
        fd = os.open(self.root / f"lock-{self.shard}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        fd, self._lock_fd = getattr(self, "_lock_fd", None), None
        if fd is not None:
            os.close(fd)

    # ---- commit --------------------------------------------------------------
    async def put(self, envelope: Envelope, raw: bytes, plan: Plan,
                  item_id: str | None = None) -> QueueItem:
        item_id = item_id or self.new_id()
        fd = None if self._reservations is None else self._reservations.claim(item_id)
        try:
            item = self._admit(envelope, plan, item_id)
        except QueueFull:
            if fd is not None:
                self._reservations.give_back(item_id, fd)
            raise
        try:
            if fd is not None:
                await self._put_reserved(item, raw, fd)
            else:
                await filethreads.run(self._put_sync, item, raw)
        except BaseException:
            self._count -= 1
            raise
        return item

    def put_sync(self, envelope: Envelope, raw: bytes, plan: Plan) -> QueueItem:
        """``put`` from a process that will not attempt the item (a command-line
        tool holding this shard's ``lock``, or the portal's schema upgrade): no
        in-flight mark, and never a reserved name (those are for ``put``)."""
        item = self._admit(envelope, plan, new_id(self.shard, self.shards))
        try:
            self._put_sync(item, raw, mark=False)
        except BaseException:
            self._count -= 1
            raise
        return item

    def _admit(self, envelope: Envelope, plan: Plan, item_id: str | None) -> QueueItem:
        if self._count >= self.max_items:
            raise QueueFull()
        self._count += 1
        return QueueItem.new(item_id or self.new_id(), envelope, plan)

    def _put_sync(self, item: QueueItem, raw: bytes, mark: bool = True) -> None:
        staging = self._path(item.id, "tmp", MSG)
        try:
            write_new(staging, (_encode(item) + b"\n", raw))
            os.rename(staging, self._path(item.id, QUEUE, MSG))
        except BaseException:
            unlink_if_present(staging)
            raise
        self._queue_sync.sync()
        if mark:
            self.mark_in_flight(item.id)  # its first attempt starts now (see mark_in_flight)

    async def _put_reserved(self, item: QueueItem, raw: bytes, fd: int) -> None:
        """Commit into the item's reserved file, open as ``fd``: its synced
        write on a spool thread; then, on the event loop, the close, the rename
        (it needs no fsync: ``settle_reserved`` reads the seal) and the
        in-flight mark. A spool thread takes the GIL back after every system
        call, which under load waits for the event loop; so the thread makes
        only the one that waits on the disk, and the quick ones stay here."""
        reserved = self._path(item.id, QUEUE, RESERVED)
        written = filethreads.submit(_fill_sealed, fd, item, raw)
        try:
            await asyncio.shield(written)
            os.rename(reserved, self._path(item.id, QUEUE, MSG))
        except BaseException:
            unlink_if_present(reserved)
            written.add_done_callback(_close_when_done(fd))
            raise
        os.close(fd)
        self.mark_in_flight(item.id)

    # ---- reading -------------------------------------------------------------
    def _read_msg(self, item_id: str, area: str) -> tuple[dict, bytes]:
        """The header line's state and the message bytes of ``<id>.msg``."""
        try:
            data = self.file(item_id, area, MSG).read_bytes()
        except FileNotFoundError:
            raise ItemNotFound(item_id) from None
        header, _, raw = data.partition(b"\n")
        state = json.loads(header)
        if state.get("id") != item_id:    # finished and recycled since it was opened
            raise ItemNotFound(item_id)
        size = sealed_size(state)
        return state, raw if size is None else raw[:size]

    def _state(self, item_id: str, area: str, accepted: dict | None = None) -> QueueItem:
        """The item's newest state: its ``.state`` file, else the header line
        (``accepted``, when the caller has read it already)."""
        try:
            state = json.loads(self.file(item_id, area, STATE).read_bytes())
        except FileNotFoundError:
            state = accepted if accepted is not None else self._read_msg(item_id, area)[0]
        return QueueItem.from_json(state)

    def load(self, item_id: str, area: str = QUEUE) -> QueueItem:
        return self._state(item_id, area)

    def read_message(self, item_id: str, area: str = QUEUE) -> bytes:
        return self._read_msg(item_id, area)[1]

    def read_error(self, item_id: str, area: str = SHUNT) -> str:
        try:
            return self.file(item_id, area, ERROR).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ---- state changes ---------------------------------------------------------
    async def save(self, item: QueueItem, area: str = QUEUE) -> None:
        await filethreads.run(self.save_sync, item, area)

    def save_sync(self, item: QueueItem, area: str = QUEUE) -> None:
        """Persist the item's state; this also ends an attempt in flight."""
        atomic_replace(self.file(item.id, area, STATE), _encode(item))
        self.clear_in_flight(item.id)

    def load_for_attempt(self, item_id: str) -> tuple[QueueItem, bytes]:
        """Load an item for a retry and mark the attempt in flight (one trip to
        a spool thread: file creation can wait behind the journal)."""
        accepted, raw = self._read_msg(item_id, QUEUE)
        item = self._state(item_id, QUEUE, accepted)
        self.mark_in_flight(item_id)
        return item, raw

    def mark_in_flight(self, item_id: str) -> None:
        """Note that an attempt started; it ends with the next ``save`` or the
        removal of the item. ``put`` marks a new item at once, so a crash
        between acceptance and the end of its first attempt counts too. Not
        fsynced: it only has to survive a process crash (kill -9).

        The marker is a hard link to the item's ``queue/<id>.msg``: only its name
        counts, and a new inode costs ~270 µs of kernel time on the VMs measured
        (a link ~16 µs)."""
        try:
            os.link(self._path(item_id, QUEUE, MSG), self._path(item_id, "active", ""))
        except FileExistsError:
            pass                              # left by a crash; it still says the same

    def clear_in_flight(self, item_id: str) -> None:
        unlink_if_present(self._path(item_id, "active", ""))

    def was_in_flight(self, item_id: str) -> bool:
        return self.file(item_id, "active", "").exists()

    def _remove(self, item_id: str, area: str, suffixes: tuple[str, ...] = _SUFFIXES) -> None:
        for suffix in suffixes:  # .msg first: it defines the item
            unlink_if_present(self._path(item_id, area, suffix))
        self.clear_in_flight(item_id)

    async def finish(self, item_id: str) -> None:
        """Every recipient is final: remove the item; returns once its files
        are gone (its ``.msg`` deleted, or renamed to a spare name to be reused:
        see ``reserve``). A crash before the removal only means a retry
        (at-least-once; the ``active/`` marker goes last, so the retry counts
        as an interrupted attempt), so no fsync is needed. The unlinks wait on
        the file system's journal (~0.15 ms an item on ext4), so they run in a
        spool thread, and the items finished meanwhile share one trip there."""
        self._count -= 1
        spare = None if self._reservations is None else self._reservations.recycle_name()
        await self._removals.remove((item_id, spare))

    def _remove_finished(self, finished: list[tuple[str, str | None]]
                         ) -> tuple[list[tuple[str, int]], int]:
        """Remove each finished item, its file renamed to its spare name where
        it has one and the file is worth keeping. Returns the (spare id, open
        file) of the files recycled and how many spare names went unused."""
        recycled, unused = [], 0
        for item_id, spare in finished:
            fd = None
            if spare is not None:
                try:
                    fd = self._recycle(item_id, spare)
                except OSError as exc:
                    log.error("could not reuse a finished item's file", queue_id=item_id,
                              error=exc.__class__.__name__)
            if fd is None:
                unused += spare is not None
            else:
                recycled.append((spare, fd))
            try:
                self._remove(item_id, QUEUE, _SUFFIXES if fd is None else (STATE, ERROR))
            except OSError as exc:     # left in queue/: retried (at-least-once) at start-up
                log.error("could not remove a finished item", queue_id=item_id,
                          error=exc.__class__.__name__)
        return recycled, unused

    def _recycle(self, item_id: str, spare: str) -> int | None:
        """Rename the finished item's file to ``queue/<spare>.new`` and open it
        for the commit that will overwrite it; None (nothing done) when it is
        gone or larger than ``RECYCLE_MAX``."""
        message, reserved = self._path(item_id, QUEUE, MSG), self._path(spare, QUEUE, RESERVED)
        try:
            if os.stat(message).st_size > RECYCLE_MAX:
                return None
        except FileNotFoundError:
            return None
        os.rename(message, reserved)
        try:
            return os.open(reserved, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except BaseException:
            unlink_if_present(reserved)
            raise

    def _recycled(self, outcome: tuple[list[tuple[str, int]], int]) -> None:
        """On the event loop, after a removal batch: the recycled files become
        spares (once a batch's directory fsync made their names durable)."""
        files, unused = outcome
        if self._reservations is not None:    # files come only from its recycle_name
            self._reservations.recycled(files, unused)

    async def move(self, item_id: str, src: str, dst: str, error_text: str | None = None) -> None:
        await filethreads.run(self.move_sync, item_id, src, dst, error_text)

    def move_sync(self, item_id: str, src: str, dst: str, error_text: str | None = None) -> None:
        if not self.file(item_id, src, MSG).exists():
            raise ItemNotFound(item_id)
        if error_text is not None:
            atomic_replace(self.file(item_id, src, ERROR), error_text.encode())
        self.clear_in_flight(item_id)
        # the .msg moves last: until then the item is still whole in ``src``
        for suffix in (STATE, ERROR, MSG):
            try:
                os.rename(self.file(item_id, src, suffix), self.file(item_id, dst, suffix))
            except FileNotFoundError:
                pass
        fsync_dir(self.root / dst)
        fsync_dir(self.root / src)
        if src == QUEUE:
            self._count -= 1
        if dst == QUEUE:
            self._count += 1

    async def drop(self, item_id: str, area: str) -> None:
        if not self.file(item_id, area, MSG).exists():
            raise ItemNotFound(item_id)
        await filethreads.run(self._remove, item_id, area)
        if area == QUEUE:
            self._count -= 1

    def purge_failed(self, older_than: float) -> int:
        """Remove this shard's failed/ items last changed before ``older_than``."""
        removed = 0
        for item_id in self.own_ids(FAILED):
            try:
                changed = self.file(item_id, FAILED, STATE).stat().st_mtime
            except FileNotFoundError:
                changed = 0.0
            if changed < older_than:
                self._remove(item_id, FAILED)
                removed += 1
        return removed

    def clean_tmp(self) -> int:
        """Delete this shard's staging leftovers of interrupted puts (never
        acknowledged to the client)."""
        removed = 0
        for entry in os.scandir(self.root / "tmp"):
            if owner(entry.name, self.shards) == self.shard:
                os.unlink(entry.path)
                removed += 1
        return removed

    def clean_orphans(self) -> int:
        """Remove state/marker files whose .msg is gone (a crash mid-removal)."""
        removed = 0
        for area in AREAS:
            for entry in os.scandir(self.root / area):
                stem, _dot, suffix = entry.name.partition(".")
                if owner(stem, self.shards) != self.shard or f".{suffix}" == MSG:
                    continue
                if not (self.root / area / f"{stem}{MSG}").exists():
                    os.unlink(entry.path)
                    removed += 1
        return removed
