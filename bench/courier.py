"""CPU per message of the upstream courier alone, against Postfix's smtp-sink.

Run by hand, not in CI (needs ``smtp-sink`` from Debian's postfix package):

    .venv/bin/python bench/courier.py                 # 3 runs of 3000 x 5 KB, 10 at a time
    .venv/bin/python bench/courier.py -n 1000 -r 1 --no-pipelining

One ``smtp-sink`` on a free loopback port (``-p`` hides PIPELINING), one
``UpstreamCourier`` (``tls: none``, pool of 10) in this process; each run sends
``-n`` messages of ``--size`` bytes to one recipient, ``--concurrency`` sends at
a time, and prints this process's CPU time (``time.process_time``) per message.
The pool is warmed up (one send per slot) before the clock starts.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from relay import free_port, wait_port  # the relay bench's helpers (same directory)

from gateway.config.models import UpstreamConfig
from gateway.delivery.smtp import UpstreamCourier
from gateway.model import Delivered


def message(size: int) -> bytes:
    head = b"From: a@clinic.test\r\nTo: b@partner.test\r\nSubject: bench\r\n\r\n"
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghij.\r\n"
    return head + (line * (size // len(line) + 1))[: size - len(head)]


async def run(port: int, count: int, size: int, concurrency: int) -> float:
    courier = UpstreamCourier(UpstreamConfig(host="127.0.0.1", port=port, tls="none",
                                             pool_size=concurrency), "bench.test")
    data = message(size)
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            outcomes = await courier.send("a@clinic.test", ["b@partner.test"], data)
        assert isinstance(outcomes["b@partner.test"], Delivered), outcomes

    await asyncio.gather(*(one() for _ in range(concurrency)))      # warm the pool
    start = time.process_time()
    await asyncio.gather(*(one() for _ in range(count)))
    used = time.process_time() - start
    await courier.close()
    return used / count * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--count", type=int, default=3000)
    ap.add_argument("-r", "--runs", type=int, default=3)
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("-c", "--concurrency", type=int, default=10)
    ap.add_argument("--no-pipelining", action="store_true", help="smtp-sink -p")
    args = ap.parse_args()
    port = free_port()
    argv = ["smtp-sink"] + (["-p"] if args.no_pipelining else [])
    if os.geteuid() == 0:
        argv += ["-u", "postfix"]
    sink = subprocess.Popen(argv + [f"127.0.0.1:{port}", "1000"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        for i in range(args.runs):
            us = asyncio.run(run(port, args.count, args.size, args.concurrency))
            print(f"run {i + 1}: {us:.0f} µs CPU per message "
                  f"({args.count} x {args.size} B, {args.concurrency} at a time)", flush=True)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
