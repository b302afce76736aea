"""Waiting for a condition in tests: poll it, bounded by a deadline.

``condition`` runs in a worker thread (it may read files, run a CLI or query a
database) so the event loop, and the in-process peers on it, keep running.
Its first truthy value is returned; past ``timeout`` the test fails naming
``what`` it waited for."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

POLL = 0.05


async def until(condition: Callable[[], object], timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := await asyncio.to_thread(condition)):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(POLL)
    return value
