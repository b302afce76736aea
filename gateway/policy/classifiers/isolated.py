"""The classifier in worker processes, so one message cannot blow up the daemon.

``IsolatedClassifier.classify(raw)`` hands the message to a child process
(``python -m gateway.policy.classifiers.isolated``) over a pipe and waits for its
verdict. The child runs the ordinary ``MessageClassifier`` (its own budget and
deadline stop almost everything); the parent adds the hard bounds: it kills
the child when the deadline passes or when the child's resident memory grows more than
``memory`` bytes over what it held when it became ready (the interpreter and the
compiled patterns; checked every ``POLL`` seconds; the child also lowers its own
address-space limit, at twice that, where the sandbox allows it), and when the child dies
for any reason. Each of these gives a PHI verdict with a PHI-free reason
("classifier limit (memory) …"), and the next message gets a fresh child. The
daemon's memory therefore never holds a message's parse tree, decoded
attachments or extracted text.

Frames on the pipes: 8-byte big-endian length, then the bytes (raw message in,
verdict JSON out). The child writes nothing else on its stdout (logs go to
stderr). Up to ``workers`` children run at once; more callers wait their turn.
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import threading
import time

from gateway.model import Finding, Verdict

POLL = 0.05
START_TIMEOUT = 60.0  # a new child's imports, before its first message's deadline starts
HEADER = struct.Struct(">Q")


class _WorkerGone(Exception):
    """The child exited or broke the protocol."""


class _Worker:
    def __init__(self, shadow: tuple[str, ...], timeout: float, memory: int):
        config = json.dumps({"shadow": list(shadow), "timeout": timeout, "memory": memory})
        self.base = 0  # resident bytes once ready: the limit counts from here
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.policy.classifiers.isolated", config],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            close_fds=True,
        )

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"VmRSS:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        return 0

    def send(self, raw: bytes) -> None:
        try:
            self.proc.stdin.write(HEADER.pack(len(raw)))
            self.proc.stdin.write(raw)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise _WorkerGone from exc

    def receive(self, deadline: float, rss_limit: int | None) -> bytes | str:
        """The reply, or the name of the limit that was hit ("time", "memory")."""
        fd = self.proc.stdout.fileno()
        buffer = bytearray()
        wanted = HEADER.size
        while len(buffer) < wanted:
            left = deadline - time.monotonic()
            if left <= 0:
                return "time"
            if rss_limit is not None and self.rss() > rss_limit:
                return "memory"
            ready, _, _ = select.select([fd], [], [], min(POLL, left))
            if not ready:
                continue
            chunk = os.read(fd, max(wanted - len(buffer), 1 << 16))
            if not chunk:
                raise _WorkerGone
            buffer += chunk
            if wanted == HEADER.size and len(buffer) >= HEADER.size:
                wanted += HEADER.unpack(bytes(buffer[: HEADER.size]))[0]
        return bytes(buffer[HEADER.size :])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


def _limit_verdict(why: str) -> Verdict:
    return Verdict(
        phi=True,
        findings=(Finding("unreadable", "unreadable", "message"),),
        errors=(f"classifier: {why} limit",),
        reasons=(f"unreadable (classifier {why} limit) in message",),
    )


class IsolatedClassifier:
    """``classify(raw) -> Verdict`` in child processes; safe to call from many threads."""

    def __init__(
        self,
        shadow: tuple[str, ...] = (),
        timeout: float = 5.0,
        memory: int = 256 << 20,
        workers: int = 2,
    ):
        self.shadow = tuple(shadow)
        self.timeout = timeout
        self.memory = memory
        self._slots = threading.BoundedSemaphore(workers)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    def _take(self) -> _Worker:
        """An idle child, or a new one that has said it is ready (an empty frame)."""
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.proc.poll() is None:
                    return worker
                worker.kill()
        worker = _Worker(self.shadow, self.timeout, self.memory)
        try:
            ready = worker.receive(time.monotonic() + START_TIMEOUT, None) == b""
        except _WorkerGone:
            ready = False
        if not ready:
            worker.kill()
            raise _WorkerGone
        worker.base = worker.rss()
        return worker

    def classify(self, raw: bytes) -> Verdict:
        with self._slots:
            try:
                worker = self._take()
            except _WorkerGone:
                return _limit_verdict("start")
            deadline = time.monotonic() + self.timeout * 0.95
            try:
                worker.send(raw)
                reply = worker.receive(deadline, worker.base + self.memory)
            except _WorkerGone:
                worker.kill()
                return _limit_verdict("crash")
            if isinstance(reply, str):
                worker.kill()
                return _limit_verdict(reply)
            with self._lock:
                self._idle.append(worker)
        return Verdict.from_json(json.loads(reply))

    def close(self) -> None:
        with self._lock:
            workers, self._idle = self._idle, []
        for worker in workers:
            worker.kill()

    __call__ = classify


def _read_exactly(stream, n: int) -> bytes | None:
    data = stream.read(n)
    return data if len(data) == n else None


def _serve(config: dict) -> None:
    """The child: classify frames from stdin until it closes."""
    import resource

    from gateway.policy.classifiers import build_classifier

    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed (logs) goes to stderr, never into the reply stream
    classifier = build_classifier(config["shadow"], timeout=config["timeout"])
    try:  # a hard ceiling where the sandbox lets us lower it (the parent watches RSS anyway)
        with open("/proc/self/status", "rb") as status:
            size = next(
                int(line.split()[1]) * 1024 for line in status if line.startswith(b"VmSize:")
            )
        limit = size + 2 * config["memory"]  # address space runs ahead of resident memory
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (OSError, ValueError, StopIteration):
        pass
    replies.write(HEADER.pack(0))  # ready
    replies.flush()
    while (head := _read_exactly(requests, HEADER.size)) is not None:
        raw = _read_exactly(requests, HEADER.unpack(head)[0])
        if raw is None:
            return
        try:
            verdict = classifier.classify(raw)
        except MemoryError:
            verdict = _limit_verdict("memory")
        del raw
        reply = json.dumps(verdict.to_json()).encode()
        replies.write(HEADER.pack(len(reply)) + reply)
        replies.flush()


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
