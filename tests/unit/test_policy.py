"""Policy files and the PolicyEngine: validation naming YAML paths, each
condition, first match per recipient, fail-closed guards, the shipped policy
and every example under policies/examples/."""
from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.config import ConfigError
from gateway.model import Action, Envelope, Finding, Verdict
from gateway.policy import PolicyEngine, load_policy
from gateway.policy.classifiers import build_classifier
from gateway.policy.engine import DEFAULT_WOULD_LEAK, RELAY_OF_PHI

ROOT = Path(__file__).resolve().parents[2]
BAD = sorted((ROOT / "tests" / "policies" / "bad").glob("*.yaml"))
STAFF = "frontdesk@smiledental.example"
PHI_BODY = Verdict(True, (Finding("patient_name", "identifier", "body"),
                          Finding("cdt_code", "clinical", "body")))
PHI_SUBJECT = Verdict(True, (Finding("patient_name", "identifier", "subject"),
                             Finding("tooth_number", "clinical", "subject")))
NO_PHI = Verdict(False)


def write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def engine_for(tmp_path: Path, text: str, **kw) -> PolicyEngine:
    return PolicyEngine(load_policy(write_policy(tmp_path, text)), **kw)


def decide(engine, verdict, *rcpts, raw=b"Subject: x\r\n\r\nbody\r\n", sender=STAFF, user=None):
    plan = engine.decide(Envelope(sender, tuple(rcpts), auth_user=user), verdict, raw)
    return {d.recipient: d for d in plan.decisions}, plan


def message(subject="Hello", body="See you soon.", attachment=None, headers=()) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = STAFF, "x@example.org", subject
    for name, value in headers:
        msg[name] = value
    msg.set_content(body)
    if attachment:
        ctype, filename = attachment
        maintype, subtype = ctype.split("/")
        msg.add_attachment(b"\x00\x01data", maintype=maintype, subtype=subtype,
                           filename=filename)
    return msg.as_bytes()


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_policy_refused_naming_the_yaml_path(path):
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    problems = info.value.problems
    assert any(str(path) in p and expected in p for p in problems), problems


def test_shipped_default_decides_like_a_practice(tmp_path):
    engine = PolicyEngine(load_policy(None),
                          has_certificate=lambda a: a == "surgeon@oralsurgery.example")
    got, plan = decide(engine, PHI_BODY, "dr@smiledental.example", "pat@mail.example",
                       "surgeon@oralsurgery.example", "er@direct.oralsurgery.example")
    assert got["dr@smiledental.example"].action is Action.RELAY
    assert got["dr@smiledental.example"].options == {"allow_phi_plaintext": True}
    assert (got["pat@mail.example"].action, got["pat@mail.example"].rule) == (
        Action.PORTAL, "phi-to-others")
    assert got["surgeon@oralsurgery.example"].action is Action.SMIME
    assert got["surgeon@oralsurgery.example"].fallbacks == (Action.PORTAL,)
    assert got["er@direct.oralsurgery.example"].action is Action.DIRECT
    assert plan.policy_version == load_policy(None).version

    held, _ = decide(engine, PHI_SUBJECT, "pat@mail.example")
    assert held["pat@mail.example"].action is Action.HOLD
    assert "Subject" in held["pat@mail.example"].reason

    plain, _ = decide(engine, NO_PHI, "pat@mail.example")
    assert (plain["pat@mail.example"].action, plain["pat@mail.example"].rule) == (
        Action.RELAY, "default")


def test_health_words_alone_in_the_subject_are_not_held():
    engine = PolicyEngine(load_policy(None))
    for subject_finding in (Finding("procedure", "clinical", "subject"),
                            Finding("recipient_addressed", "identifier", "subject"),
                            Finding("payment", "payment", "subject")):
        verdict = Verdict(True, (*PHI_BODY.findings, subject_finding))
        got, _ = decide(engine, verdict, "pat@mail.example")
        assert got["pat@mail.example"].rule == "phi-to-others", subject_finding


def test_trace_lists_every_rule_tried_and_the_failed_condition():
    engine = PolicyEngine(load_policy(None))
    _, plan = decide(engine, PHI_BODY, "pat@mail.example")
    (trace,) = plan.trace
    assert [step["rule"] for step in trace["tried"]] == [
        "internal", "phi-in-subject", "direct-partners", "phi-to-certificate-holders",
        "phi-to-others"]
    assert trace["tried"][0] == {"rule": "internal", "matched": False,
                                 "failed": "recipient_list"}
    assert trace["tried"][-1] == {"rule": "phi-to-others", "matched": True}


def test_shadow_findings_do_not_count_as_phi_in_subject():
    engine = PolicyEngine(load_policy(None))
    shadow = Verdict(False, (Finding("patient_name", "identifier", "subject", shadow=True),))
    got, _ = decide(engine, shadow, "pat@mail.example")
    assert got["pat@mail.example"].action is Action.RELAY


def test_relay_rule_without_allow_never_takes_phi(tmp_path):
    engine = engine_for(tmp_path, """
rules:
  - {name: partners, when: {recipient_domain: lab.example}, action: relay}
default: {action: portal}
""")
    got, plan = decide(engine, PHI_BODY, "a@lab.example")
    assert got["a@lab.example"].action is Action.PORTAL
    assert plan.trace[0]["tried"][0] == {"rule": "partners", "matched": False,
                                         "failed": RELAY_OF_PHI}
    got, _ = decide(engine, NO_PHI, "a@lab.example")
    assert got["a@lab.example"].rule == "partners"


def test_default_relay_holds_phi_that_no_rule_caught(tmp_path):
    engine = engine_for(tmp_path, "default: {action: relay}\n")
    got, _ = decide(engine, PHI_BODY, "pat@mail.example")
    assert got["pat@mail.example"].action is Action.HOLD
    assert got["pat@mail.example"].reason == DEFAULT_WOULD_LEAK


def test_first_match_wins_per_recipient(tmp_path):
    engine = engine_for(tmp_path, """
lists:
  vips: ["ceo@partner.example", "*.hospital.example"]
rules:
  - {name: vip, when: {recipient_list: vips}, action: smime, fallbacks: [portal, hold]}
  - {name: partner-domain, when: {recipient_domain: partner.example}, action: portal}
default: {action: relay}
""")
    got, _ = decide(engine, NO_PHI, "CEO@Partner.Example", "cfo@partner.example",
                    "er@north.hospital.example", "x@hospital.example")
    assert got["CEO@Partner.Example"].rule == "vip"
    assert got["CEO@Partner.Example"].fallbacks == (Action.PORTAL, Action.HOLD)
    assert got["cfo@partner.example"].rule == "partner-domain"
    assert got["er@north.hospital.example"].rule == "vip"
    assert got["x@hospital.example"].rule == "default"


CONDITIONS = """
lists:
  billing: [billing@smiledental.example]
rules:
  - {name: by-user, when: {auth_user: hygienist}, action: hold}
  - {name: by-sender-list, when: {sender_list: billing}, action: hold}
  - {name: by-sender-domain, when: {sender_domain: "*.branch.example"}, action: hold}
  - {name: by-address, when: {recipient: boss@elsewhere.example}, action: hold}
  - {name: by-category, when: {category: payment}, action: hold}
  - {name: by-detector, when: {detector: [ssn, npi]}, action: hold}
  - {name: in-attachment, when: {phi_in: attachment}, action: hold}
  - {name: keyword, when: {subject_keyword: "[secure]"}, action: portal,
     strip_subject_keyword: true}
  - {name: flagged, when: {header: {X-Secure: "*"}}, action: hold}
  - {name: sensitivity, when: {header: {Sensitivity: private}}, action: hold}
  - {name: xray, when: {attachment_type: ["image/*", ".dcm"]}, action: portal}
  - {name: huge, when: {size_over: 1KB}, action: hold}
  - {name: tiny, when: {size_under: 10}, action: hold}
default: {action: relay}
"""


@pytest.mark.parametrize(("case", "kwargs", "rule"), [
    ("auth user", {"user": "hygienist"}, "by-user"),
    ("sender in list", {"sender": "Billing@SmileDental.example"}, "by-sender-list"),
    ("sender subdomain", {"sender": "a@north.branch.example"}, "by-sender-domain"),
    ("recipient address", {"rcpt": "boss@elsewhere.example"}, "by-address"),
    ("category", {"verdict": Verdict(True, (Finding("payment", "payment", "body"),))},
     "by-category"),
    ("detector", {"verdict": Verdict(True, (Finding("npi", "identifier", "body"),))},
     "by-detector"),
    ("phi in attachment",
     {"verdict": Verdict(True, (Finding("radiograph", "attachment", "attachment:1"),))},
     "in-attachment"),
    ("subject keyword", {"raw": message(subject="Re: results [SECURE]")}, "keyword"),
    ("header present", {"raw": message(headers=[("X-Secure", "1")])}, "flagged"),
    ("header text", {"raw": message(headers=[("Sensitivity", "Private")])}, "sensitivity"),
    ("attachment type", {"raw": message(attachment=("image/jpeg", "pano.jpg"))}, "xray"),
    ("attachment ext", {"raw": message(attachment=("application/octet-stream", "ct.DCM"))},
     "xray"),
    ("size over", {"raw": message(body="x" * 2000)}, "huge"),
    ("size under", {"raw": b"S: x\r\n\r\n"}, "tiny"),
    ("nothing", {}, "default"),
])
def test_each_condition(tmp_path, case, kwargs, rule):
    engine = engine_for(tmp_path, CONDITIONS)
    rcpt = kwargs.pop("rcpt", "pat@mail.example")
    verdict = kwargs.pop("verdict", NO_PHI)
    kwargs.setdefault("raw", message())
    got, _ = decide(engine, verdict, rcpt, **kwargs)
    assert got[rcpt].rule == rule, case


def test_keyword_to_strip_is_recorded_in_the_decision(tmp_path):
    engine = engine_for(tmp_path, CONDITIONS)
    got, _ = decide(engine, NO_PHI, "pat@mail.example", raw=message(subject="x [Secure]"))
    assert got["pat@mail.example"].options == {"strip_subject_keyword": "[secure]"}


def test_malformed_message_only_fails_the_conditions_that_read_it(tmp_path):
    engine = engine_for(tmp_path, CONDITIONS)
    raw = b"Subject: =?utf-8?q?broken\r\nContent-Type: multipart/mixed; boundary=\r\n\r\n--\r\n"
    got, _ = decide(engine, PHI_BODY, "pat@mail.example", raw=raw)
    assert got["pat@mail.example"].rule == "default"


def test_lab_baa_example(tmp_path):
    engine = PolicyEngine(load_policy(ROOT / "policies/examples/lab-baa.yaml"))
    case = message(subject="Case 2231", body="Crown #30 shade A2 for Maria Lopez")
    xray = message(subject="Case 2231", attachment=("image/jpeg", "pa-30.jpg"))
    got, _ = decide(engine, PHI_BODY, "tech@crownlab.example", "orders@aligners.example",
                    "pat@mail.example", raw=case)
    assert got["tech@crownlab.example"].action is Action.RELAY
    assert got["tech@crownlab.example"].options == {"allow_phi_plaintext": True, "sign": True}
    assert got["orders@aligners.example"].rule == "lab-case-mail"
    assert got["pat@mail.example"].action is Action.PORTAL
    got, _ = decide(engine, PHI_BODY, "tech@crownlab.example", raw=xray)
    assert got["tech@crownlab.example"].rule == "lab-images-by-portal"


def test_strict_example(tmp_path):
    engine = PolicyEngine(load_policy(ROOT / "policies/examples/strict.yaml"))
    broken = Verdict(True, (Finding("unscannable", "error", "attachment:1"),),
                     errors=("extract: ValueError",))
    got, _ = decide(engine, PHI_BODY, "pat@mail.example", "dr@smiledental.example")
    assert got["pat@mail.example"].action is Action.SMIME
    assert got["pat@mail.example"].fallbacks == (Action.HOLD,)
    assert got["dr@smiledental.example"].action is Action.RELAY
    got, _ = decide(engine, broken, "pat@mail.example")
    assert got["pat@mail.example"].rule == "classifier-error"


def test_subject_keyword_example_with_the_real_classifier(tmp_path):
    engine = PolicyEngine(load_policy(ROOT / "policies/examples/subject-keyword.yaml"))
    classify = build_classifier().classify
    asked = message(subject="Lunch order [secure]", body="Pizza for the team at noon.")
    got, _ = decide(engine, classify(asked), "vendor@pizza.example", raw=asked)
    assert got["vendor@pizza.example"].rule == "secure-keyword"
    assert got["vendor@pizza.example"].options["strip_subject_keyword"] == "[secure]"
    phi = message(subject="Your visit",
                  body="Maria Lopez DOB 03/14/1982: crown on tooth #30 (D2740), chart 448812.")
    verdict = classify(phi)
    assert verdict.phi
    got, _ = decide(engine, verdict, "maria@mail.example", raw=phi)
    assert got["maria@mail.example"].action is Action.PORTAL
    huge = phi + b"x" * 26_000_000
    got, _ = decide(engine, verdict, "maria@mail.example", raw=huge)
    assert got["maria@mail.example"].action is Action.REJECT
