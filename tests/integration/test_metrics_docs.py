"""Every metric docs/operations.md names is exported by a running gateway,
and the gauges move: ``phigate_smtp_connections`` follows the open
submission sessions, ``phigate_queue_messages{area="queue"}`` the spool."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import Config
from tests.peers.dialog import Dialog
from tests.peers.wait import until

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"


def metric_value(gw: Gateway, sample: str) -> float | None:
    for line in gw.metrics.render().decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return None


@pytest.fixture
async def gw(tmp_path):
    gateway = Gateway(Config.model_validate({
        "state_dir": str(tmp_path / "var"), "auth": {"users_file": str(tmp_path / "users.yaml")},
        "listen": {"submission": {"address": "127.0.0.1:0"}},
        "queue": {"dir": str(tmp_path / "spool")}, "metrics": {"address": None},
        "smtp": {"hostname": "gw.smiledental.example"}}))
    await gateway.start()
    yield gateway
    await gateway.stop(grace=5)


async def test_every_documented_metric_is_exported(gw):
    documented = set(re.findall(r"\b(phigate_[a-z_]+)", OPERATIONS.read_text()))
    assert documented, "docs/operations.md names no metric"
    exported = set(re.findall(r"^# TYPE (phigate_[a-z_]+)", gw.metrics.render().decode(),
                              re.MULTILINE))
    # counters are documented as NAME_total, histograms by their base name
    names = exported | {f"{n}_total" for n in exported}
    assert documented <= names, f"documented but not exported: {sorted(documented - names)}"
    assert metric_value(gw, 'phigate_queue_messages{area="queue"}') == 0


async def test_connections_gauge_follows_open_sessions(gw):
    assert metric_value(gw, "phigate_smtp_connections") == 0
    host, port = gw.smtp.address
    first = await Dialog.open(host, port)
    await first.greet()
    second = await Dialog.open(host, port)
    await second.greet()
    await until(lambda: metric_value(gw, "phigate_smtp_connections") == 2, what="2 sessions")
    await first.close()
    await until(lambda: metric_value(gw, "phigate_smtp_connections") == 1, what="1 session")
    await second.close()
    await until(lambda: metric_value(gw, "phigate_smtp_connections") == 0, what="no session")
