"""Large buffers: reused while messages flow, given back to the system when they stop.

A message's body passes through several buffers of its size (the DATA read,
the spool copy, the pipe to the classifier, the upstream copy). glibc serves
allocations of 128 KiB and more with their own mmap by default, so every such
buffer is page-faulted in when first touched and unmapped when freed: for a
1 MiB message that was ~6 of the event-loop thread's ~16.5 ms (measured). And
the first time such a block is freed glibc raises the threshold (up to
32 MiB), after which the heap keeps its high-water mark for good: after ten
1 MB messages at once the daemon stayed ~25 MiB larger.

So the daemon (``reuse_large_buffers``) serves large buffers from the heap and
turns glibc's own trimming off, and ``large_buffer_used`` (called where a
large message is read or sent) schedules one ``malloc_trim(0)`` for when no
large message has passed for ``QUIET`` seconds: under load the buffers are
reused, and once the load passes the heap's free pages go back to the system.
Elsewhere than glibc this does nothing.

The objects made at start-up (modules, the compiled policy, pydantic's schemas:
tens of thousands) live as long as the process, yet every full collection of
the cyclic garbage collector walked them all: a ~23 ms pause of the event loop
every few thousand messages (measured at 10 sessions). ``freeze_startup_objects``,
called once the daemon is serving, moves them out of the collector's sight, so
a full collection walks only what was made since.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
HEAP_LIMIT = 32 << 20      # larger blocks still get their own mapping (glibc's own
                           # ceiling for the threshold on 64-bit, so every version takes it)
NO_AUTO_TRIM = 1 << 30     # free space at the heap's top glibc keeps (the quiet trim returns it)
LARGE = 128 << 10          # what counts as a large buffer (glibc's default mmap threshold)
QUIET = 2.0                # seconds without a large message before the heap is trimmed

_libc = None
_on_trim: Callable[[], None] | None = None
_last_used = 0.0
_trim_pending = False


def reuse_large_buffers(on_trim: Callable[[], None] | None = None) -> bool:
    """Serve blocks below ``HEAP_LIMIT`` from the heap and leave trimming to
    ``large_buffer_used``; ``on_trim`` is called after each trim. True when
    glibc took the settings."""
    global _libc, _on_trim
    _on_trim = on_trim
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = (libc.mallopt(M_MMAP_THRESHOLD, HEAP_LIMIT)
              and libc.mallopt(M_TRIM_THRESHOLD, NO_AUTO_TRIM) and libc.malloc_trim)
    except (OSError, AttributeError):
        return False
    _libc = libc if ok else None
    return bool(ok)


def large_buffer_used(size: int) -> None:
    """A buffer of ``size`` bytes was just used: when it is large, make sure the
    heap is trimmed ``QUIET`` seconds after the last one (call from the event loop)."""
    global _last_used, _trim_pending
    if size < LARGE or _libc is None:
        return
    _last_used = time.monotonic()
    if not _trim_pending:
        _trim_pending = True
        asyncio.get_running_loop().call_later(QUIET, _trim_when_quiet)


def _trim_when_quiet() -> None:
    global _trim_pending
    waited = time.monotonic() - _last_used
    if waited < QUIET:
        asyncio.get_running_loop().call_later(QUIET - waited, _trim_when_quiet)
        return
    _trim_pending = False
    _libc.malloc_trim(0)
    if _on_trim is not None:
        _on_trim()


def freeze_startup_objects() -> int:
    """Collect what start-up left as garbage, then exempt every surviving object
    from future collections (``gc.freeze``); the number of objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
