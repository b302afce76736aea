"""Names made durable ahead of time, so that committing a message costs one fsync.

A new file's name survives a power cut only once its directory has been
fsynced, so ``store.put``'s plain road costs two fsyncs before the 250: the
file's and queue/'s (shared by concurrent puts, but still a second journal
commit to wait for). ``Reservations`` creates the names before they are
needed — empty ``queue/<id>.new`` files, a batch at a time on a spool thread,
with one directory fsync a batch — and hands out their ids. Committing a
message into a reserved file is then its write and the fsync of its own
content; the rename to ``<id>.msg`` that follows needs no fsync, because
start-up takes a sealed ``.new`` file for the item it is.

Each spare is kept open from its creation, so the commit is one system call:
a ``pwritev`` with ``RWF_DSYNC``, which returns once the bytes are on disk
(``fdatasync``'s promise). A spool thread gives up the GIL for each system
call it makes and, under load, waits for the event loop to take it back: an
open, a write, an fsync and a close were four such waits before every 250.

A finished item's file becomes a spare again (``recycle_name``, then
``QueueStore.finish`` renames it to the new name, on a spool thread), as long
as it is small (``RECYCLE_MAX``) and fewer than ``MAX_SPARES`` names are kept.
Its blocks are already allocated, so the next commit into it overwrites them:
the synced write then flushes the data alone, with no journal commit for new
blocks, and the removal renames instead of freeing the inode. A recycled name
is handed out only after a batch's directory fsync made it durable (before
that, a power cut could bring the finished item's name back over a newly
acknowledged message).

The seal is the size and CRC-32 of the message bytes, in the item's header
line (``seal``), with the item's id. A ``.new`` file is a committed item only
if its header names the file's own id and the seal matches the ``size`` bytes
after the header (a recycled file may hold more: the old message's tail).
Anything else — empty, cut short by a crash before its synced write ended, or
a recycled spare still holding the finished item it was — was never
acknowledged, and ``QueueStore.settle_reserved`` removes it at start-up, as
``clean_tmp`` removes staging leftovers.

Only the daemon reserves (``QueueStore.reserve_ahead``); a command-line tool
putting into a stopped daemon's spool takes the plain road.
"""
from __future__ import annotations

import asyncio
import json
import os
import zlib
from collections.abc import Callable

from gateway.audit import get_logger
from gateway.queue import filethreads
from gateway.queue.safeio import FILE_MODE, fsync_dir, unlink_if_present

RESERVED = ".new"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
BATCH = 64          # names made durable per directory fsync
LOW = BATCH // 2    # a new batch is started when fewer spares than this are left
MAX_SPARES = 3 * BATCH     # spare names kept (spare, taken or being recycled) at most
RECYCLE_MAX = 64 << 10     # a finished item's file larger than this is deleted, not reused

log = get_logger("queue")


def seal(raw: bytes | memoryview) -> dict:
    return {"size": len(raw), "crc32": zlib.crc32(raw)}


def is_sealed(data: bytes, item_id: str) -> bool:
    """``data`` (a whole reserved file) holds the header line of item
    ``item_id`` and, after it, the message its seal describes."""
    header, newline, raw = data.partition(b"\n")
    if not newline:
        return False
    try:
        state = json.loads(header)
        expected = state["seal"]
        size = expected["size"]
    except (ValueError, KeyError, TypeError):
        return False
    return (state.get("id") == item_id and isinstance(size, int) and 0 <= size <= len(raw)
            and expected == seal(memoryview(raw)[:size]))


def sealed_size(state: dict) -> int | None:
    """The size of the message after a sealed header (``state``), or None when
    the item was committed without a seal (and its message is all that follows)."""
    sealed = state.get("seal")
    return sealed["size"] if isinstance(sealed, dict) else None


def _close_made(made: asyncio.Future) -> None:
    if not made.cancelled() and made.exception() is None:
        for fd in made.result():
            os.close(fd)


class Reservations:
    """The spare names of one spool shard, used from its event loop."""

    def __init__(self, directory: str, new_id: Callable[[], str]):
        self.directory = directory
        self.new_id = new_id
        self._spares: list[str] = []
        self._fds: dict[str, int] = {}      # every spare's and every taken id's open file
        self._taken: set[str] = set()
        self._limbo: list[tuple[str, int]] = []   # recycled, open, names not yet durable
        self._promised = 0                        # names given to recycling, not back yet
        self._making = 0                          # names in the batch being made durable
        self._refill: asyncio.Future | None = None
        self._failing = False
        self._released = False

    def path(self, item_id: str) -> str:
        return f"{self.directory}/{item_id}{RESERVED}"

    async def fill(self) -> None:
        """Wait for a batch of spares (the daemon's start-up)."""
        self._start_refill()
        await self._refill

    def take(self) -> str | None:
        """A reserved id, or None when none is spare (the caller then makes
        an ordinary one, as after ``release``); a new batch starts when the
        spares run low."""
        if self._released:
            return None
        if len(self._spares) < LOW:
            self._start_refill()
        if not self._spares:
            return None
        item_id = self._spares.pop()
        self._taken.add(item_id)
        return item_id

    def claim(self, item_id: str) -> int | None:
        """Once for an id ``take`` gave out: its open file (write-only), which
        is then the caller's to fill and to close; None for any other id, and
        after ``release`` (which closed it)."""
        if self._released or item_id not in self._taken:
            return None
        self._taken.remove(item_id)
        return self._fds.pop(item_id)

    def give_back(self, item_id: str, fd: int) -> None:
        """A claimed id whose file was not written (the queue was full)."""
        self._fds[item_id] = fd
        self._spares.append(item_id)

    def recycle_name(self) -> str | None:
        """A new spare id for a finished item's file to be renamed to, or None
        when enough spares are kept (the file is then deleted). Every id given
        out comes back through ``recycled``, used or not."""
        if self._released or self._kept() >= MAX_SPARES:
            return None
        self._promised += 1
        return self.new_id()

    def recycled(self, files: list[tuple[str, int]], unused: int) -> None:
        """Back from the removal: ``files`` (id, open file) were renamed to
        their spare names, not yet durably; ``unused`` ids were not used (the
        file was large, gone, or could not be renamed). The next batch's
        directory fsync makes the names durable and hands them out."""
        self._promised -= len(files) + unused
        if self._released:
            self._discard(files)
            return
        self._limbo.extend(files)
        if len(self._limbo) >= BATCH:
            self._start_refill()

    def release(self) -> None:
        """Remove the spare files, and the recycled ones not yet spares (the
        daemon stops). Ids taken but never claimed, and the fresh names of a
        batch still being made, are left to ``QueueStore.settle_reserved``."""
        self._released = True
        if self._refill is not None:
            self._refill.cancel()
        spares, self._spares = self._spares, []
        for item_id in spares:
            unlink_if_present(self.path(item_id))
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)
        limbo, self._limbo = self._limbo, []
        self._discard(limbo)

    def _kept(self) -> int:
        """Spare names kept or on their way: spare, taken, recycled, promised."""
        return (len(self._spares) + len(self._taken) + len(self._limbo) + self._promised
                + self._making)

    def _discard(self, files: list[tuple[str, int]]) -> None:
        """Recycled files that will not be spares after all (the daemon stops)."""
        for item_id, fd in files:
            os.close(fd)
            unlink_if_present(self.path(item_id))

    def _start_refill(self) -> None:
        if self._refill is None or self._refill.done():
            self._refill = asyncio.ensure_future(self._make_batch())

    async def _make_batch(self) -> None:
        """A batch of spares: the recycled files waiting for it, and fresh
        names up to ``BATCH`` (within ``MAX_SPARES``), made durable by one
        directory fsync. On a disk error (full, read-only) none, said once
        until a batch succeeds again: puts take the plain road meanwhile, the
        recycled files wait for the next batch, and fresh names made before
        the error are left to ``settle_reserved``."""
        limbo, self._limbo = self._limbo, []
        fresh = min(BATCH, MAX_SPARES - self._kept()) - len(limbo)
        ids = [self.new_id() for _ in range(max(0, fresh))]
        made = filethreads.submit(self._create, ids)
        self._making = len(ids) + len(limbo)
        try:
            fds = await asyncio.shield(made)
        except asyncio.CancelledError:    # released meanwhile: the files are closed when made
            made.add_done_callback(_close_made)
            self._discard(limbo)
            raise
        except OSError as exc:
            self._making = 0
            self._limbo[:0] = limbo       # still spares to be: the next batch tries again
            if not self._failing:
                log.warning("could not reserve spool names; committing without them",
                            error=exc.__class__.__name__, errno=exc.errno)
            self._failing = True
            return
        if self._failing:
            log.info("spool names reserved again")
        self._failing = False
        self._making = 0
        self._fds.update(zip(ids, fds))
        self._fds.update(limbo)
        self._spares.extend(ids)
        self._spares.extend(item_id for item_id, _ in limbo)

    def _create(self, ids: list[str]) -> list[int]:
        """Empty files, mode 0600, none of which existed, left open, and the
        directory fsync that makes them (and the names recycled before the
        call) durable; on an error none stays open (the names made are left to
        ``settle_reserved``)."""
        fds: list[int] = []
        try:
            for item_id in ids:
                fds.append(os.open(self.path(item_id), _CREATE, FILE_MODE))
            fsync_dir(self.directory)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds
