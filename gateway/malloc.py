"""Give large buffers back to the system when they are freed.

glibc serves allocations of 128 KiB and more with their own mmap and unmaps
them on free, but the first time such a block is freed it raises that
threshold (up to 32 MiB), so from then on every message-sized buffer comes
from the heap and the heap keeps its high-water mark: after ten 1 MB messages
at once the daemon stayed ~25 MiB larger for good. Fixing the threshold
(``M_MMAP_THRESHOLD``, which also turns the raising off) keeps it where it
was. Elsewhere than glibc this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
THRESHOLD = 128 << 10


def return_large_buffers() -> bool:
    """True when glibc took the setting."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):
        return False
