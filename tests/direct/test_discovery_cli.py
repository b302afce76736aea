"""``phigate certs discover`` and ``certs publish-records`` as an administrator
runs them (a real subprocess), against the loopback Direct world."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.crypto.pki import write_p12, write_pem
from tests.direct.dpki import ca, leaf
from tests.direct.world import ZONE, build_world, sha
from tests.peers.nsd import free_udp_tcp_port


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with build_world(tmp_path_factory.mktemp("direct-cli-world")) as built:
        yield built


def phigate(config, *args, code=None):
    done = subprocess.run([sys.executable, "-m", "gateway", "-c", str(config), "certs", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in done.stderr + done.stdout
    if code is not None:
        assert done.returncode == code, done.stderr
    return done


def write_config(tmp_path, nameserver: str, anchors) -> object:
    config = tmp_path / "phigate.yaml"
    config.write_text(f"state_dir: {tmp_path / 'var'}\n"
                      "direct:\n"
                      f"  anchors: [{anchors}]\n"
                      f"  resolver: {{nameservers: ['{nameserver}'], timeout: 3s}}\n")
    return config


def test_discover_table_and_json(world, tmp_path):
    config = write_config(tmp_path, world.nsd.address, world.anchors_file)
    address = f"d3@mixed.{ZONE}"
    table = phigate(config, "discover", address, code=0).stdout
    assert table.splitlines()[0].split() == ["SOURCE", "LOCATION", "SHA256", "VERDICT", "REASON"]
    assert table.count("DNS address-bound") == 7
    assert "revoked" in table and "expired" in table
    assert f"1 usable certificate(s) for {address}" in table
    doc = json.loads(phigate(config, "discover", address, "--json", "--no-cache", code=0).stdout)
    assert {c["sha256"] for c in doc["chosen"]} == world.expect[address]
    assert len(doc["candidates"]) == 7
    assert {(c["source"], c["verdict"]) for c in doc["candidates"]} == {
        ("DNS address-bound", "valid"), ("DNS address-bound", "invalid")}
    assert doc["cached"] is False


def test_discover_nothing_usable_exits_1_with_empty_chosen(world, tmp_path):
    config = write_config(tmp_path, world.nsd.address, world.anchors_file)
    doc = json.loads(phigate(config, "discover", f"d5@stop.{ZONE}", "--json", code=1).stdout)
    assert doc["chosen"] == []
    assert [(c["source"], c["verdict"], c["reason"]) for c in doc["candidates"]] == [
        ("DNS address-bound", "invalid", "expired")]


def test_discover_never_a_traceback(world, tmp_path):
    dead = write_config(tmp_path, f"127.0.0.1:{free_udp_tcp_port()}", world.anchors_file)
    doc = json.loads(phigate(dead, "discover", f"d1@dns-addr.{ZONE}", "--json", code=1).stdout)
    assert doc["chosen"] == [] and doc["candidates"][0]["verdict"] == "error"
    assert phigate(dead, "discover", "not-an-address", code=1).stdout.count("not a Direct address")
    missing = write_config(tmp_path, world.nsd.address, tmp_path / "gone.pem")
    done = phigate(missing, "discover", f"d1@dns-addr.{ZONE}", code=2)
    assert "direct.anchors[0]" in done.stderr


def test_publish_records_served_by_nsd_are_discovered(nsd, tmp_path):
    """The lines printed are zone-file CERT records that a real DNS server
    serves and that discovery then chooses: address-bound for the address,
    domain-bound for the rest of the domain."""
    root = ca("Practice Root")
    anchors = write_pem(tmp_path / "practice-anchor.pem", root.cert)
    mine = leaf(root, email="dr.lee@practice.test")
    ours = leaf(root, dns="practice.test")
    config = write_config(tmp_path, nsd.address, anchors)
    for issued, bound in ((mine, "dr.lee@practice.test"), (ours, "@practice.test")):
        p12 = write_p12(tmp_path / "id.p12", issued, None)
        subprocess.run([sys.executable, "-m", "gateway", "-c", str(config), "certs", "identity",
                        "import", str(p12), "--for", bound], input=b"\n", check=True,
                       capture_output=True, timeout=120)
    records = ""
    for target, owner in (("dr.lee@practice.test", "dr.lee.practice.test."),
                          ("practice.test", "practice.test.")):
        out = phigate(config, "publish-records", target, code=0).stdout.strip().splitlines()
        assert len(out) == 1 and out[0].startswith(f"{owner} 3600 IN CERT PKIX 0 0 ")
        records += out[0] + "\n"
    assert phigate(config, "publish-records", "nobody@practice.test", code=1).stderr
    nsd.add_zone("practice.test", records)
    nsd.start()
    for address, issued in (("dr.lee@practice.test", mine), ("front.desk@practice.test", ours)):
        doc = json.loads(phigate(config, "discover", address, "--json", code=0).stdout)
        assert [c["sha256"] for c in doc["chosen"]] == [sha(issued)]
