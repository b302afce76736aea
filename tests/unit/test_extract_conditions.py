"""Policy conditions fail closed when the message cannot be parsed: a Subject whose encoded
words do not decode, or a MIME tree that does not parse, makes ``subject_keyword``,
``header`` and ``attachment_type`` hold (a protective rule is not skipped) and ``phi: false``
not hold (no "no PHI" rule relays it); with the real classifier the message is PHI too."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.model import Action, Envelope, Verdict
from gateway.policy import PolicyEngine, load_policy
from gateway.policy.classifiers import build_classifier
from gateway.policy.conditions import CHECKS, MessageFacts

ROOT = Path(__file__).resolve().parents[2]

STAFF = "desk@smiledental.example"
POLICY = """
rules:
  - {name: secure-keyword, when: {subject_keyword: "[secure]"}, action: portal}
  - {name: no-phi-newsletter, when: {phi: false, subject_keyword: "[news]"}, action: relay}
  - {name: flagged, when: {header: {X-Secure: "*"}}, action: hold}
  - {name: xray, when: {attachment_type: [".dcm"]}, action: portal}
  - {name: unreadable, when: {category: unreadable}, action: hold}
default: {action: relay}
"""
UNDECODABLE = b"Subject: =?x-unknown?q?[secure]_results?=\r\nFrom: a@b.example\r\n\r\nbody\r\n"
BAD_BASE64 = b"Subject: =?utf-8?b?####?=\r\n\r\nbody\r\n"


def plain(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = STAFF, "x@example.org", subject
    msg.set_content("See you soon.")
    return msg.as_bytes()


@pytest.fixture
def engine(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return PolicyEngine(load_policy(path))


NO_PHI = Verdict(False)


def rule_for(engine, raw: bytes, verdict: Verdict = NO_PHI) -> str:
    plan = engine.decide(Envelope(STAFF, ("pat@mail.example",)), verdict, raw)
    return plan.decisions[0].rule


@pytest.mark.parametrize("raw", [UNDECODABLE, BAD_BASE64])
def test_undecodable_subject_makes_protective_keyword_rule_hold(engine, raw):
    facts = MessageFacts(Envelope(STAFF, ("p@x.example",)), Verdict(False), raw)
    assert facts.subject is None and facts.unreadable and facts.phi()
    assert rule_for(engine, raw) == "secure-keyword"


def test_readable_subject_still_decides_by_its_words(engine):
    assert rule_for(engine, plain("Lunch [SECURE]")) == "secure-keyword"
    assert rule_for(engine, plain("Spring [news]")) == "no-phi-newsletter"
    assert rule_for(engine, plain("Hello")) == "default"


def test_phi_false_does_not_hold_when_the_subject_does_not_parse(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("rules:\n  - {name: harmless, when: {phi: false}, action: relay}\n"
                    "default: {action: hold}\n")
    engine = PolicyEngine(load_policy(path))
    assert rule_for(engine, plain("Hello")) == "harmless"
    assert rule_for(engine, BAD_BASE64) == "default"


def test_conditions_that_cannot_parse_hold_and_matched_keyword_is_none(monkeypatch):
    facts = MessageFacts(Envelope(STAFF, ("p@x.example",)), Verdict(False), plain("x"))
    def parser_fails(*args, **kwargs):
        raise ValueError("a parser bug")

    monkeypatch.setattr("gateway.policy.conditions._PARSER.parsebytes", parser_fails)
    monkeypatch.setattr("gateway.policy.conditions.parse", parser_fails)
    monkeypatch.setattr("gateway.policy.conditions.raw_header_items", parser_fails)
    assert CHECKS["header"]({"X-Secure": "*"}, "p@x.example", facts, {})
    assert CHECKS["attachment_type"]([".dcm"], "p@x.example", facts, {})
    assert facts.unreadable and facts.phi()


def test_real_classifier_and_shipped_policy_never_relay_an_unreadable_subject():
    engine = PolicyEngine(load_policy(ROOT / "policies/default.yaml"))
    verdict = build_classifier().classify(UNDECODABLE)
    assert verdict.phi and "unreadable" in verdict.categories
    plan = engine.decide(Envelope(STAFF, ("pat@mail.example",)), verdict, UNDECODABLE)
    assert plan.decisions[0].action in (Action.PORTAL, Action.HOLD)


def test_category_unreadable_is_a_policy_category(engine):
    verdict = build_classifier().classify(b"Content-Type: multipart/mixed\r\n\r\nx\r\n")
    assert rule_for(engine, b"Subject: ok\r\n\r\nx", verdict) == "unreadable"
