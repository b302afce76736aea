"""systemd's notify protocol (sd_notify(3)) in a few lines of socket code:
one datagram per state to the AF_UNIX socket named by $NOTIFY_SOCKET
('@' = abstract namespace). Does nothing when not run by systemd."""
from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable


def notify(state: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address[0] == "@":
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


async def watchdog_loop(healthy: Callable[[], bool]) -> None:
    """Ping the watchdog while ``healthy()``; a wedged loop stops the pings and
    systemd restarts the service."""
    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        if healthy():
            notify("WATCHDOG=1")
        await asyncio.sleep(interval)
