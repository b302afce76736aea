"""OutboxCourier: with no upstream configured, each message becomes a file
``<outbox>/<time>-<random>.eml`` (written atomically, fsynced), so the
embedded defaults work with nothing else running.

Two headers are prepended so the envelope is not lost in a file:
``X-Phigate-Envelope-From`` and ``X-Phigate-Envelope-To`` (one per recipient).
"""
from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from gateway.model import Delivered, Outcome, Transient
from gateway.queue.safeio import ensure_dir, fsync_dir, write_new


class OutboxCourier:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        ensure_dir(self.directory)

    def _write(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> Path:
        header = f"X-Phigate-Envelope-From: <{mail_from}>\r\n".encode()
        header += b"".join(f"X-Phigate-Envelope-To: <{r}>\r\n".encode() for r in rcpts)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(6)}.eml"
        tmp = self.directory / f".{name}.tmp"
        write_new(tmp, header + data)
        os.rename(tmp, self.directory / name)
        fsync_dir(self.directory)
        return self.directory / name

    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, Outcome]:
        try:
            path = await asyncio.to_thread(self._write, mail_from, rcpts, data)
        except OSError as exc:
            return {r: Transient(f"outbox not writable: {exc.strerror}") for r in rcpts}
        return {r: Delivered(f"outbox {path.name}") for r in rcpts}

    async def close(self) -> None:
        return None
