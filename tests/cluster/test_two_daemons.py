"""Two real daemons (``phigate run``) on one real PostgreSQL, on loopback,
with one shared portal secret file, as a load balancer that is not sticky
would use them: they start together on an empty database (three times);
a PHI message submitted to node A is read and answered on node B's portal;
40 replies posted at once across both nodes reach the practice exactly once
each (portal mail goes into the spool of the node that took the request,
so there is nothing for the other node to send again); 12 concurrent reset
requests over both nodes, each on a form rendered by the other node, stay
within the limit of 3; ``phigate cluster status`` lists both, then flags the
node whose policy file changed; node A SIGKILLed during 50 PHI submissions
over both nodes delivers, after its restart, every accepted message once
(one deposit, one notice each)."""
from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import os
import shutil
import time
from email.message import EmailMessage

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from gateway.portal.app import FORGOT_PER_ADDRESS
from gateway.portal.schema import limits
from tests.peers.daemon import SENDER
from tests.peers.ports import free_port
from tests.peers.wait import until
from tests.portal.conftest import PORTAL_FOR_PHI, PortalClient, link_from

pytestmark = pytest.mark.slow

PATIENT = "jane.doe@mail.example"
PROVIDER = "dr.smith@smiledental.example"
SUBJECT = "Crown prep tooth 14 Jane Doe DOB 1980-02-03"
BODY = "Jane, your crown on tooth #14 (D2740) is ready. Amoxicillin 500mg before the visit."
SECRET = "one-secret-for-every-node-of-the-cluster-0123456789"


def make_nodes(daemon_factory, tmp_path, url: str, sink_port: int):
    secret, totp = tmp_path / "portal-secret", tmp_path / "portal-totp.key"
    if not secret.exists():
        secret.write_text(SECRET + "\n")
        totp.write_bytes(Fernet.generate_key())
        for f in (secret, totp):
            os.chmod(f, 0o600)
    nodes = []
    for name in ("node-a", "node-b"):
        policy = tmp_path / f"{name}-{time.monotonic_ns()}-policy.yaml"
        policy.write_text(PORTAL_FOR_PHI)
        port = free_port()
        node = daemon_factory(sink_port, {"policy": str(policy), "portal": {
            "enabled": True, "address": f"127.0.0.1:{port}", "base_url": f"http://127.0.0.1:{port}",
            "database_url": url, "secret_file": str(secret), "totp_key_file": str(totp),
            "node_name": name,
            "secure_cookies": False, "default_provider_address": PROVIDER,
            "notice_from": "portal@smiledental.example", "heartbeat": "1s"}}, start=False)
        node.base, node.policy = f"http://127.0.0.1:{port}", policy
        nodes.append(node)
    # one users file for the cluster (each Daemon made its own, salted differently)
    shutil.copy2(nodes[0].dir / "users.yaml", nodes[1].dir / "users.yaml")
    return nodes


async def start_together(nodes) -> None:
    await asyncio.gather(*(asyncio.to_thread(n.start) for n in nodes))


def cluster_status(node) -> dict:
    done = node.phigate(["cluster", "status", "--json"], check=False)
    return json.loads(done.stdout)


@pytest.mark.parametrize("run", range(3))
async def test_both_start_together_on_an_empty_database(daemon_factory, tmp_path,
                                                        postgres_cluster, upstream_sink, run):
    nodes = make_nodes(daemon_factory, tmp_path, postgres_cluster.create_database(),
                       upstream_sink.port)
    await start_together(nodes)
    status = await until(lambda: (s := cluster_status(nodes[0])) and len(s["nodes"]) == 2 and s,
                         what="two registered nodes")
    assert [n["name"] for n in status["nodes"]] == ["node-a", "node-b"]
    for node in nodes:
        assert node.stop() == 0


def phi_mail() -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = PATIENT
    msg["Subject"] = SUBJECT
    msg["Message-ID"] = "<orig-1@smiledental.example>"
    msg.set_content(BODY)
    return msg.as_bytes(policy=email.policy.SMTP)


def text_of(raw: bytes) -> str:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    body = parsed.get_body(preferencelist=("plain",))
    return body.get_content() if body is not None else ""


def to(sink, rcpt: str) -> list:
    return [m for m in sink.messages if m.rcpt_tos == [rcpt]]


async def test_two_nodes_one_portal(daemon_factory, tmp_path, postgres_url, upstream_sink):
    a, b = make_nodes(daemon_factory, tmp_path, postgres_url, upstream_sink.port)
    await start_together([a, b])
    grant = a.phigate(["portal", "grant", PATIENT, "--first-name", "Jane", "--last-name", "Doe",
                       "--birth-date", "1980-02-03", "--phone", "555-0101", "--address",
                       "1 Main St", "--provider", "Dr Smith"])
    assert grant.returncode == 0, grant.stderr

    # PHI to node A: deposited in the shared store, the notice leaves A's spool.
    def submit():
        with a.client() as smtp:
            smtp.sendmail(SENDER, [PATIENT], phi_mail())
    await asyncio.to_thread(submit)
    await upstream_sink.wait_for(1, timeout=60)
    path = link_from(to(upstream_sink, PATIENT)[0].data)

    # ... registered, read and answered on node B.
    browser = PortalClient(b.base)
    clients = [browser]
    try:
        status, _ = await browser.register(path, "correct horse 1", "1980-02-03")
        assert status == 200 and browser.last_url.endswith("/login")
        status, inbox = await browser.login(PATIENT, "correct horse 1")
        assert status == 200 and SUBJECT in inbox
        message = inbox.split('href="/m/', 1)[1].split('"', 1)[0]
        status, page = await browser.get(f"/m/{message}")
        assert status == 200 and "D2740" in page

        # 40 replies at once, alternating between the nodes (one session, shared).
        async def reply(i: int) -> int:
            base = (a, b)[i % 2].base
            async with browser.session.post(f"{base}/m/{message}/reply", data={
                    "body": f"reply number {i:02d}", "csrf": browser.csrf}) as r:
                return r.status
        assert await asyncio.gather(*(reply(i) for i in range(40))) == [200] * 40
        await upstream_sink.wait_for(41, timeout=120)
        await until(lambda: a.queue_ids() == [] == b.queue_ids(), what="empty spools")
        bodies = sorted(text_of(m.data).strip() for m in to(upstream_sink, PROVIDER))
        assert bodies == [f"reply number {i:02d}" for i in range(40)]      # once each

        # 12 reset requests at once, 6 per node, each on a form the other node rendered.
        resets_before = len(to(upstream_sink, PATIENT))

        async def forgot(i: int) -> int:
            render, post = ((a, b), (b, a))[i % 2]
            client = PortalClient(render.base)
            clients.append(client)
            status, _ = await client.get("/forgot")
            assert status == 200
            client.base = post.base
            status, _ = await client.post("/forgot", {"email": PATIENT})
            return status
        assert await asyncio.gather(*(forgot(i) for i in range(12))) == [200] * 12
        key = hmac.new(SECRET.encode(), f"throttle:forgot-address:{PATIENT}".encode(),
                       hashlib.sha256).hexdigest()
        engine = sa.create_engine(postgres_url)
        with engine.connect() as conn:
            counted = conn.execute(sa.select(limits.c.count).where(limits.c.key == key)).scalar()
        engine.dispose()
        assert counted == FORGOT_PER_ADDRESS
        await upstream_sink.wait_for(41 + resets_before + FORGOT_PER_ADDRESS - 1, timeout=60)
        await until(lambda: a.queue_ids() == [] == b.queue_ids(), what="empty spools")
        resets = [m for m in to(upstream_sink, PATIENT) if "/reset/" in text_of(m.data)]
        assert len(resets) == FORGOT_PER_ADDRESS
    finally:
        for client in clients:
            await client.close()

    # The cluster view: both nodes, then B's policy changes and B drifts.
    status = cluster_status(a)
    assert [(n["name"], n["dead"], n["drift"]) for n in status["nodes"]] == [
        ("node-a", False, []), ("node-b", False, [])]
    b.policy.write_text(PORTAL_FOR_PHI.replace("default: {action: relay}",
                                               "default: {action: hold}"))
    status = await until(lambda: (s := cluster_status(a)) and s["nodes"][1]["drift"] and s,
                         what="policy drift on node-b")
    assert [(n["name"], n["drift"]) for n in status["nodes"]] == [
        ("node-a", []), ("node-b", ["policy"])]
    for node in (a, b):
        assert node.stop() == 0


def in_flight_recipients(node) -> set[str]:
    """Recipients of the items whose attempt was running when ``node`` died
    (the spool's ``active/`` markers, read from its files)."""
    ids = {n for n in os.listdir(node.spool / "active")}
    found = set()
    for item_id in ids:
        state = node.spool / "queue" / f"{item_id}.state"
        line = (state.read_bytes() if state.exists()
                else (node.spool / "queue" / f"{item_id}.msg").read_bytes().partition(b"\n")[0])
        found |= {r["address"] for r in json.loads(line)["recipients"]}
    return found


def numbered_phi(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = f"patient{i:02d}@mail.example"
    msg["Subject"] = f"Crown prep tooth 14 for patient {i:02d}, DOB 1980-02-03"
    msg["Message-ID"] = f"<kill-{i}@smiledental.example>"
    msg.set_content(BODY)
    return msg.as_bytes(policy=email.policy.SMTP)


async def test_sigkill_during_submissions_over_both_nodes(daemon_factory, tmp_path,
                                                          postgres_url, upstream_sink):
    """50 PHI messages over both nodes, node A SIGKILLed after 20 were
    accepted: after A's restart each accepted message is deposited once and
    its patient gets a notice (none for a message never taken), twice only if
    the kill cut its attempt short."""
    a, b = make_nodes(daemon_factory, tmp_path, postgres_url, upstream_sink.port)
    await start_together([a, b])
    accepted: list[int] = []

    def submit_all() -> None:
        for i in range(50):
            node = (a, b)[i % 2]
            try:
                with node.client(timeout=10) as smtp:
                    smtp.sendmail(SENDER, [f"patient{i:02d}@mail.example"], numbered_phi(i))
            except OSError:          # node A is down: that message was not accepted
                continue
            accepted.append(i)
            if len(accepted) == 20:
                a.kill()
    await asyncio.to_thread(submit_all)
    assert 20 <= len(accepted) < 50
    in_flight = in_flight_recipients(a)      # attempts the kill cut short
    await asyncio.to_thread(a.start)
    await until(lambda: a.queue_ids() == [] == b.queue_ids()
                and len(upstream_sink.messages) >= len(accepted), timeout=120,
                what="every accepted message's notice")
    notices = [m.rcpt_tos[0] for m in upstream_sink.messages]
    # SMTP hand-off is at-least-once: an attempt killed between the upstream's
    # 250 and the spool's record of it is made again. Only such an attempt
    # may repeat a notice; nothing finished before the kill is sent twice.
    repeated = {n for n in notices if notices.count(n) > 1}
    assert repeated <= in_flight
    assert {f"patient{i:02d}@mail.example" for i in accepted} <= set(notices)
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        deposited = [r.recipient for r in conn.execute(sa.text("SELECT recipient FROM messages"))]
    engine.dispose()
    assert len(deposited) == len(set(deposited)) and set(deposited) == set(notices)
    for node in (a, b):
        assert node.stop() == 0
