"""Several worker processes sharing one listener and one spool.

Python runs one core per process; a relay on a 2-core box needs both. With
``workers: N`` (N > 1) the ``phigate run`` process becomes a small supervisor,
as Postfix's master is:

- it binds the submission socket once and hands it to N workers
  (``phigate run --worker K``), each a complete gateway (listener, classifier,
  policy, dispatcher) that accepts on the shared socket and owns the queue
  items whose id maps to K (``queue.store.owner``), so no item is ever
  delivered by two processes and a restarted worker recovers exactly its own;
- workers report READY/WATCHDOG to the supervisor over a private notify
  socket; the supervisor tells systemd READY=1 once all are ready and pings
  the watchdog only while every worker is alive and pinging;
- SIGTERM/SIGHUP are forwarded (SIGHUP only after the new config validated);
  a worker that dies is restarted; every worker dies with the supervisor
  (PR_SET_PDEATHSIG), so ``kill -9`` of the supervisor is ``kill -9`` of all;
- it serves /metrics (summed over workers) and /health: it empties
  ``<state_dir>/metrics`` at start and gives each worker
  ``PROMETHEUS_MULTIPROC_DIR`` pointing there (prometheus_client's
  multiprocess mode); a worker that exits is marked dead so its live gauges
  stop counting;
- it exits 0 only when every worker exited 0 after SIGTERM.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

from gateway import sdnotify
from gateway.audit import audit, get_logger
from gateway.config import Config, ConfigError, load_config
from gateway.config.types import split_hostport
from gateway.metrics import Metrics, mark_worker_dead, prepare_multiprocess_dir
from gateway.queue.safeio import ensure_dir
from gateway.tlsutil import ensure_self_signed

log = get_logger("supervisor")

RESTART_DELAY_MAX = 30.0


def bind_listener(address: str) -> socket.socket:
    host, port = split_hostport(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def die_with_parent() -> None:
    """Linux: SIGKILL this process when the supervisor dies."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)       # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:                   # the supervisor died before prctl
        os._exit(1)


def prepare_tls(config: Config, hostname: str) -> None:
    """With no certificate configured, make the self-signed one before the
    workers start: each would otherwise make its own at the same time, and
    clients would see different certificates per connection."""
    if config.listen.submission.tls is None:
        ensure_self_signed(config.state_dir, hostname)


class Worker:
    def __init__(self, index: int):
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = False
        self.last_ping = 0.0
        self.restarts = 0


class Supervisor:
    def __init__(self, config: Config, config_path: Path | None, workers: int, *,
                 hostname: str):
        self.config = config
        self.config_path = config_path
        self.workers = [Worker(i) for i in range(workers)]
        ensure_dir(config.state_dir)
        prepare_tls(config, hostname)
        self.metrics_dir = config.state_dir / "metrics"
        prepare_multiprocess_dir(self.metrics_dir)
        self.listener = bind_listener(config.listen.submission.address)
        self._stopping = False
        self._all_ready = asyncio.Event()
        self.watchdog = sdnotify.watchdog_interval()

    # ---- workers ----------------------------------------------------------
    def worker_argv(self, worker: Worker) -> list[str]:
        argv = [sys.executable, "-m", "gateway"]
        if self.config_path is not None:
            argv += ["-c", str(self.config_path)]
        return argv + ["run", "--worker", str(worker.index),
                       "--listen-fd", str(self.listener.fileno())]

    def notify_path(self, worker: Worker) -> Path:
        return self.config.state_dir / f"worker-{worker.index}.notify"

    async def spawn(self, worker: Worker) -> None:
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path(worker)),
               "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir.absolute())}
        if self.watchdog:
            env["WATCHDOG_USEC"] = str(int(self.watchdog * 1e6))   # workers ping us twice as often
        env.pop("WATCHDOG_PID", None)
        worker.ready = False
        worker.proc = await asyncio.create_subprocess_exec(
            *self.worker_argv(worker), env=env, pass_fds=(self.listener.fileno(),))
        worker.last_ping = time.monotonic()

    async def keep_alive(self, worker: Worker) -> None:
        delay = 1.0
        while not self._stopping:
            await self.spawn(worker)
            code = await worker.proc.wait()
            mark_worker_dead(self.metrics_dir, worker.proc.pid)
            if self._stopping:
                return
            worker.restarts += 1
            log.error("worker exited; restarting", worker=worker.index, code=code, delay=delay,
                      restarts=worker.restarts)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_DELAY_MAX)

    # ---- the private notify sockets (one per worker) ------------------------------
    def on_notify(self, worker: Worker, data: bytes) -> None:
        text = data.decode(errors="replace")
        if "READY=1" in text:
            worker.ready = True
        if "WATCHDOG=1" in text or "READY=1" in text:
            worker.last_ping = time.monotonic()
        if all(w.ready for w in self.workers):
            self._all_ready.set()

    async def listen_notify(self, worker: Worker) -> asyncio.DatagramTransport:
        path = self.notify_path(worker)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.setblocking(False)
        on_notify = self.on_notify

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                on_notify(worker, data)

        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            Protocol, sock=sock)
        return transport

    def healthy(self) -> bool:
        if not all(w.ready and w.proc and w.proc.returncode is None for w in self.workers):
            return False
        if self.watchdog:
            horizon = time.monotonic() - 2 * self.watchdog
            return all(w.last_ping >= horizon for w in self.workers)
        return True

    # ---- signals ------------------------------------------------------------
    def forward(self, sig: int) -> None:
        for worker in self.workers:
            if worker.proc is not None and worker.proc.returncode is None:
                worker.proc.send_signal(sig)

    def reload(self) -> None:
        sdnotify.notify("RELOADING=1")
        try:
            load_config(self.config_path)
        except ConfigError as exc:
            audit("config_rejected", errors=exc.problems)
            log.error("new configuration rejected; keeping the running one", problems=exc.problems)
        else:
            self.forward(signal.SIGHUP)
        sdnotify.notify("READY=1")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        transports = [await self.listen_notify(w) for w in self.workers]
        health = self.health_server()
        if health is not None:
            await health.start()
        keepers = [asyncio.create_task(self.keep_alive(w)) for w in self.workers]
        waiter = asyncio.create_task(self._all_ready.wait())
        await asyncio.wait([waiter, asyncio.create_task(stop.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        if self._all_ready.is_set():
            host, port = self.listener.getsockname()[:2]
            sdnotify.notify(f"READY=1\nSTATUS={len(self.workers)} workers accepting mail "
                            f"on {host}:{port}")
            audit("started", listener=f"{host}:{port}", count=len(self.workers))
        watchdog = asyncio.create_task(sdnotify.watchdog_loop(self.healthy))
        await stop.wait()
        sdnotify.notify("STOPPING=1")
        audit("stopping")
        self._stopping = True
        watchdog.cancel()
        self.forward(signal.SIGTERM)
        codes = []
        for worker in self.workers:
            if worker.proc is not None:
                code = await worker.proc.wait()
                if code == -signal.SIGTERM and not worker.ready:
                    code = 0            # still starting (no handlers yet); had accepted nothing
                log.info("worker stopped", worker=worker.index, code=code, ready=worker.ready)
                codes.append(code)
        for task in keepers:
            task.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        if health is not None:
            await health.stop()
        for transport in transports:
            transport.close()
        self.listener.close()
        return 0 if all(code == 0 for code in codes) else 1

    def health_server(self):
        if not self.config.metrics.address:
            return None
        from gateway.health import HealthServer  # aiohttp only when metrics are served
        server = HealthServer(Metrics.aggregated(self.metrics_dir),
                              self.config.metrics.address)
        server.add_check("workers", self.healthy)
        return server
