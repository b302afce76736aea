"""Direct between two phigate daemons on loopback: two practices, two Direct
domains, each trusting only the other's CA (separate anchors). The sender's
daemon signs and encrypts to the receiver's certificate, relays to the
receiver's Direct MX listener; the receiver opens, verifies, delivers to its
mailbox sink and returns signed, encrypted ``processed`` and (final delivery
asked for) ``dispatched`` MDNs to the sender's Direct MX, which complete the
tracking. With the receiver down past
``mdn_timeout`` the sender gets a failure DSN, and the ``processed`` MDN that
comes after the receiver is back is not passed on.

Certificates: in the round trip each daemon discovers the other's
certificate as a DNS CERT record served by NSD (``direct.resolver``) and
validates it against its own Direct anchors; in the timeout case they are
imported by hand (``phigate certs import``, the other supported source) and
discovery asks a port where nothing answers."""
from __future__ import annotations

import asyncio
import base64
import json
import smtplib
import time

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.crypto.direct_message import read_report
from gateway.crypto.smime_parts import Part
from tests.direct.transport_world import BODY_TOKENS, ORTHO, RAW, SMILE, practice
from tests.peers.daemon import PASSWORD
from tests.peers.ports import free_port

pytestmark = pytest.mark.slow

POLICY = {"rules": [{"name": "direct-partners", "action": "direct",
                     "when": {"recipient_domain": ["direct.ortho.example",
                                                   "direct.smile.example"]}}],
          "default": {"action": "hold"}}


def cert_zone(practice) -> tuple[str, str]:
    """(zone, records): the practice's address-bound CERT PKIX record."""
    local, _, domain = practice.address.partition("@")
    der = practice.person.cert.public_bytes(Encoding.DER)
    return domain, f"{local} IN CERT PKIX 0 0 {base64.b64encode(der).decode()}\n"


def setup(daemon_factory, tmp_path, sink, me, partner, *, mx: int, relay: int,
          timeout: str, name: str, nameserver: str | None = None, final: bool = False):
    """A daemon for practice ``me`` that trusts ``partner``'s CA only. With
    ``nameserver`` the partner's certificate is discovered there; without, it
    is imported by hand (and discovery asks a port where nothing answers)."""
    policy = tmp_path / f"{name}-policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    anchors = partner.anchor_file(tmp_path / f"{name}-anchors.pem")
    domain = me.address.rpartition("@")[2]
    extra = {"policy": str(policy), "smtp": {"hostname": f"gw.{domain}"},
             "direct": {"domains": [domain], "anchors": [str(anchors)],
                        "listen": f"127.0.0.1:{mx}", "relay": f"127.0.0.1:{relay}",
                        "relay_tls": "none", "mdn_timeout": timeout, "final_delivery": final,
                        "resolver": {"nameservers": [nameserver or f"127.0.0.1:{free_port()}"],
                                     "timeout": "1s"}}}
    d = daemon_factory(sink.port, extra=extra, start=False)
    password = tmp_path / f"{name}-pw"
    password.write_text("pw\n")
    password.chmod(0o600)
    from tests.crypto.pki import write_p12
    p12 = write_p12(tmp_path / f"{name}.p12", me.person, b"pw")
    d.phigate(["certs", "identity", "import", str(p12), "--for", me.address,
               "--password-file", str(password)])
    if nameserver is None:
        d.phigate(["certs", "import", str(partner.cert_file(tmp_path / f"{name}-partner.pem"))])
    d.phigate(["users", "add", "directdesk", "--sender", me.address], input=PASSWORD + "\n")
    return d


def submit(daemon, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=30) as smtp:
        smtp.ehlo("client.smile.example")
        smtp.starttls(context=daemon.tls_context())
        smtp.ehlo("client.smile.example")
        smtp.login("directdesk", PASSWORD)
        smtp.sendmail(SMILE, [ORTHO], raw)


async def wait_for_log(daemon, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in daemon.log_text():
        assert time.monotonic() < deadline, f"no {text!r} in the daemon log"
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def people():
    return practice("Smile", SMILE), practice("Ortho", ORTHO)


async def test_round_trip_delivers_and_the_processed_mdn_completes_tracking(
        daemon_factory, sink_factory, tmp_path, people, nsd):
    smile, ortho = people
    for practice_ in people:
        nsd.add_zone(*cert_zone(practice_))
    nsd.start()
    sink_a, sink_b = await sink_factory(), await sink_factory()
    mx_a, mx_b = free_port(), free_port()
    a = setup(daemon_factory, tmp_path, sink_a, smile, ortho, mx=mx_a, relay=mx_b,
              timeout="10m", name="smile", nameserver=nsd.address, final=True)
    b = setup(daemon_factory, tmp_path, sink_b, ortho, smile, mx=mx_b, relay=mx_a,
              timeout="10m", name="ortho", nameserver=nsd.address)
    for d in (a, b):                                       # nothing imported by hand
        kinds = [r["kind"] for r in json.loads(d.phigate(["certs", "list", "--json"]).stdout)]
        assert kinds == ["identity"]
    b.start()
    a.start()
    await asyncio.to_thread(submit, a, RAW)

    await sink_b.wait_for(1, timeout=90)
    [delivered] = sink_b.messages
    assert delivered.rcpt_tos == [ORTHO]
    part = Part.parse(delivered.data)
    assert part.value("x-phigate-decrypted") == "yes"
    assert part.value("x-phigate-signature").startswith(f"valid; signer={SMILE}; trusted=yes")
    assert part.value("message-id") == "<ref-1@smile.example>"
    assert all(t in delivered.data for t in BODY_TOKENS)            # opened for the mailbox

    await sink_a.wait_for(2, timeout=90)                  # processed, then dispatched
    reports = []
    for mdn in sink_a.messages:
        assert mdn.rcpt_tos == [SMILE]
        assert Part.parse(mdn.data).value("x-phigate-signature").startswith(
            f"valid; signer={ORTHO}; trusted=yes")
        reports.append(read_report(mdn.data))
    assert sorted(r.recipients for r in reports) == [((ORTHO, "dispatched"),),
                                                     ((ORTHO, "processed"),)]
    assert all(r.kind == "mdn" and r.original_id == "<ref-1@smile.example>" for r in reports)
    assert [r.final_delivery for r in reports if r.recipients[0][1] == "dispatched"] == [True]

    status = json.loads(a.phigate(["direct", "status", "--json"]).stdout)
    assert status == {"pending": []}
    [record] = (a.dir / "var" / "direct" / "tracking").glob("*.json")
    assert json.loads(record.read_text())["recipients"] == {ORTHO: "completed"}
    for d in (a, b):                                       # no body or subject in any log
        assert not any(t.decode() in d.log_text() for t in (*BODY_TOKENS, b"Referral"))


async def test_receiver_down_past_the_timeout_gets_a_dsn_and_late_mdn_is_swallowed(
        daemon_factory, sink_factory, tmp_path, people):
    smile, ortho = people
    sink_a, sink_b = await sink_factory(), await sink_factory()
    mx_a, mx_b = free_port(), free_port()
    a = setup(daemon_factory, tmp_path, sink_a, smile, ortho, mx=mx_a, relay=mx_b,
              timeout="3s", name="smile")
    b = setup(daemon_factory, tmp_path, sink_b, ortho, smile, mx=mx_b, relay=mx_a,
              timeout="10m", name="ortho")
    a.start()                                              # the receiver stays down
    await asyncio.to_thread(submit, a, RAW)
    await wait_for_log(a, '"event": "deferred"')          # the relay to the receiver failed
    status = json.loads(a.phigate(["direct", "status", "--json"]).stdout)
    if status["pending"]:                                 # (unless the DSN already went out)
        assert [(p["recipient"], p["state"]) for p in status["pending"]] == [(ORTHO, "pending")]

    await sink_a.wait_for(1, timeout=90)
    [dsn] = sink_a.messages
    assert dsn.rcpt_tos == [SMILE]
    assert b"report-type=delivery-status" in dsn.data
    assert f"Final-Recipient: rfc822; {ORTHO}".encode() in dsn.data
    assert b"no delivery notification" in dsn.data
    assert not any(t in dsn.data for t in BODY_TOKENS)
    assert json.loads(a.phigate(["direct", "status", "--json"]).stdout) == {"pending": []}

    b.start()                                              # back: A's retry gets through
    await sink_b.wait_for(1, timeout=90)
    await wait_for_log(a, '"outcome": "suppressed"')
    assert len(sink_a.messages) == 1                       # only the DSN reached the sender


async def test_tracking_survives_a_restart_of_the_sender(
        daemon_factory, sink_factory, tmp_path, people):
    smile, ortho = people
    sink_a, sink_b = await sink_factory(), await sink_factory()
    mx_a, mx_b = free_port(), free_port()
    a = setup(daemon_factory, tmp_path, sink_a, smile, ortho, mx=mx_a, relay=mx_b,
              timeout="10m", name="smile")
    b = setup(daemon_factory, tmp_path, sink_b, ortho, smile, mx=mx_b, relay=mx_a,
              timeout="10m", name="ortho")
    a.start()                                              # the receiver is down for now
    await asyncio.to_thread(submit, a, RAW)
    await wait_for_log(a, '"event": "deferred"')
    assert a.stop() == 0
    pending = json.loads(a.phigate(["direct", "status", "--json"]).stdout)["pending"]
    assert [(p["recipient"], p["state"]) for p in pending] == [(ORTHO, "pending")]

    b.start()
    a.start()                                              # recovers the queue and the tracking
    await sink_b.wait_for(1, timeout=90)
    await sink_a.wait_for(1, timeout=90)
    assert read_report(sink_a.messages[0].data).recipients == ((ORTHO, "processed"),)
    assert json.loads(a.phigate(["direct", "status", "--json"]).stdout) == {"pending": []}
