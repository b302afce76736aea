"""Free TCP ports for listeners the tests start on loopback.

A port is picked below the kernel's ephemeral range, not from it: a test often
chooses a port, then starts its listener much later (or restarts a peer on the
same port), and meanwhile the daemons keep connecting out. An outgoing
connection takes an ephemeral local port, and one aimed at a listener that is
down can even connect to itself when the kernel gives it that very port
number. Below the range neither can happen. Ports handed out once are not
handed out again in the same test process."""
from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20000
_given: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    top = _ephemeral_start()
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randrange(LOWEST, top)
        if port in _given:
            continue
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port between {LOWEST} and {top}")
