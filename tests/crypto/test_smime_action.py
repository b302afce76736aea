"""SmimeAction and RelayAction(sign: true) against a real certificate store,
a recording courier and openssl as the reader."""
from __future__ import annotations

import asyncio
import email

import pytest
from structlog.testing import capture_logs

from gateway.actions.relay import RelayAction
from gateway.actions.smime import SmimeAction
from gateway.config.models import SmimeConfig
from gateway.crypto.certstore import CertStore
from gateway.crypto.smime_entity import split_message
from gateway.model import (
    Action,
    Decision,
    Delivered,
    Envelope,
    Permanent,
    PermanentKind,
    Plan,
    Verdict,
)
from gateway.queue.item import QueueItem
from tests.crypto import openssl_cli
from tests.crypto.pki import TestPKI, write_p12, write_pem

SENDER = "dr.lee@smile.test"
RAW = (b"From: Dr Lee <dr.lee@smile.test>\r\nTo: os@surgery.test, pat@home.test\r\n"
       b"Subject: Referral tooth 30\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n"
       b"Message-ID: <r1@smile.test>\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
       b"Patient Zebulon Quill DOB 03/04/1961 needs D7240.\r\n")
BODY_TOKENS = (b"Zebulon", b"Quill", b"D7240", b"03/04/1961")


class RecordingCourier:
    def __init__(self):
        self.sent: list[tuple[str, list[str], bytes]] = []

    async def send(self, mail_from, rcpts, data):
        self.sent.append((mail_from, list(rcpts), data))
        return {r: Delivered("250 ok") for r in rcpts}


@pytest.fixture(scope="module")
def pki():
    return TestPKI()


@pytest.fixture(scope="module")
def people(pki):
    return {"practice": pki.leaf(SENDER), "surgeon": pki.leaf("os@surgery.test")}


@pytest.fixture
def store(tmp_path, people):
    s = CertStore(tmp_path / "certs")
    write_pem(tmp_path / "os.pem", people["surgeon"].cert)
    s.import_certificates(tmp_path / "os.pem")
    return s


def with_identity(store, people, tmp_path):
    write_p12(tmp_path / "me.p12", people["practice"], b"pw")
    store.import_identity(tmp_path / "me.p12", b"pw", "@smile.test")


def queue_item(rcpts, action=Action.SMIME, phi=True, **options):
    plan = Plan(Verdict(phi=phi), tuple(Decision(r, action, "rule", (Action.PORTAL,),
                                                 options=dict(options)) for r in rcpts))
    return QueueItem.new("q1", Envelope(SENDER, tuple(rcpts)), plan)


def run(action, item):
    return asyncio.run(action.execute(item, RAW, item.recipients))


def test_encrypts_for_the_recipient_and_the_practice(store, people, pki, tmp_path):
    with_identity(store, people, tmp_path)
    courier = RecordingCourier()
    item = queue_item(["os@surgery.test"])
    outcomes = run(SmimeAction(store, SmimeConfig(), courier), item)
    assert isinstance(outcomes["os@surgery.test"], Delivered)
    [(mail_from, rcpts, data)] = courier.sent
    assert (mail_from, rcpts) == (SENDER, ["os@surgery.test"])
    assert not any(t in data for t in BODY_TOKENS)
    assert b"Subject: Referral tooth 30\r\n" in data          # subject kept by default
    for who in ("surgeon", "practice"):
        signed = openssl_cli.decrypt(data, people[who], tmp_path)
        assert openssl_cli.verify(signed, pki.root, tmp_path) == split_message(RAW).inner


def test_no_certificate_is_permanent_and_wants_the_fallback(store, people, tmp_path):
    with_identity(store, people, tmp_path)
    courier = RecordingCourier()
    item = queue_item(["os@surgery.test", "pat@home.test"])
    outcomes = run(SmimeAction(store, SmimeConfig(), courier), item)
    missing = outcomes["pat@home.test"]
    assert isinstance(missing, Permanent) and missing.kind is PermanentKind.NO_CERTIFICATE
    assert missing.wants_fallback
    assert [rcpts for _, rcpts, _ in courier.sent] == [["os@surgery.test"]]


def test_no_signing_identity_refuses_by_default(store):
    courier = RecordingCourier()
    outcomes = run(SmimeAction(store, SmimeConfig(), courier), queue_item(["os@surgery.test"]))
    refused = outcomes["os@surgery.test"]
    assert isinstance(refused, Permanent) and refused.kind is PermanentKind.POLICY
    assert not refused.wants_fallback and courier.sent == []


def test_unsigned_encryption_when_signature_not_required(store, people, tmp_path):
    courier = RecordingCourier()
    config = SmimeConfig(require_signature=False)
    outcomes = run(SmimeAction(store, config, courier), queue_item(["os@surgery.test"]))
    assert isinstance(outcomes["os@surgery.test"], Delivered)
    data = courier.sent[0][2]
    assert openssl_cli.decrypt(data, people["surgeon"], tmp_path) == split_message(RAW).inner


def test_neutral_subject_from_the_decision_or_the_config(store, people, tmp_path):
    with_identity(store, people, tmp_path)
    for config, options in ((SmimeConfig(), {"strip_subject": True}),
                            (SmimeConfig(strip_subject=True, neutral_subject="Encrypted"), {})):
        courier = RecordingCourier()
        run(SmimeAction(store, config, courier), queue_item(["os@surgery.test"], **options))
        outer = email.message_from_bytes(courier.sent[0][2])
        assert outer["Subject"] == config.neutral_subject
        assert b"Referral" not in courier.sent[0][2]


def test_aes128_from_the_config(store, people, tmp_path):
    with_identity(store, people, tmp_path)
    courier = RecordingCourier()
    run(SmimeAction(store, SmimeConfig(cipher="aes128"), courier),
        queue_item(["os@surgery.test"]))
    p7 = email.message_from_bytes(courier.sent[0][2]).get_payload(decode=True)
    printed = openssl_cli.cms("-cmsout", "-print", "-inform", "DER", data=p7).stdout
    assert b"aes-128-cbc" in printed


def test_relay_signs_when_the_decision_says_so(store, people, pki, tmp_path):
    with_identity(store, people, tmp_path)
    courier = RecordingCourier()
    item = queue_item(["os@surgery.test"], action=Action.RELAY, phi=False, sign=True)
    outcomes = run(RelayAction(courier, store, SmimeConfig()), item)
    assert isinstance(outcomes["os@surgery.test"], Delivered)
    data = courier.sent[0][2]
    assert email.message_from_bytes(data).get_content_type() == "multipart/signed"
    assert openssl_cli.verify(data, pki.root, tmp_path) == split_message(RAW).inner


def test_relay_without_sign_option_is_untouched(store, people, tmp_path):
    with_identity(store, people, tmp_path)
    courier = RecordingCourier()
    run(RelayAction(courier, store), queue_item(["os@surgery.test"], action=Action.RELAY,
                                                phi=False))
    assert courier.sent[0][2] == RAW


@pytest.mark.parametrize("with_store", [True, False])
def test_relay_sign_without_identity_is_never_sent_unsigned(store, with_store):
    courier = RecordingCourier()
    action = RelayAction(courier, store if with_store else None)
    item = queue_item(["os@surgery.test"], action=Action.RELAY, phi=False, sign=True)
    refused = run(action, item)["os@surgery.test"]
    assert isinstance(refused, Permanent) and refused.kind is PermanentKind.POLICY
    assert courier.sent == []


def test_logs_carry_no_content_and_no_key(store, people, tmp_path, monkeypatch):
    monkeypatch.setenv("PHIGATE_STRICT_AUDIT", "1")
    with_identity(store, people, tmp_path)
    key_pem = people["practice"].key_pem()
    with capture_logs() as logs:
        run(SmimeAction(store, SmimeConfig(), RecordingCourier()),
            queue_item(["os@surgery.test", "pat@home.test"]))
        run(RelayAction(RecordingCourier(), store),
            queue_item(["os@surgery.test"], action=Action.RELAY, phi=False, sign=True))
    text = repr(logs).encode()
    assert {entry["event"] for entry in logs} >= {"encrypted", "refused", "signed"}
    assert not any(t in text for t in (*BODY_TOKENS, b"Referral", b"PRIVATE KEY"))
    assert key_pem.splitlines()[1] not in text
