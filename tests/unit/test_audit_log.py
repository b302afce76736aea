"""Audit and log lines as ``configure_logging`` writes them: the exact JSON of
an audit line (what structlog itself renders), the whitelist, order in the
file across warnings and stdlib records, one write per loop iteration inside
the event loop and at once outside it, the flush at exit and before a fork,
stderr output, and ``capture_logs`` still seeing audit events."""
import asyncio
import io
import json
import logging
import os
import select
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.audit import audit, configure_logging, get_logger
from gateway.audit import setup as audit_setup
from gateway.audit.sink import LineSink, write_limit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch):
    """configure_logging is process-wide: put structlog and the root logger back."""
    saved = structlog.get_config()
    saved["processors"] = list(saved["processors"])
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(audit_setup, "_installed", audit_setup._installed)
    yield
    audit_setup.flush_logs()
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def events(path: Path) -> list[str]:
    return [line["event"] if "event" in line else line["msg"] for line in lines(path)]


def test_audit_line_is_what_structlog_renders(tmp_path):
    log = tmp_path / "phigate.log"
    configure_logging("info", log)
    audit("delivered", queue_id="Q1", recipient="a@b.example", code=250, attempt=1)
    structlog.get_logger("audit").info("delivered", audit=True, queue_id="Q1",
                                       recipient="a@b.example", code=250, attempt=1)
    ours, structlogs = log.read_text().splitlines()
    assert list(json.loads(ours)) == ["audit", "queue_id", "recipient", "code", "attempt",
                                      "event", "level", "timestamp"]
    assert json.loads(ours)["timestamp"].endswith("Z")
    strip = [line.rsplit(', "timestamp": ', 1)[0] for line in (ours, structlogs)]
    assert strip[0] == strip[1] == ('{"audit": true, "queue_id": "Q1", "recipient": '
                                    '"a@b.example", "code": 250, "attempt": 1, '
                                    '"event": "delivered", "level": "info"')


def test_whitelist_drops_unknown_fields_or_raises_when_strict(tmp_path, monkeypatch):
    log = tmp_path / "phigate.log"
    configure_logging("info", log)
    with pytest.raises(ValueError, match="unknown audit event"):
        audit("no_such_event", queue_id="Q1")
    monkeypatch.setenv("PHIGATE_STRICT_AUDIT", "1")
    with pytest.raises(ValueError, match="not allowed"):
        audit("queued", queue_id="Q1", subject="x")
    monkeypatch.delenv("PHIGATE_STRICT_AUDIT")
    audit("queued", queue_id="Q1", subject="x", body="y")
    (line,) = lines(log)
    assert line["queue_id"] == "Q1" and line["dropped_fields"] == 2
    assert "subject" not in line and "body" not in line


def test_level_warning_drops_audit_lines(tmp_path):
    log = tmp_path / "phigate.log"
    configure_logging("warning", log)
    audit("queued", queue_id="Q1")
    get_logger("t").warning("disk_low")
    assert events(log) == ["disk_low"]


def test_outside_the_loop_each_line_is_written_at_once(tmp_path):
    log = tmp_path / "phigate.log"
    configure_logging("info", log)
    audit("queued", queue_id="Q1")
    assert events(log) == ["queued"]
    get_logger("t").info("note")
    assert events(log) == ["queued", "note"]


def test_in_the_loop_lines_wait_for_the_iteration_and_keep_order_across_warnings(tmp_path):
    log = tmp_path / "phigate.log"
    configure_logging("info", log)

    async def relay():
        audit("received", queue_id="Q1")
        audit("queued", queue_id="Q1")
        assert log.read_text() == ""                 # batched: nothing written yet
        get_logger("t").warning("slow_upstream")     # flushes the batch before it
        assert events(log) == ["received", "queued", "slow_upstream"]
        audit("attempt", queue_id="Q1")
        logging.getLogger("mail.log").error("stdlib_error")
        audit("delivered", queue_id="Q1")
        assert events(log)[-2:] == ["attempt", "stdlib_error"]
        await asyncio.sleep(0)                       # the next iteration writes the rest
        assert events(log)[-1] == "delivered"

    asyncio.run(relay())
    assert events(log) == ["received", "queued", "slow_upstream", "attempt",
                           "stdlib_error", "delivered"]


def test_lifecycle_and_access_events_are_written_at_once(tmp_path):
    """systemd hears READY=1 right after config_loaded; a client its 535 after auth_failed."""
    log = tmp_path / "phigate.log"
    configure_logging("info", log)

    async def reload_and_refuse():
        audit("queued", queue_id="Q1")
        audit("config_loaded", path="/etc/phigate/config.yaml")
        assert events(log) == ["queued", "config_loaded"]
        audit("delivered", queue_id="Q1")
        audit("auth_failed", auth_user="frontdesk", delay=0.5)
        assert events(log) == ["queued", "config_loaded", "delivered", "auth_failed"]

    asyncio.run(reload_and_refuse())


def test_a_full_batch_is_written_without_waiting_for_the_loop(tmp_path):
    log = tmp_path / "phigate.log"
    configure_logging("info", log)

    async def burst():
        for n in range(2000):                        # ~200 KB of lines, no await
            audit("queued", queue_id=f"Q{n}")
        assert log.read_text()                       # 64 KiB went out without a loop turn
        await asyncio.sleep(0)

    asyncio.run(burst())
    assert [line["queue_id"] for line in lines(log)] == [f"Q{n}" for n in range(2000)]


class Writes(io.StringIO):
    """A text stream that keeps each write() apart."""

    def __init__(self):
        super().__init__()
        self.writes: list[str] = []

    def write(self, text):
        self.writes.append(text)
        return super().write(text)


def test_on_a_pipe_or_socket_each_write_is_whole_lines_up_to_pipe_buf(tmp_path):
    with open(tmp_path / "phigate.log", "a") as regular:
        assert write_limit(regular) is None
    read_end, write_end = os.pipe()
    with os.fdopen(read_end), os.fdopen(write_end, "w") as pipe:
        assert write_limit(pipe) == select.PIPE_BUF
    stream = Writes()
    sink = LineSink(stream, select.PIPE_BUF)
    lines_in = [f"{n:04d}" + "x" * 295 + "\n" for n in range(40)] + ["y" * 5000 + "\n", "z\n"]

    async def burst():
        for line in lines_in:
            sink.write(line)
        assert stream.writes == []
    asyncio.run(burst())
    assert "".join(stream.writes) == "".join(lines_in)
    assert all(w.endswith("\n") for w in stream.writes)
    assert [len(w) for w in stream.writes] == [13 * 300, 13 * 300, 13 * 300, 300, 5001, 2]


def test_lines_from_another_thread_come_after_the_pending_batch(tmp_path):
    log = tmp_path / "phigate.log"
    configure_logging("info", log)

    async def mixed():
        audit("queued", queue_id="Q1")
        await asyncio.to_thread(audit, "held", queue_id="Q2")

    asyncio.run(mixed())
    assert [line["queue_id"] for line in lines(log)] == ["Q1", "Q2"]


def test_capture_logs_sees_audit_events_after_configure_logging(tmp_path):
    log = tmp_path / "phigate.log"
    configure_logging("info", log)
    with capture_logs() as captured:
        audit("queued", queue_id="Q1")
    assert captured == [{"audit": True, "queue_id": "Q1", "event": "queued",
                         "log_level": "info"}]
    assert log.read_text() == ""
    audit("delivered", queue_id="Q1")                # configuration restored: the file again
    assert events(log) == ["delivered"]


SCRIPT = """
import asyncio, logging, os, sys
from pathlib import Path
from gateway.audit import audit, configure_logging
configure_logging("info", Path(sys.argv[1]) if sys.argv[1] != "-" else None)

async def main():
    audit("started", listener="smtp")
    audit("queued", queue_id="Q1")
    {tail}

loop = asyncio.new_event_loop()
loop.run_until_complete(main())
"""


def run_script(tail: str, target: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(SCRIPT).replace("{tail}", tail)
    done = subprocess.run([sys.executable, "-c", code, target], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done


def test_lines_still_batched_at_exit_are_written(tmp_path):
    """SystemExit leaves the loop before the iteration that would write them."""
    log = tmp_path / "phigate.log"
    run_script("raise SystemExit(0)", str(log))
    assert events(log) == ["started", "queued"]


def test_stderr_output_gets_the_same_lines():
    done = run_script("raise SystemExit(0)", "-")
    assert [json.loads(line)["event"] for line in done.stderr.splitlines()] == [
        "started", "queued"]
    assert done.stdout == ""


def test_a_forked_child_does_not_repeat_the_batch(tmp_path):
    log = tmp_path / "phigate.log"
    run_script(textwrap.dedent("""
        pid = os.fork()
        if pid == 0:
            logging.shutdown()                       # the child flushes what it holds
            os._exit(0)
        os.waitpid(pid, 0)
    """).replace("\n", "\n    "), str(log))
    assert events(log) == ["started", "queued"]


def test_the_short_road_renders_what_the_processors_render(tmp_path, monkeypatch):
    """``write_info`` skips structlog's processors for plain events; with the clock
    fixed, its line equals the processors' for plain values, and a value JSON cannot
    take (or a bound context variable) goes through the processors."""
    import datetime
    import random

    configure_logging("info", tmp_path / "phigate.log")
    installed = audit_setup._installed
    now = 1_796_000_000_123_456_000
    monkeypatch.setattr(audit_setup.time, "time_ns", lambda: now)
    monkeypatch.setattr(structlog.processors.datetime, "datetime", type(
        "Frozen", (datetime.datetime,),
        {"now": classmethod(lambda cls, tz=None: datetime.datetime.fromtimestamp(now / 1e9, tz))}))

    def processors(event_dict):
        for processor in installed.expected:
            event_dict = processor(installed.logger, "info", event_dict)
        return event_dict

    events = [{"audit": True, "queue_id": "Q", "recipients": 2, "phi": False,
               "decisions": ["relay:default"], "auth_user": None, "event": "queued"},
              {"audit": True, "reason": "550 5.1.1 \u00fcnknown", "delay": 1.5, "event": "bounced"},
              {"audit": True, "path": Path("/x"), "event": "config_loaded"}]
    for event in events:
        assert audit_setup._render_info(installed, dict(event)) == processors(dict(event))
    structlog.contextvars.bind_contextvars(listener="submission")
    try:
        line = audit_setup._render_info(installed, dict(events[0]))
        assert json.loads(line)["listener"] == "submission"
    finally:
        structlog.contextvars.clear_contextvars()

    rng = random.Random(5)
    for _ in range(5000):
        ns = rng.randrange(4 * 10**18) // 1000 * 1000 + rng.choice([0, rng.randrange(1000)])
        sec, rest = divmod(ns, 10**9)
        expected = (datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
                    + datetime.timedelta(seconds=sec, microseconds=rest // 1000))
        assert audit_setup.utc_timestamp(ns) == expected.isoformat().replace("+00:00", "Z")
