"""QueueStore: the spool on disk (see DESIGN.md "Queue on disk").

    tmp/<id>/     staging; anything here at start-up is incomplete → deleted
    queue/<id>/   message.eml (0600, never rewritten) + state.json
    hold/<id>/    parked for an administrator
    shunt/<id>/   poison items + error.txt, for a human

``put`` is the commit point: both files are fsynced, then the staging
directory, then it is renamed into queue/ and queue/ is fsynced. Only after
``put`` returns may the SMTP edge answer 250. Blocking file work runs in a
thread so the event loop keeps serving other sessions.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
from pathlib import Path

from gateway.model import Envelope, Plan
from gateway.queue.item import QueueItem
from gateway.queue.safeio import atomic_replace, ensure_dir, fsync_dir, write_new

MESSAGE = "message.eml"
STATE = "state.json"
IN_FLIGHT = "in-flight"      # present while an attempt runs; left behind by a crash
ERROR = "error.txt"

QUEUE, HOLD, SHUNT = "queue", "hold", "shunt"
AREAS = (QUEUE, HOLD, SHUNT)


class QueueFull(Exception):
    """The queue holds ``max_items`` items: the client must retry later (451)."""


class ItemNotFound(KeyError):
    pass


def new_id(shard: int = 0, shards: int = 1) -> str:
    """A random id with no meaning (safe in replies and logs): 128 random bits,
    except that with several worker processes the first hex digit is chosen
    so that ``owner(id, shards) == shard``."""
    item_id = secrets.token_hex(16)
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


class QueueStore:
    """One spool. With several worker processes each worker opens the same
    spool with its own ``shard``: it creates, recovers and counts only the
    items it owns, so no two processes ever deliver the same item."""

    def __init__(self, root: Path, max_items: int = 20_000, shard: int = 0, shards: int = 1):
        self.root = Path(root)
        self.max_items = max_items
        self.shard, self.shards = shard, shards
        for area in ("tmp", *AREAS):
            ensure_dir(self.root / area)
        self._count = len(self.own_ids(QUEUE))

    # ---- paths and listing -------------------------------------------------
    def path(self, item_id: str, area: str = QUEUE) -> Path:
        if not item_id or "/" in item_id or item_id.startswith("."):
            raise ItemNotFound(item_id)
        return self.root / area / item_id

    def ids(self, area: str = QUEUE) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root / area)
                          if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            return []

    def own_ids(self, area: str = QUEUE) -> list[str]:
        return [i for i in self.ids(area) if owner(i, self.shards) == self.shard]

    def new_id(self) -> str:
        return new_id(self.shard, self.shards)

    def find(self, item_id: str) -> str:
        """The area (queue/hold/shunt) holding ``item_id``."""
        for area in AREAS:
            if self.path(item_id, area).is_dir():
                return area
        raise ItemNotFound(item_id)

    @property
    def size(self) -> int:
        return self._count

    # ---- commit --------------------------------------------------------------
    async def put(self, envelope: Envelope, raw: bytes, plan: Plan, item_id: str | None = None) -> QueueItem:
        if self._count >= self.max_items:
            raise QueueFull()
        item = QueueItem.new(item_id or self.new_id(), envelope, plan)
        self._count += 1
        try:
            await asyncio.to_thread(self._put_sync, item, raw)
        except BaseException:
            self._count -= 1
            raise
        return item

    def _put_sync(self, item: QueueItem, raw: bytes) -> None:
        staging = self.root / "tmp" / item.id
        os.mkdir(staging, 0o700)
        try:
            write_new(staging / MESSAGE, raw)
            write_new(staging / STATE, _encode(item))
            fsync_dir(staging)
            os.rename(staging, self.path(item.id))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fsync_dir(self.root / QUEUE)

    # ---- reading -------------------------------------------------------------
    def load(self, item_id: str, area: str = QUEUE) -> QueueItem:
        try:
            data = json.loads((self.path(item_id, area) / STATE).read_bytes())
        except FileNotFoundError:
            raise ItemNotFound(item_id) from None
        return QueueItem.from_json(data)

    def read_message(self, item_id: str, area: str = QUEUE) -> bytes:
        try:
            return (self.path(item_id, area) / MESSAGE).read_bytes()
        except FileNotFoundError:
            raise ItemNotFound(item_id) from None

    # ---- state changes ---------------------------------------------------------
    async def save(self, item: QueueItem, area: str = QUEUE) -> None:
        await asyncio.to_thread(self.save_sync, item, area)

    def save_sync(self, item: QueueItem, area: str = QUEUE) -> None:
        atomic_replace(self.path(item.id, area) / STATE, _encode(item))

    def mark_in_flight(self, item_id: str) -> None:
        """Note that an attempt started. Not fsynced: it only has to survive a
        process crash (kill -9), which the page cache does."""
        (self.path(item_id) / IN_FLIGHT).touch()

    def clear_in_flight(self, item_id: str) -> None:
        try:
            os.unlink(self.path(item_id) / IN_FLIGHT)
        except FileNotFoundError:
            pass

    def was_in_flight(self, item_id: str) -> bool:
        return (self.path(item_id) / IN_FLIGHT).exists()

    async def finish(self, item_id: str) -> None:
        """Every recipient is final: remove the item. A crash before the
        removal only means a retry (at-least-once), so no fsync is needed."""
        await asyncio.to_thread(shutil.rmtree, self.path(item_id))
        self._count -= 1

    async def move(self, item_id: str, src: str, dst: str, error_text: str | None = None) -> None:
        await asyncio.to_thread(self.move_sync, item_id, src, dst, error_text)

    def move_sync(self, item_id: str, src: str, dst: str, error_text: str | None = None) -> None:
        source = self.path(item_id, src)
        if error_text is not None:
            atomic_replace(source / ERROR, error_text.encode())
        try:
            os.unlink(source / IN_FLIGHT)
        except FileNotFoundError:
            pass
        os.rename(source, self.path(item_id, dst))
        fsync_dir(self.root / dst)
        fsync_dir(self.root / src)
        if src == QUEUE:
            self._count -= 1
        if dst == QUEUE:
            self._count += 1

    async def drop(self, item_id: str, area: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.path(item_id, area))
        if area == QUEUE:
            self._count -= 1

    def clean_tmp(self) -> int:
        """Delete this shard's staging leftovers of interrupted puts (never
        acknowledged to the client)."""
        removed = 0
        for entry in os.scandir(self.root / "tmp"):
            if owner(entry.name, self.shards) == self.shard:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
        return removed
