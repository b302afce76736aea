"""``phigate portal …`` end to end: grant with Open Dental's fields prints a
working one-time link, list/JSON, reset, revoke, purge, and ``portal serve``
answering HTTP and stopping cleanly on SIGTERM."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import structlog

from gateway.cli import main
from gateway.portal.store import open_store, sqlite_url
from tests.peers.ports import free_port

GRANT = ["--first-name", "Ana", "--last-name", "Silva", "--birth-date", "1975-06-30",
         "--phone", "555-0101", "--address", "1 Main St", "--provider", "Dr Smith"]


@pytest.fixture(autouse=True)
def restore_logging():
    """The CLI configures structlog onto the captured stderr; undo it afterwards."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def config_file(tmp_path) -> Path:
    port = free_port()
    path = tmp_path / "phigate.yaml"
    path.write_text(f"state_dir: {tmp_path / 'state'}\n"
                    f"portal:\n  enabled: true\n  address: 127.0.0.1:{port}\n"
                    f"  base_url: http://127.0.0.1:{port}\n  secure_cookies: false\n")
    return path


def run(config_file, *argv) -> int:
    return main(["-c", str(config_file), "portal", *argv])


def test_grant_list_reset_revoke_purge(config_file, tmp_path, capsys):
    assert run(config_file, "grant", "ana@mail.example", *GRANT) == 0
    out = capsys.readouterr().out
    assert re.search(r"/register/[A-Za-z0-9_-]{40,}", out)
    assert run(config_file, "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["email"], r["provider"], r["registered"], r["status"]) for r in rows] == \
        [("ana@mail.example", "Dr Smith", False, "active")]
    store = open_store(sqlite_url(tmp_path / "state" / "portal.db"))
    account = store.account_by_email_sync("ana@mail.example")
    assert account["birth_date"] == "1975-06-30" and account["address"] == "1 Main St"
    token = out.rsplit("/register/", 1)[1].split()[0]
    assert store.peek_link_sync(token, "register")["id"] == account["id"]
    store.set_account_sync(account["id"], password_hash="x", locked_until=9e12)
    assert run(config_file, "reset", "ana@mail.example") == 0
    assert "/reset/" in capsys.readouterr().out
    assert store.account_sync(account["id"])["locked_until"] == 0.0
    assert run(config_file, "revoke", "ana@mail.example") == 0
    capsys.readouterr()
    assert store.account_sync(account["id"])["status"] == "revoked"
    assert store.peek_link_sync(token, "register") is None
    assert run(config_file, "list") == 0
    assert "revoked" in capsys.readouterr().out
    assert run(config_file, "purge") == 0
    assert "0 expired" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run(config_file, "grant", "x@mail.example", *GRANT[:-2])       # provider missing
    with pytest.raises(SystemExit):
        run(config_file, "revoke", "nobody@mail.example")
    store.close()


def test_serve_answers_and_stops_on_sigterm(config_file):
    port = int(re.search(r"127\.0\.0\.1:(\d+)", config_file.read_text()).group(1))
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "-c", str(config_file), "portal",
                             "serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "portal listening" in proc.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as r:
            page = r.read().decode()
            assert r.status == 200 and 'name="csrf"' in page
            assert "script-src" not in r.headers["Content-Security-Policy"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_reset_can_clear_two_step_sign_in(config_file, tmp_path, capsys):
    """A patient who lost their phone: staff reset the password and TOTP."""
    assert run(config_file, "grant", "bo@mail.example", *GRANT) == 0
    key = (tmp_path / "state" / "portal-totp.key").read_bytes()     # made 0600 by grant
    store = open_store(sqlite_url(tmp_path / "state" / "portal.db"), totp_key=key)
    account = store.account_by_email_sync("bo@mail.example")
    store.set_account_sync(account["id"], password_hash="x", totp_secret="A" * 32,
                           totp_last_step=5)
    assert run(config_file, "reset", "bo@mail.example") == 0
    assert store.account_sync(account["id"])["totp_secret"] == "A" * 32     # kept by default
    assert run(config_file, "reset", "bo@mail.example", "--clear-totp") == 0
    out = capsys.readouterr().out
    assert "two-step sign-in turned off" in out and "/reset/" in out
    stored = store.account_sync(account["id"])
    assert stored["totp_secret"] is None and stored["totp_last_step"] is None
    store.close()


async def test_send_puts_the_link_into_the_queue_with_or_without_the_daemon(
        tmp_path, upstream_sink, capsys):
    """``grant --send`` with no daemon running commits the mail to the spool
    itself (no attempt started); the gateway delivers it when it starts.
    ``reset --send`` while it runs goes through its control socket."""
    import asyncio

    from gateway.app import Gateway
    from gateway.config import load_config
    from gateway.queue.store import QUEUE, QueueStore

    port = free_port()
    config_file = tmp_path / "phigate.yaml"
    config_file.write_text(
        f"state_dir: {tmp_path / 'state'}\nqueue: {{dir: {tmp_path / 'spool'}}}\n"
        "listen: {submission: {address: '127.0.0.1:0'}}\nmetrics: {address: null}\n"
        f"upstream: {{host: 127.0.0.1, port: {upstream_sink.port}, tls: none}}\n"
        f"portal:\n  address: 127.0.0.1:{port}\n  base_url: http://127.0.0.1:{port}\n"
        "  notice_from: portal@smiledental.example\n")

    async def cli(*argv) -> int:       # the CLI runs its own event loop: give it a thread
        return await asyncio.to_thread(run, config_file, *argv)

    assert await cli("grant", "ana@mail.example", *GRANT, "--send") == 0
    [queued] = QueueStore(tmp_path / "spool").ids(QUEUE)
    assert f"queued as {queued}" in capsys.readouterr().out
    assert not list((tmp_path / "spool" / "active").iterdir())
    assert upstream_sink.messages == []

    gateway = Gateway(load_config(config_file), config_file)
    await gateway.start()
    try:
        await upstream_sink.wait_for(1, timeout=30)
        assert upstream_sink.messages[0].rcpt_tos == ["ana@mail.example"]
        assert b"/register/" in upstream_sink.messages[0].data
        assert await cli("reset", "ana@mail.example", "--send") == 0
        await upstream_sink.wait_for(2, timeout=30)
        assert b"/register/" in upstream_sink.messages[1].data     # not registered yet
    finally:
        await gateway.stop(grace=5)
