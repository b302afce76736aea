"""``phigate portal pending`` / ``approve``: an account made by a deposit (no
birth date on file) waits for staff; approving it (with or without a birth
date) lets registration go on and prints a fresh link."""
from __future__ import annotations

import json
import re

import pytest
import structlog

from gateway.cli import main
from gateway.config.models import PortalConfig
from gateway.portal.service import open_portal_store


@pytest.fixture(autouse=True)
def restore_logging():
    yield
    structlog.reset_defaults()


def test_pending_lists_and_approve_releases(tmp_path, capsys):
    config = tmp_path / "phigate.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nportal:\n  enabled: true\n")
    store = open_portal_store(PortalConfig(enabled=True), tmp_path / "state")
    deposited = store.upsert_account_sync("walkin@mail.example")      # as a deposit makes it
    store.upsert_account_sync("known@mail.example", birth_date="1970-01-01")

    def run(*argv):
        return main(["-c", str(config), "portal", *argv])
    assert run("pending", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["email"], r["reason"]) for r in rows] == [
        ("walkin@mail.example", "no date of birth on file")]
    assert run("pending") == 0
    assert "walkin@mail.example" in capsys.readouterr().out
    assert run("approve", "walkin@mail.example", "--birth-date", "1990-05-06") == 0
    out = capsys.readouterr().out
    assert "identity confirmed" in out and re.search(r"/register/[A-Za-z0-9_-]{40,}", out)
    assert store.account_sync(deposited["id"])["birth_date"] == "1990-05-06"
    assert run("pending", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    with pytest.raises(SystemExit, match="no portal account"):
        run("approve", "nobody@mail.example")
    store.close()
