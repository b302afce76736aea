"""The classifier in worker processes, so one message cannot blow up the daemon.

``await IsolatedClassifier.classify(raw)`` hands the message to a child process
(``python -m gateway.policy.classifiers.child``) over a pipe and waits for its
verdict, on the event loop (no thread per message). The child runs the ordinary
``MessageClassifier`` (its own budget and deadline stop almost everything); the
parent adds the hard bounds: it kills the child when the deadline passes or when
the child's resident memory grows more than ``memory`` bytes over what it held
when it became ready (the interpreter and the compiled patterns; checked every
``POLL`` seconds while a message is out; the child also lowers its own
address-space limit, at twice that, where the sandbox allows it), and when the
child dies for any reason. Each of these gives a PHI verdict with a PHI-free
reason ("classifier limit (memory) …"), and the next message gets a fresh child.
The daemon's memory therefore never holds a message's parse tree, decoded
attachments or extracted text.

The frames on the pipes are described in ``child``. Up to ``workers`` children
run at once; more callers wait their turn.
"""

from __future__ import annotations

import asyncio
import json
import sys

from gateway.model import Verdict
from gateway.policy.classifiers.child import HEADER, limit_verdict

POLL = 0.05
START_TIMEOUT = 60.0  # a new child's imports, before its first message's deadline starts


class _WorkerGone(Exception):
    """The child exited or broke the protocol."""


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.base = 0  # resident bytes once ready: the limit counts from here

    @classmethod
    async def start(cls, shadow: tuple[str, ...], timeout: float, memory: int) -> _Worker:
        """A new child that has said it is ready (an empty frame)."""
        config = json.dumps({"shadow": list(shadow), "timeout": timeout, "memory": memory})
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.policy.classifiers.child", config,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
            close_fds=True)
        worker = cls(proc)
        if await worker.exchange(None, START_TIMEOUT, None) != b"":
            await worker.kill()
            raise _WorkerGone
        worker.base = worker.rss()
        return worker

    def alive(self) -> bool:
        return self.proc.returncode is None

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"VmRSS:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
        return 0

    async def _ask(self, raw: bytes | None) -> bytes:
        try:
            if raw is not None:
                self.proc.stdin.writelines((HEADER.pack(len(raw)), raw))   # one writev, no copy
                await self.proc.stdin.drain()
            head = await self.proc.stdout.readexactly(HEADER.size)
            return await self.proc.stdout.readexactly(HEADER.unpack(head)[0])
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise _WorkerGone from exc

    async def exchange(self, raw: bytes | None, timeout: float,
                       rss_limit: int | None) -> bytes | str:
        """Send ``raw`` (None: only read) and return the reply, or the name of the
        limit that was hit ("time", "memory"). Memory is looked at only while a
        reply is late by more than ``POLL``. The reply is awaited in the caller's
        own task; a timer callback watches the limits and cancels that task when
        one is hit (no task and no ``asyncio.wait`` per message)."""
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        deadline = loop.time() + timeout
        hit: list[str] = []

        def watch() -> None:
            nonlocal timer
            now = loop.time()
            limit = ("time" if now >= deadline else
                     "memory" if rss_limit is not None and self.rss() > rss_limit else None)
            if limit is None:
                timer = loop.call_later(min(POLL, deadline - now), watch)
            else:
                hit.append(limit)
                me.cancel()

        timer = loop.call_later(min(POLL, timeout), watch)
        try:
            return await self._ask(raw)
        except asyncio.CancelledError:
            if not hit:
                raise                      # cancelled from outside: not ours to swallow
            me.uncancel()
            return hit[0]
        finally:
            timer.cancel()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


class IsolatedClassifier:
    """``await classify(raw) -> Verdict`` in child processes, from one event loop."""

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
        self.workers = workers
        self._slots: asyncio.Semaphore | None = None   # made on the loop that uses it
        self._idle: list[_Worker] = []

    async def _take(self) -> _Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive():
                return worker
            await worker.kill()
        return await _Worker.start(self.shadow, self.timeout, self.memory)

    async def classify(self, raw: bytes) -> Verdict:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        async with self._slots:
            try:
                worker = await self._take()
            except (_WorkerGone, OSError):
                return limit_verdict("start")
            try:
                reply = await worker.exchange(raw, self.timeout * 0.95,
                                              worker.base + self.memory)
            except _WorkerGone:
                await worker.kill()
                return limit_verdict("crash")
            except BaseException:          # cancelled mid-exchange: the pipe is out of step
                await asyncio.shield(worker.kill())
                raise
            if isinstance(reply, str):
                await worker.kill()
                return limit_verdict(reply)
            self._idle.append(worker)
        return Verdict.from_json(json.loads(reply))

    async def close(self) -> None:
        workers, self._idle = self._idle, []
        for worker in workers:
            await worker.kill()

