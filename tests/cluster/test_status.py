"""The cluster view from the database: three nodes beat with their real
fingerprints (config, policy, users file, certificate store, portal secret
and TOTP key on disk); a node whose policy or certificate store differs is
flagged with what drifted, and so is one left with its own generated portal
secret; a node whose heartbeat is old is dead, with its spool count;
``phigate cluster status`` shows it as a table and as JSON and exits 1."""
from __future__ import annotations

import json
import subprocess
import sys

import yaml

from gateway.cluster import beat, cluster_status, fingerprint
from gateway.config import load_config

POLICY = "rules: []\ndefault: {action: relay}\n"


def node_config(tmp_path, name: str, url: str):
    base = tmp_path / name
    (base / "certs").mkdir(parents=True)
    (base / "certs" / "partner.pem").write_text("certificate bytes")
    (base / "policy.yaml").write_text(POLICY)
    (base / "users.yaml").write_text("users: {}\n")
    shared = tmp_path / "shared"
    if not shared.exists():
        shared.mkdir()
        (shared / "secret").write_text("s" * 40)
        (shared / "totp.key").write_text("k" * 44)
        for f in shared.iterdir():
            f.chmod(0o600)
    path = base / "config.yaml"
    path.write_text(yaml.safe_dump({
        "state_dir": str(base / "var"), "policy": str(base / "policy.yaml"),
        "auth": {"users_file": str(base / "users.yaml")},
        "smime": {"store_dir": str(base / "certs")},
        "portal": {"database_url": url, "node_name": name,
                   "secret_file": str(tmp_path / "shared" / "secret"),
                   "totp_key_file": str(tmp_path / "shared" / "totp.key")}}))
    return path


def test_drift_and_dead_nodes(tmp_path, portal_store):
    url = portal_store.engine.url.render_as_string(hide_password=False)
    paths = {n: node_config(tmp_path, n, url) for n in ("alpha", "beta", "gamma")}

    def beat_all(now):
        for name, path in paths.items():
            beat(portal_store.engine, name, "1.0", 0.0, fingerprint(load_config(path), path),
                 spool=2 if name == "gamma" else 0, now=now)

    beat_all(1000.0)
    nodes = cluster_status(portal_store.engine, dead_after=90, now=1010.0)
    assert [(n["name"], n["dead"], n["drift"]) for n in nodes] == [
        ("alpha", False, []), ("beta", False, []), ("gamma", False, [])]
    assert len({n["config_sha256"] for n in nodes}) == 3        # per node by nature

    (tmp_path / "beta" / "policy.yaml").write_text(POLICY.replace("relay", "hold"))
    (tmp_path / "gamma" / "certs" / "partner.pem").unlink()
    beat_all(1000.0)
    beat(portal_store.engine, "alpha", "1.0", 0.0,
         fingerprint(load_config(paths["alpha"]), paths["alpha"]), spool=0, now=1100.0)
    nodes = {n["name"]: n for n in cluster_status(portal_store.engine, 90, now=1110.0)}
    assert nodes["beta"]["drift"] == ["policy"] and nodes["gamma"]["drift"] == ["certs"]
    assert nodes["alpha"]["drift"] == [] and not nodes["alpha"]["dead"]
    assert nodes["gamma"]["dead"] and nodes["gamma"]["spool"] == 2

    # a node left with its own generated portal secret (no secret_file)
    config = yaml.safe_load(paths["beta"].read_text())
    del config["portal"]["secret_file"]
    paths["beta"].write_text(yaml.safe_dump(config))
    beat_all(1200.0)
    nodes = {n["name"]: n for n in cluster_status(portal_store.engine, 90, now=1210.0)}
    assert nodes["beta"]["drift"] == ["policy", "secrets"]

def test_cli(tmp_path, postgres_url):
    from gateway.portal.store import open_store
    store = open_store(postgres_url)
    path = node_config(tmp_path, "alpha", postgres_url)
    run = [sys.executable, "-m", "gateway", "-c", str(path), "cluster", "status"]
    empty = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert empty.returncode == 0 and "no node has registered" in empty.stdout
    beat(store.engine, "alpha", "1.0", 0.0, fingerprint(load_config(path), path), spool=3,
         now=1.0)
    store.close()
    table = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert table.returncode == 1
    assert table.stdout.splitlines()[0].split() == ["NODE", "VERSION", "HEARTBEAT", "SPOOL",
                                                    "CONFIG", "POLICY", "USERS", "CERTS",
                                                    "STATUS"]
    assert "DEAD, 3 in spool" in table.stdout
    out = subprocess.run(run + ["--json", "--dead-after", "100000w"], capture_output=True,
                         text=True, timeout=60, check=False)
    data = json.loads(out.stdout)
    assert out.returncode == 0 and data["nodes"][0]["name"] == "alpha"
    assert data["nodes"][0]["dead"] is False and len(data["nodes"][0]["policy_sha256"]) == 64
