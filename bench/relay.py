"""Relay benchmark: phigate against a private Postfix, same load, same sink, same run.

Run by hand, not in CI (needs Postfix's smtp-source/smtp-sink and a Postfix install):

    .venv/bin/python bench/relay.py            # 5 KB x 1,500 messages at c = 1, 10, 50, then 1 MiB x 200 at c = 10
    .venv/bin/python bench/relay.py --quick    # 300 messages per trial, for a smoke test
    .venv/bin/python bench/relay.py --json     # one JSON document on stdout, progress on stderr

What runs (all on loopback, everything in one temporary directory, nothing in /etc):

* one ``smtp-sink -c`` (Postfix's test server) as the upstream of both relays; it is
  the end-to-end counter (its ``mesg=`` counter, read from its output file);
* ``phigate -c CFG run`` as a real daemon (readiness: READY=1 on a NOTIFY_SOCKET this
  script listens on), trusted network 127.0.0.0/8 (no TLS/AUTH, as Postfix's
  mynetworks), upstream = the sink with ``tls: none``, spool in the temp dir; a second
  daemon with ``workers: 2`` for an extra row (skipped, and said so, if it fails);
* a private Postfix instance (``postfix -c TMP/pf/etc``) with an smtpd on a free
  loopback port, ``relayhost = [127.0.0.1]:SINK``, ``mynetworks = 127.0.0.0/8``, no
  content filter, queue on the same disk with Postfix's normal fsync, all other
  settings at their defaults (chroot off: the private queue has no jail).

Load, the same for every peer, one new SMTP session per message (smtp-source's default):

* ``smtp-source -s C -m N -l SIZE`` gives the throughput rows "smtp-source";
* a small asyncio client in this script (raw sockets, one session per message, C at a
  time) gives the rows "py-client": throughput as well, and per-message latency:
  ``session`` = connect .. 250 after the final dot, ``data`` = final dot .. 250 (the
  commit: fsync before the 250 in both relays). smtp-source reports no latency.

Figures per trial: accept msg/s (load generator done), end-to-end msg/s (first
connection until the sink counted all N), CPU ms per message of the relay's processes
(from /proc; Postfix = master with its reaped children plus the live ones), the
part of phigate's in its event loops ("event loop": the main threads of its
processes other than the classifier children), and
phigate's peak RSS (sum of VmRSS over its processes, sampled every 20 ms). Each trial
is preceded by ``sync`` and a 1 s pause; peers alternate trial by trial, so ratios
come from the same minutes of this noisy machine. /proc/loadavg is printed at the
start and the end. ``--profile FILE`` adds one phigate c=10 smtp-source trial (not
in the table) with py-spy attached and prints the top functions.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SENDER, RCPT = "a@clinic.test", "b@partner.test"
LARGE = 1 << 20          # the large-message trial: 1 MiB, c=10, smtp-source
POSTFIX_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g}s")


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


# ---- /proc accounting ---------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()     # fields from 3 (state) on


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields:
                kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def tree(root: int) -> list[int]:
    kids, out, todo = children_map(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def cpu_seconds(root: int, with_reaped: bool) -> float:
    """utime+stime of ``root`` and its live descendants (+ reaped children's time)."""
    total = 0.0
    for pid in tree(root):
        f = _stat(pid)
        if f:
            total += int(f[11]) + int(f[12])                  # utime, stime
            if with_reaped:
                total += int(f[13]) + int(f[14])              # cutime, cstime
    return total / TICK


def event_loops(pids: list[int]) -> list[int]:
    """The processes among ``pids`` whose main thread is an event loop: all of
    phigate's but its classifier children (single-threaded, CPU only)."""
    loops = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"gateway.policy.classifiers.child" not in argv:
            loops.append(pid)
    return loops


def main_thread_cpu(pids: list[int]) -> float:
    """utime+stime of the main thread (the event loop) of each process, summed."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
        except OSError:
            continue
        f = text[text.rindex(")") + 2:].split()
        total += int(f[11]) + int(f[12])
    return total / TICK


def rss_kib(pids: list[int], field: str = "VmRSS:") -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total


class RssSampler:
    """Peak of the summed VmRSS of a fixed set of processes, sampled in a thread."""

    def __init__(self, pids: list[int], interval: float = 0.02):
        self.pids, self.interval, self.peak = pids, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pids))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# ---- the sink ----------------------------------------------------------------------------
class Sink:
    """``smtp-sink -c``; its running ``mesg=`` counter is read from its output file."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.out = workdir / "sink.out"
        argv = ["smtp-sink", "-c"]
        if os.geteuid() == 0:
            argv += ["-u", "postfix"]
        argv += [f"127.0.0.1:{self.port}", "1000"]
        self._fh = open(self.out, "wb")  # noqa: SIM115 - lives as long as the sink
        self.proc = subprocess.Popen(argv, stdout=self._fh, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self._fd = os.open(self.out, os.O_RDONLY)
        wait_port(self.port)

    def count(self) -> int:
        size = os.fstat(self._fd).st_size
        tail = os.pread(self._fd, 256, max(0, size - 256))
        found = re.findall(rb"mesg=(\d+)\r", tail)
        return int(found[-1]) if found else 0

    def stop(self) -> None:
        stop_process(self.proc)
        os.close(self._fd)
        self._fh.close()


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM,
                 timeout: float = 30.0) -> int | None:
    """Stop a process this script started (and its session), by its own pid."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return proc.wait(10)


# ---- peers -------------------------------------------------------------------------------
class Phigate:
    """``phigate -c CFG run`` as a real daemon; READY=1 on our NOTIFY_SOCKET."""

    def __init__(self, workdir: Path, sink_port: int, workers: int = 1,
                 precreate_state_dir: bool = False):
        self.name = "phigate" if workers == 1 else f"phigate workers={workers}"
        self.dir = workdir / ("phigate" if workers == 1 else f"phigate-w{workers}")
        if precreate_state_dir:            # as systemd's StateDirectory= would
            self.name += " (state_dir pre-created)"
            self.dir = self.dir.with_name(self.dir.name + "-pre")
            (self.dir / "var").mkdir(parents=True)
        else:
            self.dir.mkdir()
        self.port = free_port()
        self.spool = self.dir / "spool"
        self.logfile = self.dir / "phigate.log"
        config = self.dir / "phigate.yaml"
        config.write_text(json.dumps({     # JSON is YAML
            "state_dir": str(self.dir / "var"),
            "workers": workers,
            "listen": {"submission": {"address": f"127.0.0.1:{self.port}"}},
            "auth": {"trusted_networks": ["127.0.0.0/8"], "users_file": str(self.dir / "users.yaml")},
            "upstream": {"host": "127.0.0.1", "port": sink_port, "tls": "none"},
            "queue": {"dir": str(self.spool)},
            "smtp": {"hostname": "phigate-bench.localdomain"},
            "metrics": {"address": None},
            "logging": {"file": str(self.logfile)},
        }, indent=1))
        exe = shutil.which("phigate", path=str(Path(sys.executable).parent)) or "phigate"
        notify_path = self.dir / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        notify.settimeout(0.5)
        self.stderr = open(self.dir / "stderr.txt", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [exe, "-c", str(config), "run"], env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
            stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr,
            start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: "
                                       + self.tail_errors())
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: no READY=1 within 60 s")
                try:
                    if b"READY=1" in notify.recv(4096):
                        break
                except TimeoutError:
                    pass
        finally:
            notify.close()
        wait_port(self.port)

    def tail_errors(self) -> str:
        text = ""
        for path in (self.dir / "stderr.txt", self.logfile):
            if path.exists():
                text += path.read_text(errors="replace")[-1500:]
        return text.strip()

    def pids(self) -> list[int]:
        return tree(self.proc.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid, with_reaped=False)

    def backlog(self) -> int:
        queued = sum(1 for e in os.scandir(self.spool / "queue") if e.name.endswith(".msg"))
        return queued + len(os.listdir(self.spool / "active"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        code = stop_process(self.proc)
        self.stderr.close()
        return code


MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
smtp       unix  - - n -  - smtp
relay      unix  - - n -  - smtp
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
local      unix  - n n -  - local
virtual    unix  - n n -  - virtual
lmtp       unix  - - n -  - lmtp
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/spool
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localdomain
mydomain = localdomain
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink}
default_transport = smtp
relay_transport = relay
smtpd_client_restrictions = permit_mynetworks
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtp_tls_security_level = none
smtpd_tls_security_level = none
message_size_limit = 52428800
biff = no
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
"""


class Postfix:
    """A private Postfix instance: own config dir, queue, port; /etc/postfix untouched."""

    name = "postfix"

    def __init__(self, workdir: Path, sink_port: int):
        self.dir = workdir / "pf"
        self.etc = self.dir / "etc"
        self.etc.mkdir(parents=True)
        (self.dir / "data").mkdir()
        (self.dir / "spool").mkdir()
        shutil.chown(self.dir / "data", "postfix", "postfix")
        self.port = free_port()
        (self.etc / "main.cf").write_text(MAIN_CF.format(dir=self.dir, sink=sink_port))
        (self.etc / "master.cf").write_text(MASTER_CF.format(port=self.port))
        self.started = False
        self.postfix("check")
        self.postfix("start")
        self.started = True
        wait_port(self.port)
        self.master = int((self.dir / "spool/pid/master.pid").read_text().split()[0])

    def postfix(self, *args: str) -> None:
        done = subprocess.run(["postfix", "-c", str(self.etc), *args], capture_output=True,
                              check=False, text=True, stdin=subprocess.DEVNULL, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)}: {done.stdout}{done.stderr}".strip())

    def pids(self) -> list[int]:
        return tree(self.master)

    def cpu(self) -> float:
        return cpu_seconds(self.master, with_reaped=True)

    def backlog(self) -> int:
        count = 0
        for queue in POSTFIX_QUEUES:
            for _, _, files in os.walk(self.dir / "spool" / queue):
                count += len(files)
        return count

    def alive(self) -> bool:
        return Path(f"/proc/{self.master}").exists()

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        try:
            self.postfix("stop")
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            log(f"postfix stop failed ({exc}); killing its master {self.master}")
        deadline = time.monotonic() + 30
        while Path(f"/proc/{self.master}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if Path(f"/proc/{self.master}").exists():
            os.kill(self.master, signal.SIGKILL)


# ---- load generators ----------------------------------------------------------------
def message_bytes(size: int) -> bytes:
    """Headers plus ``size`` bytes of 78-character lines (CRLF), dot-safe."""
    head = (f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: relay benchmark\r\n"
            f"Message-ID: <bench@clinic.test>\r\n\r\n").encode()
    line = b"La de da de da 1234567890 " * 3
    body = bytearray()
    while len(body) < size:
        body += line[:76] + b"\r\n"
    return head + bytes(body[:size - 2]) + b"\r\n"


async def _expect(reader: asyncio.StreamReader, code: bytes) -> None:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            break
    if not line.startswith(code):
        raise RuntimeError(f"expected {code.decode()}, got {line[:60]!r}")


async def _session(port: int, data: bytes) -> tuple[float, float]:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await _expect(reader, b"220")
        for command, code in ((b"EHLO bench.localdomain", b"250"), (f"MAIL FROM:<{SENDER}>", b"250"),
                              (f"RCPT TO:<{RCPT}>", b"250"), (b"DATA", b"354")):
            writer.write((command if isinstance(command, bytes) else command.encode()) + b"\r\n")
            await _expect(reader, code)
        t1 = time.perf_counter()
        writer.write(data + b".\r\n")
        await _expect(reader, b"250")
        t2 = time.perf_counter()
        writer.write(b"QUIT\r\n")
        await _expect(reader, b"221")
    finally:
        writer.close()
    return t2 - t0, t2 - t1


def run_pyclient(port: int, conc: int, n: int, size: int, on_tick) -> dict:
    data = message_bytes(size)

    async def main() -> dict:
        left = n
        session, commit, errors = [], [], Counter()

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                try:
                    s, c = await _session(port, data)
                except Exception as exc:          # noqa: BLE001 - counted and reported
                    errors[f"{exc.__class__.__name__}: {exc}"[:80]] += 1
                    continue
                session.append(s)
                commit.append(c)

        async def ticker() -> None:
            while True:
                on_tick()
                await asyncio.sleep(0.005)

        tick = asyncio.create_task(ticker())
        await asyncio.gather(*(worker() for _ in range(conc)))
        tick.cancel()
        return {"session": session, "commit": commit, "errors": dict(errors)}

    try:
        import uvloop
        return uvloop.run(main())
    except ImportError:
        return asyncio.run(main())


# ---- one trial ------------------------------------------------------------------------
class Bench:
    def __init__(self, args, workdir: Path):
        self.args = args
        self.workdir = workdir
        self.sink: Sink | None = None
        self.peers: list = []
        self.sources: list[subprocess.Popen] = []

    def trial(self, peer, client: str, conc: int, n: int, size: int) -> dict:
        sink = self.sink
        os.sync()
        time.sleep(1.0)
        base = sink.count()
        target = base + n
        pids = peer.pids() if isinstance(peer, Phigate) else []
        loops = event_loops(pids)
        cpu0 = peer.cpu()
        loop0 = main_thread_cpu(loops)
        load0 = loadavg()
        done_at = None
        last_report = [time.monotonic()]
        label = f"{size // 1024:>5} KiB c={conc} {client:<11} {peer.name:<19}"

        def tick() -> None:
            nonlocal done_at
            now = time.perf_counter()
            if done_at is None and sink.count() >= target:
                done_at = now
            if time.monotonic() - last_report[0] >= 5:
                last_report[0] = time.monotonic()
                log(f"  {label} ... {sink.count() - base}/{n} at the sink")

        result: dict = {"peer": peer.name, "client": client, "c": conc, "n": n, "size": size,
                        "loadavg_start": load0}
        with RssSampler(pids) as rss:
            t0 = time.perf_counter()
            if client == "smtp-source":
                argv = ["smtp-source", "-s", str(conc), "-m", str(n), "-l", str(size),
                        "-f", SENDER, "-t", RCPT, f"127.0.0.1:{peer.port}"]
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True)
                self.sources.append(proc)
                while proc.poll() is None:
                    tick()
                    time.sleep(0.005)
                accepted_at = time.perf_counter()
                out = proc.stdout.read().decode(errors="replace").strip()
                self.sources.remove(proc)
                if proc.returncode != 0 or out:
                    result["errors"] = {f"smtp-source rc={proc.returncode}": 1}
                    result["client_output"] = out[-500:]
            else:
                lat = run_pyclient(peer.port, conc, n, size, tick)
                accepted_at = time.perf_counter()
                if lat["errors"]:
                    result["errors"] = lat["errors"]
                    target = base + len(lat["session"])
                for key in ("session", "commit"):
                    result[f"{key}_p50_ms"] = round(percentile(lat[key], 50) * 1e3, 2)
                    result[f"{key}_p99_ms"] = round(percentile(lat[key], 99) * 1e3, 2)
            deadline = time.monotonic() + max(60.0, n / 20)
            while done_at is None and time.monotonic() < deadline:
                tick()
                time.sleep(0.005)
        result["accept_msg_s"] = round(n / (accepted_at - t0), 1)
        if done_at is None:
            result["error"] = f"sink got {sink.count() - base} of {n} within the deadline"
        else:
            result["e2e_msg_s"] = round(n / (done_at - t0), 1)
        drain_deadline = time.monotonic() + 120
        while peer.backlog() and time.monotonic() < drain_deadline:
            time.sleep(0.02)
        result["cpu_ms_per_msg"] = round((peer.cpu() - cpu0) * 1e3 / n, 3)
        if pids:
            result["peak_rss_mib"] = round(rss.peak / 1024, 1)
            result["loop_cpu_ms_per_msg"] = round((main_thread_cpu(loops) - loop0) * 1e3 / n, 3)
        result["loadavg_end"] = loadavg()
        if not peer.alive():
            result["error"] = f"{peer.name} died during the trial"
        summary = f"accept {result['accept_msg_s']:>7} msg/s  e2e {result.get('e2e_msg_s', '-'):>7}"
        if "commit_p50_ms" in result:
            summary += (f"  session p50/p99 {result['session_p50_ms']}/{result['session_p99_ms']} ms"
                        f"  data {result['commit_p50_ms']}/{result['commit_p99_ms']} ms")
        summary += f"  cpu {result['cpu_ms_per_msg']} ms/msg"
        if "loop_cpu_ms_per_msg" in result:
            summary += f" (event loop {result['loop_cpu_ms_per_msg']})"
        if "peak_rss_mib" in result:
            summary += f"  rss {result['peak_rss_mib']} MiB"
        extra = result.get("error") or result.get("errors")
        log(f"  {label} {summary}" + (f"  !! {extra}" if extra else ""))
        return result

    def profile(self, peer: Phigate, out: Path) -> dict:
        """One extra c=10 smtp-source trial with py-spy attached (not in the table)."""
        spy = self.args.py_spy or shutil.which("py-spy")
        if not spy:
            return {"error": "py-spy not found (pip install py-spy; --py-spy PATH)"}
        gil = out.with_name(out.stem + "-gil" + out.suffix)
        recs = []
        for path, extra in ((out, []), (gil, ["--gil"])):
            recs.append(subprocess.Popen(
                [spy, "record", "--nonblocking", "-r", "250", "-f", "raw", "-o", str(path),
                 "-p", str(peer.proc.pid), *extra], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True))
        self.sources.extend(recs)
        time.sleep(1.5)
        result = self.trial(peer, "smtp-source", 10, self.args.messages, self.args.size)
        for rec in recs:
            stop_process(rec, signal.SIGINT, timeout=60)
            self.sources.remove(rec)
        if not out.exists() or not gil.exists():
            return {"error": "py-spy wrote nothing: " + recs[0].stderr.read().decode()[-300:]}
        return {"trial": result, "file": str(out), "gil_file": str(gil),
                "all_threads": summarize_profile(out), "gil": summarize_profile(gil)}


def _frame(name: str) -> str:
    name = re.sub(r" \((?:/[^)]*/)?((?:site-packages/|gateway/)?[^)/]*)\)", r" (\1)", name)
    return name.replace("site-packages/", "")


_BOILERPLATE = re.compile(r"^process |threading\.py|runners\.py|uvloop/__init__|gateway/app\.py|"
                         r"gateway/cli/|<module>|concurrent/futures/thread\.py")


def summarize_profile(path: Path, top: int = 15) -> dict:
    """Self and inclusive shares from py-spy's collapsed stacks (inclusive: without
    the frames every stack has: process, thread bootstrap, event loop, CLI)."""
    own, incl, total = Counter(), Counter(), 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";") if f.strip()]
        n = int(count)
        total += n
        if frames:
            own[frames[-1]] += n
        for f in {re.sub(r":\d+\)$", ")", f) for f in frames}:    # per function
            if not _BOILERPLATE.search(f):
                incl[f] += n
    if not total:
        return {"samples": 0}
    def share(c: Counter) -> list:
        return [(k, round(100 * v / total, 1)) for k, v in c.most_common(top)]
    return {"samples": total, "self_pct": share(own), "inclusive_pct": share(incl)}


# ---- the run ---------------------------------------------------------------------------------
def summarize(results: list[dict], peers: list[str]) -> list[dict]:
    """Median over reps per (size, client, c, peer); ratio of medians to Postfix, same
    size, client and concurrency."""
    rows = []
    for size, client, conc in sorted({(r["size"], r["client"], r["c"]) for r in results},
                                     key=lambda k: (k[0], k[1] != "smtp-source", k[2])):
        same = [r for r in results if (r["size"], r["client"], r["c"]) == (size, client, conc)]
        pf = [r["e2e_msg_s"] for r in same if r["peer"] == "postfix" and "e2e_msg_s" in r]
        pf_e2e = statistics.median(pf) if pf else None
        for name in peers:
            rs = [r for r in same if r["peer"] == name]
            ok = [r for r in rs if "e2e_msg_s" in r]
            if not rs:
                continue
            row = {"size": size, "client": client, "c": conc, "peer": name, "trials": len(rs),
                   "failed_trials": len(rs) - len(ok)}
            for key in ("accept_msg_s", "e2e_msg_s", "session_p50_ms", "session_p99_ms",
                        "commit_p50_ms", "commit_p99_ms", "cpu_ms_per_msg",
                        "loop_cpu_ms_per_msg", "peak_rss_mib"):
                vals = [r[key] for r in ok if key in r]
                if vals:
                    row[key] = round(statistics.median(vals), 2)
                    if key == "e2e_msg_s" and len(vals) > 1:
                        row["e2e_range"] = [min(vals), max(vals)]
            if pf_e2e and "e2e_msg_s" in row:
                row["ratio_to_postfix"] = round(row["e2e_msg_s"] / pf_e2e, 2)
            rows.append(row)
    return rows


def print_table(rows: list[dict]) -> None:
    def cell(v, fmt="{:g}"):
        return "-" if v is None else fmt.format(v)

    for size, conc in sorted({(r["size"], r["c"]) for r in rows}):
        print(f"\n{size / 1024:g} KiB, concurrency {conc}")
        print(f"  {'client':<12}{'peer':<20}{'accept/s':>9}{'e2e msg/s':>10}{'ratio':>7}"
              f"{'session p50/p99 ms':>20}{'data p50/p99 ms':>17}{'cpu ms/msg':>11}{'peak RSS':>12}")
        for row in (r for r in rows if (r["size"], r["c"]) == (size, conc)):
            sess = (f"{cell(row.get('session_p50_ms'))}/{cell(row.get('session_p99_ms'))}"
                    if "session_p50_ms" in row else "-")
            data = (f"{cell(row.get('commit_p50_ms'))}/{cell(row.get('commit_p99_ms'))}"
                    if "commit_p50_ms" in row else "-")
            rss = f"{row['peak_rss_mib']:g} MiB" if "peak_rss_mib" in row else "-"
            ratio = f"{row['ratio_to_postfix']:.2f}x" if "ratio_to_postfix" in row else "-"
            e2e = cell(row.get("e2e_msg_s"))
            if row["failed_trials"]:
                e2e += f" ({row['failed_trials']} failed)"
            print(f"  {row['client']:<12}{row['peer']:<20}{cell(row.get('accept_msg_s')):>9}"
                  f"{e2e:>10}{ratio:>7}{sess:>20}{data:>17}"
                  f"{cell(row.get('cpu_ms_per_msg')):>11}{rss:>12}")


def source_state() -> dict:
    """The commit under test and any uncommitted files in gateway/ (shared tree)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                              check=False).stdout
    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "dirty": [line[3:] for line in git("status", "--porcelain", "--", "gateway")
                      .splitlines()]}


def machine() -> dict:
    pf = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True,
                        check=False)
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "python_executable": sys.executable,
            "libpython_shared": libpython_shared(), "postfix": pf.stdout.strip()}


def libpython_shared() -> bool:
    """This interpreter (and the phigate beside it) runs from a libpython .so, as pyenv's
    default build does, not from an executable linked with it, as Debian's python3 is: the
    classifier alone takes 13–21 % more CPU so. (``Py_ENABLE_SHARED`` is set on Debian too.)"""
    return "libpython" in Path("/proc/self/maps").read_text()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="300 messages per trial")
    ap.add_argument("--messages", "-n", type=int, default=None, help="messages per trial (1500)")
    ap.add_argument("--large", type=int, default=200,
                    help="1 MiB messages per c=10 smtp-source trial (0: none)")
    ap.add_argument("--levels", default="1,10,50", help="concurrency levels (1,10,50)")
    ap.add_argument("--size", type=int, default=5120, help="payload bytes (smtp-source -l)")
    ap.add_argument("--reps", type=int, default=1, help="repetitions of the whole interleave")
    ap.add_argument("--clients", default="smtp-source,py-client")
    ap.add_argument("--no-workers", action="store_true", help="skip the workers: 2 row")
    ap.add_argument("--profile", type=Path, help="py-spy raw output file for a c=10 profile")
    ap.add_argument("--py-spy", help="path of the py-spy binary")
    ap.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    ap.add_argument("--save", type=Path, help="also write the JSON document to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    args.messages = args.messages or (300 if args.quick else 1500)
    args.large = min(args.large, 30) if args.quick else args.large
    levels = [int(x) for x in args.levels.split(",")]
    clients = args.clients.split(",")
    for tool in ("smtp-sink", "smtp-source", "postfix", "postconf"):
        if not shutil.which(tool):
            log(f"{tool} not found: run .ci/system-deps (Debian: apt-get install postfix)")
            return 2

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    workdir = Path(tempfile.mkdtemp(prefix="phigate-relay-bench-", dir="/var/tmp"))
    os.chmod(workdir, 0o755)
    report: dict = {"machine": machine(), "loadavg_start": loadavg(), "size": args.size,
                    "messages": args.messages, "levels": levels, "reps": args.reps,
                    "command": " ".join([Path(sys.executable).name, *sys.argv]),
                    "source": source_state(), "skipped": {}, "trials": []}
    log(f"machine: {report['machine']}")
    log(f"phigate source: {report['source']}")
    log(f"loadavg at start: {report['loadavg_start']}   workdir: {workdir}")
    bench = Bench(args, workdir)
    code = 0
    try:
        bench.sink = Sink(workdir)
        phigate = Phigate(workdir, bench.sink.port)
        bench.peers.append(phigate)
        if not args.no_workers:
            try:
                bench.peers.append(Phigate(workdir, bench.sink.port, workers=2))
            except Exception as exc:        # noqa: BLE001 - reported, the row is skipped
                report["skipped"]["phigate workers=2"] = str(exc)[-1500:]
                log(f"phigate workers=2 failed to start; row skipped: {str(exc)[-1500:]}")
                if "FileNotFoundError" in str(exc):
                    log("retrying workers=2 with its state_dir created beforehand")
                    try:
                        bench.peers.append(Phigate(workdir, bench.sink.port, workers=2,
                                                   precreate_state_dir=True))
                    except Exception as exc2:   # noqa: BLE001 - reported
                        report["skipped"]["phigate workers=2 (state_dir pre-created)"] = \
                            str(exc2)[-1500:]
        bench.peers.append(Postfix(workdir, bench.sink.port))
        log(f"sink :{bench.sink.port}  " + "  ".join(f"{p.name} :{p.port}" for p in bench.peers))
        for rep in range(args.reps):
            for conc in levels:
                for client in clients:
                    for peer in list(bench.peers):
                        if not peer.alive():
                            report["skipped"][peer.name] = f"died before c={conc} rep {rep}"
                            continue
                        trial = bench.trial(peer, client, conc, args.messages, args.size)
                        trial["rep"] = rep
                        report["trials"].append(trial)
            for peer in list(bench.peers) if args.large else []:
                if peer.alive():
                    trial = bench.trial(peer, "smtp-source", 10, args.large, LARGE)
                    trial["rep"] = rep
                    report["trials"].append(trial)
        if args.profile:
            log("profile: one more phigate c=10 smtp-source trial under py-spy")
            report["profile"] = bench.profile(phigate, args.profile)
        report["phigate_vmhwm_mib"] = {
            p.name: round(rss_kib(p.pids(), "VmHWM:") / 1024, 1)
            for p in bench.peers if isinstance(p, Phigate) and p.alive()}
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        code = 130
    finally:
        for proc in list(bench.sources):
            stop_process(proc, signal.SIGKILL)
        for peer in reversed(bench.peers):
            try:
                rc = peer.stop()
                if isinstance(peer, Phigate) and rc not in (0, None):
                    log(f"{peer.name} exited with {rc} at stop")
            except Exception as exc:        # noqa: BLE001 - keep cleaning up
                log(f"stopping {peer.name}: {exc}")
        if bench.sink is not None:
            bench.sink.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report["loadavg_end"] = loadavg()
    names = [p.name for p in bench.peers]
    report["rows"] = summarize(report["trials"], names)
    if args.save:
        args.save.write_text(json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        m = report["machine"]
        print(f"phigate vs Postfix relay, {args.size} B payload, {args.messages} messages per trial, "
              f"{args.reps} rep(s); {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, "
              f"Python {m['python']} ({m['python_executable']}, libpython "
              f"{'shared' if m['libpython_shared'] else 'linked in'}), Postfix {m['postfix']}")
        src = report["source"]
        print(f"phigate at {src['commit']}" + (f", uncommitted in gateway/: {' '.join(src['dirty'])}"
                                              if src["dirty"] else ", gateway/ clean"))
        print("e2e = first connection until smtp-sink counted all messages; ratio = phigate / "
              "Postfix e2e with the same client; latency only from py-client (smtp-source "
              "reports none); RSS = phigate's processes summed")
        print_table(report["rows"])
        for name, why in report["skipped"].items():
            print(f"\nskipped {name}: {why}")
        if "phigate_vmhwm_mib" in report:
            print("\nVmHWM summed over processes at the end: " + ", ".join(
                f"{k} {v} MiB" for k, v in report["phigate_vmhwm_mib"].items()))
        prof = report.get("profile")
        if prof and "error" in prof:
            print(f"\nprofile: {prof['error']}")
        elif prof:
            t = prof["trial"]
            print(f"\npy-spy profile of phigate, c=10 smtp-source, {t.get('e2e_msg_s')} msg/s "
                  f"under the profiler; {prof['file']}, {prof['gil_file']}")
            for view, title in (("gil", "thread holding the GIL (Python CPU)"),
                                ("all_threads", "all non-idle threads (with those in fsync/unlink)")):
                p = prof[view]
                print(f"  {title}, {p.get('samples', 0)} samples:")
                for label, key in (("self", "self_pct"), ("inclusive", "inclusive_pct")):
                    for frame, pct in p.get(key, []):
                        print(f"    {label:<9} {pct:5.1f}%  {frame}")
        print(f"\nloadavg start: {report['loadavg_start']}   end: {report['loadavg_end']}")
    return code


if __name__ == "__main__":
    sys.exit(main())
