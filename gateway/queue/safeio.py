"""Durable file operations: write + fsync, atomic replace, fsync a directory.

Without the directory fsync a rename is not durable (the entry may vanish on
power loss even though the file's blocks were flushed), so every commit here
fsyncs the parent directory as well.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: str | Path, data: bytes | Sequence[bytes]) -> None:
    """Create ``path`` (must not exist) with ``data`` (bytes, or pieces written
    one after another without joining them first), mode 0600, fsynced."""
    _write_synced(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, data)


def fill_open(fd: int, data: Sequence[bytes]) -> None:
    """Write ``data`` at the start of the open file ``fd`` (empty, or reused:
    whatever it holds after ``data`` is left as it is); returns once it is on
    disk. One ``pwritev`` with ``RWF_DSYNC`` where the file system
    takes it (``fdatasync``'s promise: the bytes and the size that reaches
    them; a regular file's write is cut short only by an error), otherwise a
    write and an ``fdatasync``."""
    pieces = [memoryview(piece) for piece in data]
    try:
        written = os.pwritev(fd, pieces, 0, os.RWF_DSYNC)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            raise
        written = 0
    if written == sum(len(piece) for piece in pieces):
        return
    offset, pieces = written, _after(pieces, written)
    while pieces:
        written = os.pwritev(fd, pieces, offset)
        offset, pieces = offset + written, _after(pieces, written)
    os.fdatasync(fd)


def _after(pieces: list[memoryview], written: int) -> list[memoryview]:
    """What is left of ``pieces`` once their first ``written`` bytes are out."""
    pieces = list(pieces)
    while pieces and written >= len(pieces[0]):
        written -= len(pieces[0])
        pieces.pop(0)
    if pieces and written:
        pieces[0] = pieces[0][written:]
    return pieces


def _write_synced(path: str | Path, flags: int, data: bytes | Sequence[bytes]) -> None:
    fd = os.open(path, flags, FILE_MODE)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | Sequence[bytes]) -> None:
    """All of ``data`` in as few system calls as the kernel takes (one
    ``writev`` for the pieces, unless it writes less than all of them)."""
    pieces = [memoryview(data)] if isinstance(data, bytes | bytearray | memoryview) else [
        memoryview(piece) for piece in data]
    while pieces:
        pieces = _after(pieces, os.writev(fd, pieces))


def atomic_replace(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never
    a mix, and the new content survives a crash once this returns."""
    tmp = path.with_name(path.name + ".tmp")
    unlink_if_present(tmp)
    write_new(tmp, data)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def unlink_if_present(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def ensure_dir(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
