"""Batched log output: the lines of one event-loop iteration in one write().

``LineSink`` is the stream every log and audit line goes through (structlog's
logger and the stdlib handler both write to it, so lines keep their order).
Inside a running event loop, ``write`` only collects the text and schedules a
flush for the next loop iteration; the batch goes out in one ``write()``
syscall then, or at once when it passes ``MAX_PENDING``. ``flush`` writes the
batch now: the stdlib handler calls it after every record, ``SinkLogger``
after every warning or error (with the info lines before it, in order), and
``audit`` after the rare events of ``events.AT_ONCE`` (start, reload, refused
logins), which other processes may hear of another way right after.
Without a running loop (CLI commands, other threads) every write goes out at
once, after whatever is still pending.

Processes sharing one output (the supervisor and its workers on journald's
socket) must not split each other's lines: one write() to a regular file
opened for appending lands whole, but on a pipe or socket only up to
``PIPE_BUF`` bytes do, so there a batch goes out in writes of whole lines up to
that size (``write_limit``; the JSON lines are ASCII, so characters are bytes).

Durability: the audit log is not the commit point (the spool is, see
DESIGN.md), so a line may sit in memory for one loop iteration. A process
killed with SIGKILL loses at most the lines of that iteration; a normal exit
(including SIGTERM and SIGINT, which the daemon handles) flushes them, and so
does a fork, so a child never inherits and repeats them (``gateway.audit.setup``
registers both).
"""
from __future__ import annotations

import asyncio
import io
import os
import select
import stat
import threading
from collections.abc import Iterator
from typing import TextIO


def write_limit(stream: TextIO) -> int | None:
    """The most one write() to ``stream`` may carry so that no other process's
    write lands inside it: None (any size) for a regular file, else PIPE_BUF."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, io.UnsupportedOperation):
        return select.PIPE_BUF
    return None if stat.S_ISREG(mode) else select.PIPE_BUF


class LineSink:
    """A text stream wrapper that batches writes per event-loop iteration."""

    MAX_PENDING = 64 * 1024  # characters collected before a flush regardless

    def __init__(self, stream: TextIO, max_write: int | None = None):
        self._stream = stream
        self._max_write = max_write  # see write_limit
        self._pending: list[str] = []
        self._size = 0
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        self._lock = threading.RLock()  # other threads; re-entered by a signal handler

    def write(self, text: str) -> int:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._pending.append(text)
            self._size += len(text)
            if loop is None or self._size >= self.MAX_PENDING:
                self._flush_locked()
            elif self._scheduled_on is not loop:
                # one flush per loop iteration; a flush scheduled on a loop that
                # has since closed never runs, so a new loop schedules its own
                self._scheduled_on = loop
                loop.call_soon(self._flush_scheduled)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_scheduled(self) -> None:
        with self._lock:
            self._scheduled_on = None
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        batch, self._pending, self._size = self._pending, [], 0
        for chunk in self._chunks(batch):
            self._stream.write(chunk)
            self._stream.flush()

    def _chunks(self, batch: list[str]) -> Iterator[str]:
        """The batch in as few writes as ``max_write`` allows, each of whole
        lines (a line longer than that alone)."""
        if self._max_write is None:
            yield "".join(batch)
            return
        chunk: list[str] = []
        size = 0
        for text in batch:
            if chunk and size + len(text) > self._max_write:
                yield "".join(chunk)
                chunk, size = [], 0
            chunk.append(text)
            size += len(text)
        yield "".join(chunk)


class SinkLogger:
    """structlog's output logger on a ``LineSink``: debug and info lines are
    batched, a warning or worse is written at once with the batch before it."""

    def __init__(self, sink: LineSink):
        self._sink = sink

    def info(self, message: str) -> None:
        self._sink.write(message + "\n")

    def warning(self, message: str) -> None:
        self._sink.write(message + "\n")
        self._sink.flush()

    debug = msg = log = info
    warn = error = err = critical = fatal = exception = failure = warning
