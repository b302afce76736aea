"""``phigate direct status [--json]`` reads the tracking state files (no
daemon needed): open recipients only, as a table and as JSON."""
from __future__ import annotations

import json
import subprocess
import sys

import yaml

from gateway.direct.tracking import MdnTracker


def phigate(config, *argv):
    return subprocess.run([sys.executable, "-m", "gateway", "-c", str(config), *argv],
                          capture_output=True, text=True, check=True, timeout=60)


def test_status_lists_open_recipients(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"state_dir": "var", "direct": {"mdn_timeout": "30m"}}))
    empty = phigate(config, "direct", "status")
    assert "no Direct message is waiting" in empty.stdout
    tracker = MdnTracker(tmp_path / "var" / "direct" / "tracking", 1800)
    tracker.track("<m1@smile.example>", "frontdesk@direct.smile.example", "q1",
                  ["a@direct.ortho.example", "b@direct.ortho.example"], True)
    tracker.report("<m1@smile.example>", "a@direct.ortho.example", "processed")
    tracker.track("<m2@smile.example>", "frontdesk@direct.smile.example", "q2",
                  ["c@direct.ortho.example"], False)
    tracker.report("<m2@smile.example>", "c@direct.ortho.example", "processed")   # done
    rows = json.loads(phigate(config, "direct", "status", "--json").stdout)["pending"]
    assert sorted((r["queue_id"], r["recipient"], r["state"]) for r in rows) == [
        ("q1", "a@direct.ortho.example", "processed"), ("q1", "b@direct.ortho.example", "pending")]
    table = phigate(config, "direct", "status").stdout.splitlines()
    assert table[0].split()[:4] == ["QUEUE", "ID", "SENDER", "RECIPIENT"]
    assert len(table) == 3 and all("q1" in line for line in table[1:])
