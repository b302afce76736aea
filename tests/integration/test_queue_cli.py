"""`phigate queue …` against a live daemon (through its control socket) and
against a stopped one (straight on the spool)."""
import asyncio
import json

import pytest

from gateway.model import Action, Decision, Envelope, Plan, Verdict
from gateway.queue.dispatcher import Dispatcher
from gateway.queue.store import QueueStore
from tests.integration.test_daemon_relay import message, submit

pytestmark = pytest.mark.slow


def cli_json(daemon, *argv):
    run = daemon.phigate([*argv, "--json"], check=False)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


async def test_live_daemon_hold_release_retry(daemon_factory, upstream_sink):
    port = upstream_sink.port
    await upstream_sink.stop()
    daemon = daemon_factory(port, extra={"queue": {"retry": {"min": "1h", "max": "2h"}}})
    await submit(daemon, [message(1)])
    (item_id,) = daemon.queue_ids()

    async def deferred():
        while True:
            rows = cli_json(daemon, "queue", "list")
            if rows and rows[0]["last_error"]:
                return rows[0]
            await asyncio.sleep(0.1)
    row = await asyncio.wait_for(deferred(), 30)
    assert row["id"] == item_id and row["area"] == "queue" and row["status"] == {"pending": 1}

    table = daemon.phigate(["queue", "list"]).stdout
    assert item_id in table and "ID" in table.splitlines()[0]

    assert cli_json(daemon, "queue", "hold", item_id) == {"ok": True}
    assert cli_json(daemon, "queue", "list")[0]["area"] == "hold"
    shown = cli_json(daemon, "queue", "show", item_id)
    assert shown["area"] == "hold" and shown["recipients"][0]["status"] == "held"

    await upstream_sink.start()
    assert cli_json(daemon, "queue", "release", item_id) == {"ok": True, "action": "relay"}
    await upstream_sink.wait_for(1, timeout=30)       # released → attempted at once
    assert await asyncio.to_thread(daemon.stop) == 0


async def test_retry_skips_the_backoff(daemon_factory, upstream_sink):
    port = upstream_sink.port
    await upstream_sink.stop()
    daemon = daemon_factory(port, extra={"queue": {"retry": {"min": "1h", "max": "2h"}}})
    await submit(daemon, [message(2)])
    (item_id,) = daemon.queue_ids()
    await upstream_sink.start()
    assert cli_json(daemon, "queue", "retry", item_id) == {"ok": True}
    await upstream_sink.wait_for(1, timeout=30)
    assert await asyncio.to_thread(daemon.stop) == 0


async def test_offline_show_release_and_drop(tmp_path, daemon_factory):
    daemon = daemon_factory(None, start=False)
    store = QueueStore(daemon.spool)
    env = Envelope("frontdesk@smiledental.example", ("pat@home.example", "x@home.example"),
                   received_at=1.0)
    plan = Plan(Verdict(phi=True), tuple(
        Decision(r, Action.HOLD, "phi-in-subject", reason="PHI in the subject line")
        for r in env.rcpt_tos))
    item = await store.put(env, b"Subject: x\r\n\r\nbody\r\n", plan)
    await Dispatcher(store, {})._attempt(item.id)       # applies the hold decision

    text = daemon.phigate(["queue", "show", item.id]).stdout
    assert "PHI in the subject line" in text and "phi-in-subject" in text
    assert cli_json(daemon, "queue", "list", "--area", "hold")[0]["id"] == item.id
    # no daemon: applied to the spool directly; PHI defaults to the portal
    assert cli_json(daemon, "queue", "release", item.id) == {"ok": True, "action": "portal"}
    assert cli_json(daemon, "queue", "list")[0]["area"] == "queue"
    assert cli_json(daemon, "queue", "drop", item.id) == {"ok": True}
    assert cli_json(daemon, "queue", "list") == []
    missing = daemon.phigate(["queue", "show", "nope"], check=False)
    assert missing.returncode == 1 and "no queue item" in missing.stderr
