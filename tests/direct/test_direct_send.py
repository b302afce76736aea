"""The outbound ``direct`` action against a real certificate store, a real
SMTP peer (the aiosmtpd sink) and ``openssl cms`` as the independent reader:
the Direct format (wrapped message/rfc822, detached SHA-256 signature with
the signer certificate, AES-CBC enveloped data), notification requests and
the tracking record, and the no-certificate / no-identity outcomes."""
from __future__ import annotations

import base64

import pytest

from gateway.actions.direct import DirectAction, StoreFinder
from gateway.crypto.direct_message import FINAL_DELIVERY_REQUEST
from gateway.crypto.smime_parts import Part
from gateway.direct.tracking import PENDING, MdnTracker
from gateway.model import Action, Decision, Delivered, Envelope, Permanent, PermanentKind, Plan
from gateway.model.verdict import Verdict
from gateway.queue.item import QueueItem, RecipientState
from tests.crypto import openssl_cli
from tests.direct.transport_world import BODY_TOKENS, ORTHO, RAW, SMILE, courier, practice


@pytest.fixture(scope="module")
def people():
    return practice("Smile", SMILE), practice("Ortho", ORTHO)


@pytest.fixture
def store(tmp_path, people):
    smile, ortho = people
    s = smile.store(tmp_path / "certs")
    s.import_certificates(ortho.cert_file(tmp_path / "ortho.pem"))
    return s


def item(rcpts, sender=SMILE):
    plan = Plan(Verdict(phi=True), tuple(Decision(r, Action.DIRECT, "direct", (Action.PORTAL,))
                                         for r in rcpts))
    return QueueItem("a" * 32, Envelope(sender, tuple(rcpts)), plan,
                     [RecipientState(r, Action.DIRECT) for r in rcpts])


@pytest.mark.parametrize("cipher,oid", [("aes128", "aes-128-cbc"), ("aes256", "aes-256-cbc")])
async def test_openssl_decrypts_and_verifies_the_direct_message(
        store, people, tmp_path, upstream_sink, cipher, oid):
    smile, ortho = people
    tracker = MdnTracker(tmp_path / "tracking", 3600)
    action = DirectAction(StoreFinder(store), store, courier(upstream_sink.port), tracker,
                          cipher=cipher, final_delivery=True)
    q = item([ORTHO])
    outcomes = await action.execute(q, RAW, q.recipients)
    assert isinstance(outcomes[ORTHO], Delivered)
    [sent] = upstream_sink.messages
    assert (sent.mail_from, sent.rcpt_tos) == (SMILE, [ORTHO])
    data = sent.data
    assert not any(t in data for t in BODY_TOKENS)
    outer = Part.parse(data)
    ctype, params = outer.content_type()
    assert (ctype, params["smime-type"], params["name"]) == (
        "application/pkcs7-mime", "enveloped-data", "smime.p7m")
    for name in ("from", "to", "subject", "date", "message-id"):
        assert outer.value(name) == Part.parse(RAW).value(name)
    assert outer.value("disposition-notification-to") == f"<{SMILE}>"
    assert outer.value("disposition-notification-options") == FINAL_DELIVERY_REQUEST
    # openssl: decrypt with the recipient's key, verify against the SENDER's anchor.
    signed = openssl_cli.decrypt(data, ortho.person, tmp_path)
    sig = Part.parse(signed).content_type()
    assert sig[0] == "multipart/signed" and sig[1]["micalg"] == "sha-256"
    content = openssl_cli.verify(signed, smile.pki.root, tmp_path)
    assert content.startswith(b"Content-Type: message/rfc822\r\n\r\n")
    wrapped = content.split(b"\r\n\r\n", 1)[1]
    assert wrapped.endswith(RAW.split(b"\r\n\r\n", 1)[1])
    assert Part.parse(wrapped).value("disposition-notification-options") == FINAL_DELIVERY_REQUEST
    p7 = base64.b64decode(data.split(b"\r\n\r\n", 1)[1])
    printed = openssl_cli.cms("-cmsout", "-print", "-inform", "DER", data=p7).stdout.decode()
    assert oid in printed
    # detached signature with the signer certificate inside
    sig_der = base64.b64decode(signed.split(b"filename=smime.p7s\r\n\r\n")[1].split(b"\r\n--")[0])
    sig_print = openssl_cli.cms("-cmsout", "-print", "-inform", "DER",
                                data=sig_der).stdout.decode()
    assert "eContent: <ABSENT>" in sig_print and "sha256" in sig_print
    assert smile.person.cert.subject.rfc4514_string().split(",")[0].split("=")[1] in sig_print
    record = tracker.get("<ref-1@smile.example>")
    assert record.recipients == {ORTHO: PENDING} and record.want_dispatched
    assert record.sender == SMILE and record.queue_id == q.id


async def test_recipient_without_certificate_takes_the_fallback(store, tmp_path, upstream_sink):
    tracker = MdnTracker(tmp_path / "tracking", 3600)
    action = DirectAction(StoreFinder(store), store, courier(upstream_sink.port), tracker)
    q = item([ORTHO, "nobody@direct.nowhere.example"])
    outcomes = await action.execute(q, RAW, q.recipients)
    missing = outcomes["nobody@direct.nowhere.example"]
    assert isinstance(missing, Permanent) and missing.kind is PermanentKind.NO_CERTIFICATE
    assert missing.wants_fallback
    assert isinstance(outcomes[ORTHO], Delivered)
    assert [m.rcpt_tos for m in upstream_sink.messages] == [[ORTHO]]
    assert list(tracker.get("<ref-1@smile.example>").recipients) == [ORTHO]


async def test_no_identity_for_the_sender_is_refused(store, tmp_path, upstream_sink):
    action = DirectAction(StoreFinder(store), store, courier(upstream_sink.port),
                          MdnTracker(tmp_path / "t", 60))
    q = item([ORTHO], sender="someone@elsewhere.example")
    outcomes = await action.execute(q, RAW, q.recipients)
    assert isinstance(outcomes[ORTHO], Permanent)
    assert outcomes[ORTHO].kind is PermanentKind.POLICY and not outcomes[ORTHO].wants_fallback
    assert upstream_sink.messages == []


async def test_refused_recipient_is_not_tracked(store, tmp_path, upstream_sink):
    upstream_sink.fail_rcpt[ORTHO] = "550 5.1.1 no such user"
    tracker = MdnTracker(tmp_path / "tracking", 3600)
    action = DirectAction(StoreFinder(store), store, courier(upstream_sink.port), tracker)
    q = item([ORTHO])
    outcomes = await action.execute(q, RAW, q.recipients)
    assert isinstance(outcomes[ORTHO], Permanent)
    assert tracker.get("<ref-1@smile.example>") is None and tracker.pending() == []


async def test_subject_keyword_is_stripped_before_signing(store, people, tmp_path, upstream_sink):
    smile, ortho = people
    action = DirectAction(StoreFinder(store), store, courier(upstream_sink.port))
    raw = RAW.replace(b"Subject: Referral tooth 30", b"Subject: [direct] Referral tooth 30")
    plan = Plan(Verdict(phi=True), (Decision(ORTHO, Action.DIRECT, "direct",
                                             options={"strip_subject_keyword": "[direct]"}),))
    q = QueueItem("b" * 32, Envelope(SMILE, (ORTHO,)), plan,
                  [RecipientState.from_decision(plan.decisions[0])])
    outcomes = await action.execute(q, raw, q.recipients)
    assert isinstance(outcomes[ORTHO], Delivered)
    [sent] = upstream_sink.messages
    assert Part.parse(sent.data).value("subject") == "Referral tooth 30"
    content = openssl_cli.verify(openssl_cli.decrypt(sent.data, ortho.person, tmp_path),
                                 smile.pki.root, tmp_path)
    assert b"[direct]" not in content and b"Subject: Referral tooth 30" in content


async def test_message_without_message_id_keeps_one_id_across_retries(store, tmp_path,
                                                                      upstream_sink):
    tracker = MdnTracker(tmp_path / "tracking", 3600)
    action = DirectAction(StoreFinder(store), store, courier(upstream_sink.port), tracker,
                          hostname="gw.smile.example")
    raw = RAW.replace(b"Message-ID: <ref-1@smile.example>\r\n", b"")
    q = item([ORTHO])
    for _ in range(2):                                    # a first attempt and a retry
        await action.execute(q, raw, q.recipients)
    ids = {Part.parse(m.data).value("message-id") for m in upstream_sink.messages}
    assert ids == {f"<{q.id}.direct@gw.smile.example>"}
    assert [r.message_id for r in tracker.records()] == [f"<{q.id}.direct@gw.smile.example>"]
