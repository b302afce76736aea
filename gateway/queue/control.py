"""Admin operations on a running daemon's queue over a local socket.

``phigate queue hold|release|drop|retry`` must not edit an item while the
dispatcher is attempting it, so when the daemon runs the CLI asks it over a
unix socket (``<state_dir>/control.sock``, mode 0600) and the dispatcher does
the change under the item's lock. With no daemon running, the CLI performs the
same Dispatcher method directly on the spool.

Protocol: one JSON object per line each way,
``{"op": "release", "id": "...", "as": "portal"}`` → ``{"ok": true, ...}``.

``{"op": "enqueue", "envelope": …, "plan": …, "raw": <base64>}`` puts mail
another process wrote (the portal web role run alone, ``phigate portal``
commands) into the spool through the daemon: the answer ``{"ok": true,
"id": …}`` comes once the item is committed. ``RemoteSpool`` is that
client; with no daemon running it commits the item itself while holding the
shard's lock (``QueueStore.lock``), so the daemon finds it when it starts.
``{"op": "digest"}`` queues the administrator's digest now.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path

from gateway.model import Action, Envelope, Plan
from gateway.queue.store import ItemNotFound, QueueFull, QueueStore

OPS = ("hold", "release", "drop", "retry")
MAX_REQUEST = 64 * 1024 * 1024      # an enqueued message with its attachments, in base64


class SpoolUnavailable(Exception):
    """The mail could not be committed to the spool: nothing was sent."""


def control_socket(state_dir: Path, shard: int = 0, shards: int = 1) -> Path:
    """The admin socket of the process owning ``shard`` of the queue."""
    return Path(state_dir) / ("control.sock" if shards == 1 else f"control-{shard}.sock")


async def perform(dispatcher, request: dict, digest=None) -> dict:
    """Run one admin operation on ``dispatcher``; errors become {"error": ...}."""
    op, item_id = request.get("op"), str(request.get("id", ""))
    try:
        if op == "enqueue":
            queue_id = await dispatcher.enqueue(Envelope.from_json(request["envelope"]),
                                                base64.b64decode(request["raw"]),
                                                Plan.from_json(request["plan"]))
            return {"ok": True, "id": queue_id}
        if op == "digest":
            if digest is None:
                return {"error": "no digest: set admin.address in the configuration"}
            return {"ok": True, "id": await digest.send_now()}
        if op == "hold":
            await dispatcher.hold(item_id)
            return {"ok": True}
        if op == "release":
            action = Action(request["as"]) if request.get("as") else None
            chosen = await dispatcher.release(item_id, action)
            return {"ok": True, "action": chosen.value}
        if op == "drop":
            await dispatcher.drop(item_id)
            return {"ok": True}
        if op == "retry":
            await dispatcher.retry(item_id)
            return {"ok": True}
        return {"error": f"unknown operation {op!r}"}
    except ItemNotFound:
        return {"error": f"no queue item {item_id}"}
    except QueueFull:
        return {"error": "queue full, try again later"}
    except (ValueError, KeyError) as exc:
        return {"error": str(exc).strip("'\"")}


class ControlServer:
    def __init__(self, dispatcher, path: Path, digest=None):
        self.dispatcher = dispatcher
        self.digest = digest
        self.path = Path(path)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path),
                                                           limit=MAX_REQUEST)
        finally:
            os.umask(old)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            try:
                request = json.loads(line)
            except ValueError:
                response = {"error": "bad request"}
            else:
                response = await perform(self.dispatcher, request, self.digest)
            writer.write(json.dumps(response).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):   # ValueError: over MAX_REQUEST
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


async def request(path: Path, payload: dict, timeout: float = 60.0) -> dict | None:
    """Ask a running daemon; None when no daemon listens on ``path``."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_REQUEST)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    try:
        writer.write(json.dumps(payload).encode() + b"\n")
        await writer.drain()
        return json.loads(await asyncio.wait_for(reader.readline(), timeout))
    finally:
        writer.close()


class RemoteSpool:
    """``enqueue(envelope, raw, plan)`` for a process that is not the daemon:
    through the daemon's control socket, or, with no daemon running, straight
    into the spool under the shard's lock. Either way it returns the queue id
    only once the item is durable, and raises ``SpoolUnavailable`` otherwise."""

    def __init__(self, spool_dir: Path, state_dir: Path, shards: int = 1,
                 max_items: int = 20_000, wait: float = 60.0):
        self.spool_dir, self.shards, self.max_items = Path(spool_dir), shards, max_items
        self.socket = control_socket(state_dir, 0, shards)
        self.wait = wait

    async def enqueue(self, envelope: Envelope, raw: bytes, plan: Plan) -> str:
        payload = {"op": "enqueue", "envelope": envelope.to_json(), "plan": plan.to_json(),
                   "raw": base64.b64encode(raw).decode()}
        deadline = time.monotonic() + self.wait
        while True:
            try:
                response = await request(self.socket, payload, timeout=self.wait)
            except (OSError, ValueError, TimeoutError) as exc:
                raise SpoolUnavailable(f"the gateway did not answer: {type(exc).__name__}") from None
            if response is not None:
                if "error" in response:
                    raise SpoolUnavailable(response["error"])
                return response["id"]
            queue_id = await asyncio.to_thread(self._put_here, envelope, raw, plan)
            if queue_id is not None:
                return queue_id
            if time.monotonic() > deadline:      # the daemon holds the lock but never listened
                raise SpoolUnavailable("the gateway is starting; try again")
            await asyncio.sleep(0.1)             # the daemon is recovering: ask it again

    def _put_here(self, envelope: Envelope, raw: bytes, plan: Plan) -> str | None:
        store = QueueStore(self.spool_dir, max_items=self.max_items, shard=0, shards=self.shards)
        if not store.lock(blocking=False):
            return None
        try:
            return store.put_sync(envelope, raw, plan).id
        except QueueFull:
            raise SpoolUnavailable("queue full, try again later") from None
        finally:
            store.unlock()
