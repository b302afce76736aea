"""``workers: 2``: a supervisor process and two gateway workers sharing one
listening socket and one (sharded) spool, through the real CLI and daemon.

Checks: mail over several concurrent connections all reaches the sink;
systemd hears READY=1 exactly once (from the supervisor); /metrics on the
supervisor sums the workers' counters; ``phigate queue list|hold|release``
work across shards (changes reach the owning worker's control socket); a
killed worker is restarted; SIGTERM stops every worker with exit code 0.
"""
from __future__ import annotations

import asyncio
import email
import json
import os
import signal
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.queue.store import owner
from tests.peers.daemon import SENDER
from tests.peers.wait import until

pytestmark = pytest.mark.slow

WORKERS = 2


def message(i: int) -> bytes:
    return (f"From: {SENDER}\r\nTo: lab@partner.example\r\nSubject: worker test {i}\r\n"
            f"Message-ID: <w{i}@client.smiledental.example>\r\n\r\nPlain note {i}.\r\n").encode()


async def submit(daemon, first: int, count: int, connections: int) -> None:
    """``count`` messages spread over ``connections`` concurrent sessions."""
    def session(numbers: list[int]) -> None:
        with daemon.client() as smtp:
            for i in numbers:
                smtp.sendmail(SENDER, ["lab@partner.example"], message(i))
    numbers = list(range(first, first + count))
    await asyncio.gather(*(asyncio.to_thread(session, numbers[k::connections])
                           for k in range(connections)))


def children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def scrape(daemon) -> dict[tuple[str, tuple], float]:
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def health(daemon) -> dict:
    url = f"http://127.0.0.1:{daemon.metrics_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())["checks"]
    except urllib.error.HTTPError as failing:          # 503 while a check fails
        return json.loads(failing.read())["checks"]


def stop_and_drain(daemon) -> tuple[int, list[str]]:
    """SIGTERM, wait for the exit code, then every notify datagram received."""
    daemon.proc.send_signal(signal.SIGTERM)
    code = daemon.proc.wait(120)
    daemon.notify.sock.setblocking(False)
    while True:
        try:
            daemon.notify.messages.append(daemon.notify.sock.recv(4096).decode())
        except BlockingIOError:
            break
    daemon.stop()
    return code, daemon.notify.messages


def ready_count(messages: list[str]) -> int:
    return sum("READY=1" in m for m in messages)


def queue_rows(daemon) -> list[dict]:
    return json.loads(daemon.phigate(["queue", "list", "--json"]).stdout)


@pytest.fixture
async def workers(daemon_factory, upstream_sink):
    daemon = await asyncio.to_thread(daemon_factory, upstream_sink.port, {"workers": WORKERS})
    yield daemon
    if daemon.proc.poll() is None:
        await asyncio.to_thread(daemon.stop)


async def test_mail_over_many_connections_reaches_the_sink_and_metrics_sum(workers,
                                                                         upstream_sink):
    daemon = workers
    pids = await until(lambda: len(children(daemon.proc.pid)) == WORKERS and
                       children(daemon.proc.pid), what="both workers")
    await submit(daemon, 0, 24, connections=6)
    await upstream_sink.wait_for(24, timeout=120)
    got = {email.message_from_bytes(m.data)["Message-ID"] for m in upstream_sink.messages}
    assert got == {f"<w{i}@client.smiledental.example>" for i in range(24)}
    shards = {owner(m.data.split(b" id ", 1)[1][:32].decode(), WORKERS)
              for m in upstream_sink.messages}
    print(f"\nqueue ids by shard: {sorted(shards)}")

    def settled() -> bool:
        metrics = scrape(daemon)
        return (metrics.get(("phigate_messages_total", (("outcome", "delivered"),))) == 24
                and metrics.get(("phigate_queue_messages", (("area", "queue"),))) == 0)
    await until(settled, what="/metrics: 24 deliveries summed over the workers, queue 0")
    metrics = await asyncio.to_thread(scrape, daemon)
    assert metrics[("phigate_submission_seconds_count", ())] == 24
    assert await asyncio.to_thread(health, daemon) == {"workers": True}

    code, notices = await asyncio.to_thread(stop_and_drain, daemon)
    assert code == 0
    assert ready_count(notices) == 1 and "STOPPING=1" in notices[-1], notices
    assert not [p for p in pids if alive(p)]
    stopped = [json.loads(line) for line in daemon.log_text().splitlines()
               if '"worker stopped"' in line]
    assert sorted((e["worker"], e["code"]) for e in stopped) == [(0, 0), (1, 0)]


async def test_queue_commands_work_across_shards(workers, upstream_sink):
    daemon = workers
    await upstream_sink.stop()                    # an outage: mail waits in the queue
    await submit(daemon, 100, 6, connections=3)
    rows = queue_rows(daemon)
    assert len(rows) == 6 and {r["area"] for r in rows} == {"queue"}
    print(f"\nqueued ids by shard: {sorted(owner(r['id'], WORKERS) for r in rows)}")
    held = []
    for shard in range(WORKERS):                  # one item of each shard, if there is one
        ids = [r["id"] for r in rows if owner(r["id"], WORKERS) == shard]
        if ids:
            assert daemon.phigate(["queue", "hold", ids[0]]).returncode == 0
            held.append(ids[0])
    areas = {r["id"]: r["area"] for r in queue_rows(daemon)}
    assert all(areas[i] == "hold" for i in held)
    shown = json.loads(daemon.phigate(["queue", "show", held[0], "--json"]).stdout)
    assert shown["area"] == "hold"
    for item_id in held:
        assert daemon.phigate(["queue", "release", item_id]).returncode == 0
    await upstream_sink.start()
    await upstream_sink.wait_for(6, timeout=120)
    await until(lambda: queue_rows(daemon) == [], what="an empty queue")
    assert await asyncio.to_thread(daemon.stop) == 0


async def test_a_killed_worker_is_restarted_and_mail_still_flows(workers, upstream_sink):
    daemon = workers
    before = await until(lambda: len(children(daemon.proc.pid)) == WORKERS and
                         children(daemon.proc.pid), what="both workers")
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    after = await until(lambda: (c := children(daemon.proc.pid)) and len(c) == WORKERS
                        and victim not in c and c, what="a replacement worker")
    assert len(after & before) == WORKERS - 1
    await until(lambda: health(daemon) == {"workers": True}, what="the replacement to be ready")
    await submit(daemon, 200, 8, connections=4)
    await upstream_sink.wait_for(8, timeout=120)
    code, notices = await asyncio.to_thread(stop_and_drain, daemon)
    assert code == 0 and ready_count(notices) == 1, notices
