"""The ``direct`` action with certificate discovery (the Discoverer of
``gateway.crypto.discovery``) against a real NSD: a certificate published as
a DNS CERT record is found, validated against the sender's Direct anchors
and used (openssl decrypts); nothing published means the plan's fallback;
a resolver that does not answer means "retry later", not a fallback; a
certificate from another CA is not trusted."""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.actions.direct import DirectAction, DiscoveryFinder, StoreFinder
from gateway.config.models import DirectResolverConfig
from gateway.crypto.discovery import Discoverer
from gateway.model import Delivered, Permanent, PermanentKind, Transient
from tests.crypto import openssl_cli
from tests.crypto.pki import TestPKI
from tests.direct.test_direct_send import item
from tests.direct.transport_world import ORTHO, RAW, SMILE, courier, practice
from tests.peers.ports import free_port

NOBODY = "nobody@direct.ortho.example"
STRANGER = "stranger@direct.ortho.example"


@pytest.fixture(scope="module")
def people():
    return practice("Smile", SMILE), practice("Ortho", ORTHO)


def record(local: str, cert) -> str:
    return f"{local} IN CERT PKIX 0 0 {base64.b64encode(cert.public_bytes(Encoding.DER)).decode()}\n"


def action(tmp_path, people, nameserver: str, port: int, store=None):
    smile, ortho = people
    own = smile.store(tmp_path / "certs")
    discoverer = Discoverer(DirectResolverConfig(nameservers=[nameserver], timeout=2),
                            [ortho.pki.root.cert], tmp_path / "direct")
    finder = DiscoveryFinder(discoverer, StoreFinder(store or own))
    return DirectAction(finder, own, courier(port))


async def test_discovered_certificate_is_used(people, tmp_path, nsd, upstream_sink):
    smile, ortho = people
    stranger = TestPKI("Other Root").leaf(STRANGER)
    nsd.add_zone("direct.ortho.example",
                 record("dr.ortho", ortho.person.cert) + record("stranger", stranger.cert))
    nsd.start()
    act = action(tmp_path, people, nsd.address, upstream_sink.port)
    q = item([ORTHO, NOBODY, STRANGER])
    outcomes = await act.execute(q, RAW, q.recipients)
    assert isinstance(outcomes[ORTHO], Delivered)
    for missing in (NOBODY, STRANGER):                       # unpublished / untrusted CA
        assert isinstance(outcomes[missing], Permanent)
        assert outcomes[missing].kind is PermanentKind.NO_CERTIFICATE
    [sent] = upstream_sink.messages
    assert sent.rcpt_tos == [ORTHO]
    signed = openssl_cli.decrypt(sent.data, ortho.person, tmp_path)
    openssl_cli.verify(signed, smile.pki.root, tmp_path)


async def test_resolver_not_answering_is_retried_not_a_fallback(people, tmp_path, upstream_sink):
    act = action(tmp_path, people, f"127.0.0.1:{free_port()}", upstream_sink.port)
    q = item([ORTHO])
    outcomes = await act.execute(q, RAW, q.recipients)
    assert isinstance(outcomes[ORTHO], Transient)
    assert upstream_sink.messages == []
