"""Admin operations on a running daemon's queue over a local socket.

``phigate queue hold|release|drop|retry`` must not edit an item while the
dispatcher is attempting it, so when the daemon runs the CLI asks it over a
unix socket (``<state_dir>/control.sock``, mode 0600) and the dispatcher does
the change under the item's lock. With no daemon running, the CLI performs the
same Dispatcher method directly on the spool.

Protocol: one JSON object per line each way,
``{"op": "release", "id": "...", "as": "portal"}`` → ``{"ok": true, ...}``.
"""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from gateway.model import Action
from gateway.queue.store import ItemNotFound

OPS = ("hold", "release", "drop", "retry")


def control_socket(state_dir: Path, shard: int = 0, shards: int = 1) -> Path:
    """The admin socket of the process owning ``shard`` of the queue."""
    return Path(state_dir) / ("control.sock" if shards == 1 else f"control-{shard}.sock")


async def perform(dispatcher, request: dict) -> dict:
    """Run one admin operation on ``dispatcher``; errors become {"error": ...}."""
    op, item_id = request.get("op"), str(request.get("id", ""))
    try:
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
    except (ValueError, KeyError) as exc:
        return {"error": str(exc).strip("'\"")}


class ControlServer:
    def __init__(self, dispatcher, path: Path):
        self.dispatcher = dispatcher
        self.path = Path(path)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
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
                response = await perform(self.dispatcher, request)
            writer.write(json.dumps(response).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
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
        reader, writer = await asyncio.open_unix_connection(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    try:
        writer.write(json.dumps(payload).encode() + b"\n")
        await writer.drain()
        return json.loads(await asyncio.wait_for(reader.readline(), timeout))
    finally:
        writer.close()
