"""Large messages do not leave the daemon bigger: after thirty 1 MB messages
over ten sessions at once, once no large message has passed for a while (the
daemon trims its heap then and logs it), its resident memory is back within a
few MiB of where it was after ten such messages at the same concurrency
(``gateway.malloc``; without the trim the heap keeps the buffers of the burst
and this test fails)."""
from __future__ import annotations

import asyncio
import email.policy
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

import pytest

from tests.peers.daemon import SENDER
from tests.peers.wait import until

pytestmark = pytest.mark.slow

LINE = "The office is closed on Friday afternoon for the staff meeting.\n"


def large(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = "partner@partner.example"
    msg["Subject"] = f"Newsletter {i}"
    msg.set_content(LINE * (1_000_000 // len(LINE)))
    return msg.as_bytes(policy=email.policy.SMTP)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def trims(daemon) -> int:
    return daemon.log_text().count("heap trimmed after large messages")


async def test_memory_returns_after_large_messages(daemon_factory, upstream_sink):
    daemon = daemon_factory(upstream_sink.port)

    def send(indexes) -> None:
        with daemon.client() as smtp:
            for i in indexes:
                smtp.sendmail(SENDER, ["partner@partner.example"], large(i))

    def load(first: int, sessions: int, per_session: int) -> None:
        with ThreadPoolExecutor(sessions) as pool:
            list(pool.map(send, [range(first + s * per_session, first + (s + 1) * per_session)
                                 for s in range(sessions)]))

    # warm at the same concurrency: imports, classifier children, the upstream pool and
    # the spool threads reach the size ten sessions give them
    await asyncio.to_thread(load, 0, 10, 1)
    await upstream_sink.wait_for(10, timeout=60)
    await until(lambda: daemon.queue_ids() == [], what="an empty spool")
    await until(lambda: trims(daemon) == 1, what="the heap trimmed after the warm-up")
    before = rss_mib(daemon.proc.pid)
    await asyncio.to_thread(load, 100, 10, 3)
    await upstream_sink.wait_for(40, timeout=120)
    await until(lambda: daemon.queue_ids() == [], what="an empty spool")
    await until(lambda: trims(daemon) == 2, what="the heap trimmed after the load")
    assert rss_mib(daemon.proc.pid) - before < 12
    assert await asyncio.to_thread(daemon.stop) == 0    # the sink runs on this loop
