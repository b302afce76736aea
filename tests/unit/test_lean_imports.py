"""A process loads only what its job needs (issue 13: at most 150 MiB over the daemon
and its classifier children). A relay-only ``phigate run`` must not import the portal's,
Direct's or the inbound watcher's libraries; the classifier child must not import the
policy engine, the config (pydantic, YAML) or structlog. Each check runs in a fresh
interpreter, and a parser the classifier imports on first use that fails to import still
fails closed."""
from __future__ import annotations

import json
import struct
import subprocess
import sys

import yaml

from gateway.policy.classifiers import build_classifier
from tests import mimegen

ROLE_LIBRARIES = ("sqlalchemy", "alembic", "mako", "aiohttp", "jinja2", "ldap3", "dns",
                  "imapclient", "aioimaplib", "segno", "nh3", "pygments", "psycopg")

DAEMON = """
import json, sys
from gateway.cli import build_parser, command_of
argv = ["-c", sys.argv[1], "run"]
args = build_parser(command_of(argv)).parse_args(argv)
from gateway.config import load_config
from gateway.app import Gateway, build_policy
config = load_config(args.config_path)
build_policy(config, isolated=True)
gateway = Gateway(config, args.config_path)
print(json.dumps(sorted(sys.modules)))
"""


def relay_only_config(tmp_path) -> dict:
    users = tmp_path / "users.yaml"
    users.write_text("users: {}\n")
    users.chmod(0o600)
    return {"state_dir": str(tmp_path / "var"), "workers": 1,
            "listen": {"submission": {"address": "127.0.0.1:0"}},
            "auth": {"trusted_networks": ["127.0.0.0/8"], "users_file": str(users)},
            "upstream": {"host": "127.0.0.1", "port": 25, "tls": "none"},
            "queue": {"dir": str(tmp_path / "spool")},
            "smtp": {"hostname": "lean.localdomain"},
            "metrics": {"address": None},
            "logging": {"file": str(tmp_path / "phigate.log")}}


def top_level(modules) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_relay_only_daemon_loads_no_role_libraries(tmp_path):
    path = tmp_path / "phigate.yaml"
    path.write_text(yaml.safe_dump(relay_only_config(tmp_path)))
    done = subprocess.run([sys.executable, "-c", DAEMON, str(path)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert {"gateway.app", "gateway.ingress.smtp", "aiosmtpd"} <= modules  # the list is real
    assert not top_level(modules) & set(ROLE_LIBRARIES)
    assert not {m for m in modules if m.startswith(("gateway.portal", "gateway.direct",
                                                    "gateway.cluster", "gateway.cli.portal",
                                                    "gateway.cli.certs"))}
    # it classifies in child processes: no patterns, word lists or RE2 of its own
    assert not modules & {"gateway.policy.classifiers.classifier", "names", "re2",
                          "gateway.policy.classifiers.patterns",
                          "gateway.policy.classifiers.lexicons"}


def test_classifier_child_loads_only_the_classifier():
    """The real child (``python -X importtime -m gateway.policy.classifiers.child``)
    classifies one message; its import log must not name the policy engine or the config."""
    config = json.dumps({"shadow": [], "timeout": 10.0, "memory": 256 << 20})
    raw = mimegen.message(mimegen.text("Lunch is on Friday."))
    header = struct.Struct(">Q")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gateway.policy.classifiers.child", config],
        input=header.pack(len(raw)) + raw, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    # frames: the empty "ready" one, then the verdict's
    (size,) = header.unpack(done.stdout[header.size:2 * header.size])
    verdict = json.loads(done.stdout[2 * header.size:2 * header.size + size])
    assert verdict["phi"] is False
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.decode().splitlines()
               if line.startswith("import time:") and "|" in line}
    assert "gateway.policy.classifiers.scoring" in modules  # the log is real
    assert not top_level(modules) & {"pydantic", "yaml", "structlog", "asyncio",
                                     "pypdf", *ROLE_LIBRARIES}
    assert not modules & {"gateway.config", "gateway.audit", "gateway.policy.engine"}


def test_parser_that_fails_to_import_on_first_use_fails_closed(monkeypatch):
    """pypdf is imported on the first PDF; if that import fails the part is unreadable."""
    monkeypatch.setitem(sys.modules, "pypdf", None)  # `import pypdf` raises ImportError
    raw = mimegen.message(mimegen.multipart("mixed", [
        mimegen.text("See attached."),
        mimegen.attachment("application/pdf", "letter.pdf", b"%PDF-1.4\n%%EOF\n")], "bb"))
    verdict = build_classifier().classify(raw)
    assert verdict.phi is True
    assert any(f.detector == "unreadable" for f in verdict.findings)
