"""The Direct MX listener with the inbound Direct action, fed messages built
by ``openssl cms`` (an independent implementation): signed by the sending
practice, encrypted to the receiving one (RSA-OAEP SHA-1 and SHA-256 key
transport, and PKCS#1 v1.5). Checks the decrypted delivery with its result
headers, the signed and encrypted ``processed``/``dispatched`` MDNs (opened
again with openssl), the RCPT domain restriction, and that an untrusted
message gets no MDN and is not delivered."""
from __future__ import annotations

import asyncio
import smtplib
import subprocess

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.actions.direct import DirectAction, StoreFinder
from gateway.actions.direct_in import DirectInboundAction
from gateway.actions.relay import RelayAction
from gateway.config.models import DirectResolverConfig, LimitsConfig
from gateway.crypto.direct_message import FINAL_DELIVERY, FINAL_DELIVERY_REQUEST, read_report
from gateway.crypto.discovery import Discoverer
from gateway.crypto.smime_entity import canonical_crlf
from gateway.crypto.smime_parts import Part
from gateway.direct.intake import direct_inbound_plan, direct_verdict
from gateway.direct.spool import Spool
from gateway.ingress.direct_mx import DirectMXServer
from gateway.model import Action
from gateway.queue.dispatcher import Dispatcher
from gateway.queue.store import QueueStore
from gateway.submission import Submission
from tests.crypto import openssl_cli
from tests.crypto.pki import TestPKI
from tests.direct import dpki
from tests.direct.transport_world import BODY_TOKENS, ORTHO, RAW, SMILE, courier, practice
from tests.peers.ports import free_port


@pytest.fixture(scope="module")
def people():
    return practice("Smile", SMILE), practice("Ortho", ORTHO)


def openssl_direct(raw: bytes, signer, recipient, tmp, keyopts=()) -> bytes:
    """Sign (detached, SHA-256) the wrapped ``raw`` as ``signer``, encrypt to
    ``recipient`` with openssl cms, then put the outer headers in front."""
    cert, key = signer.write(tmp, "signer")
    rcert, _ = recipient.write(tmp, "recipient")
    wrapped = b"Content-Type: message/rfc822\r\n\r\n" + raw
    signed = subprocess.run(["openssl", "cms", "-sign", "-md", "sha256", "-signer", str(cert),
                             "-inkey", str(key), "-binary", "-crlfeol"], input=wrapped,
                            capture_output=True, check=True).stdout
    args = ["openssl", "cms", "-encrypt", "-aes128", "-binary", "-crlfeol", "-recip", str(rcert)]
    for opt in keyopts:
        args += ["-keyopt", opt]
    enveloped = canonical_crlf(subprocess.run(args, input=signed, capture_output=True,
                                              check=True).stdout)     # base64 lines end in LF
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    outer = b"".join(line + b"\r\n" for line in head.split(b"\r\n")
                     if line and not line.lower().startswith((b"content-", b"mime-version")))
    return outer + enveloped


class Receiver:
    """The receiving practice's gateway parts, wired like app.py does."""

    def __init__(self, tmp, people, sink_port, trust=None):
        smile, ortho = people
        self.store = ortho.store(tmp / "certs")
        self.store.import_certificates(smile.cert_file(tmp / "smile.pem"))
        self.queue = QueueStore(tmp / "spool")
        self.courier = courier(sink_port)
        handlers = {}
        self.dispatcher = Dispatcher(self.queue, handlers, hostname="gw.ortho.example")
        spool = Spool(self.dispatcher)
        handlers[Action.DIRECT_INBOUND] = DirectInboundAction(
            self.store, lambda: [smile.pki.root.cert], self.courier, spool, trust=trust,
            hostname="gw.ortho.example")
        handlers[Action.DIRECT] = DirectAction(StoreFinder(self.store), self.store, self.courier)
        handlers[Action.RELAY] = RelayAction(self.courier)
        self.dispatcher.handlers = handlers
        acceptor = Submission(self.queue, self.dispatcher, hostname="gw.ortho.example",
                              classify=direct_verdict, decide=direct_inbound_plan)
        self.mx = DirectMXServer("127.0.0.1:0", ["direct.ortho.example"], acceptor,
                                 hostname="mx.ortho.example", limits=LimitsConfig())

    async def __aenter__(self):
        await self.mx.start()
        self.task = asyncio.create_task(self.dispatcher.run())
        return self

    async def __aexit__(self, *exc):
        await self.mx.stop()
        await self.dispatcher.stop(5)
        await self.task
        await self.courier.close()

    async def send(self, mail_from, rcpts, data):
        def go():
            with smtplib.SMTP(*self.mx.address, timeout=30) as s:
                return s.sendmail(mail_from, rcpts, data)
        return await asyncio.to_thread(go)


def by_rcpt(sink, address):
    return [m for m in sink.messages if m.rcpt_tos == [address]]


def open_mdn(message: bytes, people, tmp) -> bytes:
    smile, ortho = people
    signed = openssl_cli.decrypt(message, smile.person, tmp)
    content = openssl_cli.verify(signed, ortho.pki.root, tmp)
    assert content.startswith(b"Content-Type: message/rfc822\r\n\r\n")
    return content.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("keyopts", [("rsa_padding_mode:oaep",),
                                     ("rsa_padding_mode:oaep", "rsa_oaep_md:sha256"),
                                     ()], ids=["oaep-sha1", "oaep-sha256", "pkcs1v15"])
async def test_openssl_direct_message_is_opened_acknowledged_and_delivered(
        people, tmp_path, upstream_sink, keyopts):
    smile, ortho = people
    data = openssl_direct(RAW, smile.person, ortho.person, tmp_path, keyopts)
    async with Receiver(tmp_path, people, upstream_sink.port) as rx:
        await rx.send(SMILE, [ORTHO], data)
        await upstream_sink.wait_for(2, timeout=60)
    [delivered] = by_rcpt(upstream_sink, ORTHO)
    part = Part.parse(delivered.data)
    assert part.value("x-phigate-decrypted") == "yes"
    assert part.value("x-phigate-signature").startswith(f"valid; signer={SMILE}; trusted=yes")
    assert part.value("subject") == "Referral tooth 30"
    assert delivered.data.endswith(RAW.split(b"\r\n\r\n", 1)[1])
    [mdn] = by_rcpt(upstream_sink, SMILE)
    assert mdn.mail_from in ("", "<>")
    assert not any(t in mdn.data for t in BODY_TOKENS) and b"Referral" not in mdn.data
    report = read_report(open_mdn(mdn.data, people, tmp_path))
    assert report.kind == "mdn" and report.original_id == "<ref-1@smile.example>"
    assert report.recipients == ((ORTHO, "processed"),) and not report.final_delivery
    assert rx.queue.ids() == []


async def test_final_delivery_request_gets_dispatched_with_the_extension(
        people, tmp_path, upstream_sink):
    smile, ortho = people
    raw = RAW.replace(b"MIME-Version", b"Disposition-Notification-To: <third@party.example>"
                      b"\r\nDisposition-Notification-Options: "
                      + FINAL_DELIVERY_REQUEST.encode() + b"\r\nMIME-Version")
    data = openssl_direct(raw, smile.person, ortho.person, tmp_path, ("rsa_padding_mode:oaep",))
    async with Receiver(tmp_path, people, upstream_sink.port) as rx:
        await rx.send(SMILE, [ORTHO], data)
        await upstream_sink.wait_for(3, timeout=60)
    reports = [read_report(open_mdn(m.data, people, tmp_path))
               for m in by_rcpt(upstream_sink, SMILE)]
    assert sorted(r.recipients[0][1] for r in reports) == ["dispatched", "processed"]
    dispatched = next(r for r in reports if r.recipients[0][1] == "dispatched")
    assert dispatched.final_delivery
    assert FINAL_DELIVERY not in str([r for r in reports if r.recipients[0][1] == "processed"])
    assert len(by_rcpt(upstream_sink, ORTHO)) == 1
    assert by_rcpt(upstream_sink, "third@party.example") == []   # MDNs go to the signed From


async def test_failed_delivery_gets_a_failed_mdn(people, tmp_path, upstream_sink):
    smile, ortho = people
    upstream_sink.fail_rcpt[ORTHO] = "550 5.1.1 no such mailbox"
    data = openssl_direct(RAW, smile.person, ortho.person, tmp_path, ("rsa_padding_mode:oaep",))
    async with Receiver(tmp_path, people, upstream_sink.port) as rx:
        await rx.send(SMILE, [ORTHO], data)
        await upstream_sink.wait_for(3, timeout=60)          # processed, failed, DSN
    to_sender = by_rcpt(upstream_sink, SMILE)
    dsns = [m for m in to_sender if b"report-type=delivery-status" in m.data]
    mdns = [read_report(open_mdn(m.data, people, tmp_path)) for m in to_sender if m not in dsns]
    assert sorted(r.recipients[0][1] for r in mdns) == ["failed", "processed"]
    assert len(dsns) == 1 and not any(t in dsns[0].data for t in BODY_TOKENS)


@pytest.mark.parametrize("kind", ["untrusted-signer", "plaintext", "unsigned"])
async def test_untrusted_message_gets_no_mdn_and_no_delivery(people, tmp_path, upstream_sink,
                                                            kind):
    _smile, ortho = people
    if kind == "untrusted-signer":
        stranger = TestPKI("Unknown Root").leaf(SMILE)      # right address, wrong anchor
        data = openssl_direct(RAW, stranger, ortho.person, tmp_path, ("rsa_padding_mode:oaep",))
    elif kind == "plaintext":
        data = RAW
    else:                                                   # encrypted, not signed
        rcert, _ = ortho.person.write(tmp_path, "recipient")
        run = openssl_cli.cms("-encrypt", "-aes128", "-binary", "-crlfeol", str(rcert),
                              data=b"Content-Type: message/rfc822\r\n\r\n" + RAW)
        data = RAW.split(b"MIME-Version", 1)[0] + canonical_crlf(run.stdout)
    async with Receiver(tmp_path, people, upstream_sink.port) as rx:
        await rx.send(SMILE, [ORTHO], data)
        await upstream_sink.wait_for(1, timeout=60)        # the DSN to the sender
    [only] = upstream_sink.messages
    assert only.rcpt_tos == [SMILE]
    assert b"report-type=delivery-status" in only.data and b"application/pkcs7" not in only.data
    assert by_rcpt(upstream_sink, ORTHO) == []


async def test_rcpt_outside_the_direct_domains_is_refused(people, tmp_path, upstream_sink):
    async with Receiver(tmp_path, people, upstream_sink.port) as rx:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            await rx.send(SMILE, ["someone@smile.example"], RAW)
        assert refused.value.recipients["someone@smile.example"][0] == 550
        assert rx.queue.ids() == []


@pytest.mark.parametrize("revoked", [True, False], ids=["revoked", "good"])
async def test_signer_revocation_from_its_crl_distribution_point(
        people, tmp_path, upstream_sink, nsd, httpd, revoked):
    """The Direct validator fetches the signer's CRL (host resolved by the
    configured resolver, here NSD): a revoked signer gets no MDN and no delivery."""
    smile, ortho = people
    signer = smile.pki.leaf(SMILE, crl_url=httpd.url("/root.crl", host="crl.smile.example"))
    listed = [signer.cert.serial_number] if revoked else []
    httpd.put("/root.crl", smile.pki.crl(smile.pki.root, revoked=listed).public_bytes(Encoding.DER))
    nsd.add_zone("smile.example", "crl IN A 127.0.0.1\n")
    nsd.start()
    discoverer = Discoverer(DirectResolverConfig(nameservers=[nsd.address], timeout=2),
                            [smile.pki.root.cert], tmp_path / "direct-cache")
    data = openssl_direct(RAW, signer, ortho.person, tmp_path, ("rsa_padding_mode:oaep",))
    async with Receiver(tmp_path, people, upstream_sink.port, trust=discoverer.trust) as rx:
        await rx.send(SMILE, [ORTHO], data)
        await upstream_sink.wait_for(1 if revoked else 2, timeout=60)
    assert httpd.hits["/root.crl"] >= 1
    if revoked:
        [only] = upstream_sink.messages
        assert b"report-type=delivery-status" in only.data and only.rcpt_tos == [SMILE]
        assert by_rcpt(upstream_sink, ORTHO) == []
    else:
        assert len(by_rcpt(upstream_sink, ORTHO)) == 1
        [mdn] = by_rcpt(upstream_sink, SMILE)
        assert read_report(open_mdn(mdn.data, people, tmp_path)).recipients[0][1] == "processed"


@pytest.mark.parametrize("domain,accepted", [("direct.smile.example", True),
                                             ("direct.other.example", False)])
async def test_domain_bound_signer_is_bound_by_the_direct_validator(
        people, tmp_path, upstream_sink, domain, accepted):
    """An organisation certificate (SAN dNSName = the From's domain) signs:
    accepted with ``binding=domain``; one for another domain is refused."""
    smile, ortho = people
    org = dpki.leaf(smile.pki.root, dns=domain)
    discoverer = Discoverer(DirectResolverConfig(nameservers=[f"127.0.0.1:{free_port()}"],
                                                 timeout=1),
                            [smile.pki.root.cert], tmp_path / "direct-cache")
    data = openssl_direct(RAW, org, ortho.person, tmp_path, ("rsa_padding_mode:oaep",))
    async with Receiver(tmp_path, people, upstream_sink.port, trust=discoverer.trust) as rx:
        await rx.send(SMILE, [ORTHO], data)
        await upstream_sink.wait_for(2 if accepted else 1, timeout=60)
    if accepted:
        [delivered] = by_rcpt(upstream_sink, ORTHO)
        assert Part.parse(delivered.data).value("x-phigate-signature").startswith(
            f"valid; signer={SMILE}; trusted=yes; binding=domain")
        [mdn] = by_rcpt(upstream_sink, SMILE)
        assert read_report(open_mdn(mdn.data, people, tmp_path)).recipients[0][1] == "processed"
    else:
        [only] = upstream_sink.messages
        assert b"report-type=delivery-status" in only.data
        assert by_rcpt(upstream_sink, ORTHO) == []
