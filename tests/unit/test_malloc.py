"""``gateway.malloc``: large buffers stay in the heap while messages flow (no page
faults for the next message's buffers) and go back to the system once no large
message has passed for ``QUIET`` seconds. Run in a fresh interpreter, since the
settings are process-wide."""
from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import asyncio, json
import gateway.malloc as m

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024

async def main():
    trimmed = asyncio.Event()
    took = m.reuse_large_buffers(on_trim=trimmed.set)
    m.QUIET = 0.05
    start = rss()
    buffers = [bytearray(1 << 20) for _ in range(32)]
    used = rss()
    del buffers
    m.large_buffer_used(1 << 20)
    freed = rss()
    await asyncio.wait_for(trimmed.wait(), 10)
    print(json.dumps({"took": bool(took), "start": start, "used": used, "freed": freed,
                      "trimmed": rss()}))

asyncio.run(main())
"""


def test_large_buffers_are_kept_while_busy_and_returned_when_quiet():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    mib = json.loads(out)
    assert mib["took"]
    assert mib["used"] - mib["start"] > 28                 # 32 MiB of buffers in use
    assert mib["freed"] - mib["start"] > 28                # freed, but kept for reuse
    assert mib["trimmed"] - mib["start"] < 8               # given back after the quiet time


def test_small_buffers_schedule_no_trim():
    probe = ("import asyncio, gateway.malloc as m\n"
             "async def main():\n"
             "    m.reuse_large_buffers()\n"
             "    m.large_buffer_used(m.LARGE - 1)\n"
             "    print(m._trim_pending)\n"
             "    m.large_buffer_used(m.LARGE)\n"
             "    print(m._trim_pending)\n"
             "asyncio.run(main())\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["False", "True"]


def test_startup_objects_are_frozen_out_of_full_collections():
    probe = ("import gc, json\n"
             "import gateway.app\n"
             "from gateway.malloc import freeze_startup_objects\n"
             "gc.collect()\n"
             "before = len(gc.get_objects(generation=2))\n"
             "frozen = freeze_startup_objects()\n"
             "print(json.dumps({'before': before, 'frozen': frozen,\n"
             "                  'after': len(gc.get_objects(generation=2))}))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    counts = json.loads(out)
    assert counts["before"] > 10_000                  # what a full collection used to walk
    assert counts["frozen"] > counts["before"] * 0.9
    assert counts["after"] < counts["before"] // 100  # what it walks now
