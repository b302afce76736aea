"""``phigate policy test|check|eval|detectors`` as an administrator runs them."""
from __future__ import annotations

import json
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def phigate(*argv, config: Path | None = None):
    cmd = [sys.executable, "-m", "gateway"]
    if config is not None:
        cmd += ["-c", str(config)]
    return subprocess.run([*cmd, *argv], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture
def visit(tmp_path) -> Path:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "frontdesk@smiledental.example", "x", "Your visit"
    msg.set_content("Hi Maria Lopez, your crown on tooth #30 (D2740) is on Tuesday. "
                    "Chart 448812. Take amoxicillin 500mg one hour before. Quokkamarker.")
    path = tmp_path / "visit.eml"
    path.write_bytes(msg.as_bytes())
    return path


def test_policy_test_json_explains_each_recipient(visit):
    run = phigate("policy", "test", str(visit), "--from", "frontdesk@smiledental.example",
                  "--to", "dr@smiledental.example", "--to", "maria@mail.example", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["phi"] is True
    assert [(r["address"], r["action"], r["rule"], r["fallbacks"]) for r in out["recipients"]] == [
        ("dr@smiledental.example", "relay", "internal", []),
        ("maria@mail.example", "portal", "phi-to-others", [])]
    assert out["recipients"][1]["tried"][0] == {"rule": "internal", "matched": False,
                                                "failed": "recipient_list"}
    assert "Quokkamarker" not in run.stdout + run.stderr and "448812" not in run.stdout


def test_policy_test_table_and_alternative_policy(visit):
    strict = ROOT / "policies" / "examples" / "strict.yaml"
    run = phigate("policy", "test", str(visit), "--from", "a@smiledental.example",
                  "--to", "maria@mail.example", "--policy", str(strict))
    assert run.returncode == 0, run.stderr
    assert "PHI: yes" in run.stdout and "SMIME then hold" in run.stdout
    assert "phi-encrypted-or-held" in run.stdout


def test_policy_check_lists_rules_and_refuses_a_bad_file(tmp_path):
    run = phigate("policy", "check", "--json")
    assert run.returncode == 0, run.stderr
    rules = json.loads(run.stdout)["rules"]
    assert rules[0]["name"] == "internal" and rules[-1]["name"] == "default"
    bad = ROOT / "tests" / "policies" / "bad" / "fallback-weaker.yaml"
    run = phigate("policy", "check", "--policy", str(bad))
    assert run.returncode == 2
    assert f"{bad}: rules[0].fallbacks[0]: relay is weaker protection than smime" in run.stderr


def test_daemon_config_with_a_bad_policy_is_refused(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("policy: nowhere.yaml\nclassifier: {shadow: [not_a_detector]}\n")
    run = phigate("policy", "check", config=config)
    assert run.returncode == 2
    assert "classifier.shadow: unknown detector(s) for shadow mode: not_a_detector" in run.stderr
    config.write_text("policy: nowhere.yaml\n")
    run = phigate("policy", "check", config=config)
    assert run.returncode == 2 and "nowhere.yaml: file not found" in run.stderr


def test_policy_eval_prints_the_confusion_matrix():
    run = phigate("policy", "eval", str(ROOT / "tests" / "corpus"), "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)["halves"]
    assert list(result) == ["tune", "eval"]
    assert result["eval"]["precision"] >= 0.97 and result["eval"]["recall"] >= 0.99
    run = phigate("policy", "eval", str(ROOT / "tests" / "corpus"))
    assert run.stdout.split()[:2] == ["TUNE", "EVAL"]
    assert "precision" in run.stdout and "recall" in run.stdout


def test_detectors_are_listed():
    run = phigate("policy", "detectors", "--json")
    assert {"ssn", "npi", "cdt_code", "radiograph"} <= set(json.loads(run.stdout))
