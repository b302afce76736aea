"""Hypothesis properties of ``PolicyEngine.decide`` over random valid policies,
envelopes, verdicts and messages:

- exactly one decision per recipient, in envelope order;
- never relay for a PHI verdict unless the matched rule allows plaintext PHI;
- fallbacks never weaker than the action;
- the plan survives the queue item's JSON (what is fsynced before the 250).
"""
from __future__ import annotations

import json

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.model import Action, Envelope, Finding, Plan, Verdict
from gateway.model.decision import PROTECTION_RANK
from gateway.policy.engine import Policy, PolicyEngine
from gateway.policy.loader import check, load_policy
from gateway.policy.rules import PolicyFile
from gateway.queue.item import QueueItem

DOMAINS = ["smiledental.example", "mail.example", "lab.example", "x.hospital.example"]
LOCALS = ["pat", "dr", "Billing", "a.b+tag", "ünï"]
addresses = st.builds(lambda l, d: f"{l}@{d}", st.sampled_from(LOCALS), st.sampled_from(DOMAINS))
findings = st.builds(
    Finding,
    st.sampled_from(["ssn", "patient_name", "cdt_code", "npi", "radiograph", "payment"]),
    st.sampled_from(["identifier", "clinical", "payment", "attachment", "error"]),
    st.sampled_from(["subject", "body", "attachment:1", "attachment:2"]),
    st.integers(1, 5), st.booleans())
verdicts = st.builds(Verdict, st.booleans(), st.lists(findings, max_size=4).map(tuple),
                     st.lists(st.sampled_from(["extract: ValueError"]), max_size=1).map(tuple))
raw_messages = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda s, b: f"Subject: {s}\r\nX-Secure: yes\r\n\r\n{b}\r\n".encode(),
              st.text(max_size=40).map(lambda t: t.replace("\r", "").replace("\n", "")),
              st.text(max_size=200)))

ACTIONS = ["relay", "smime", "direct", "portal", "hold", "reject"]
conditions = st.fixed_dictionaries({}, optional={
    "recipient_domain": st.lists(st.sampled_from(DOMAINS + ["*.hospital.example"]),
                                 min_size=1, max_size=2),
    "recipient_list": st.just(["partners"]),
    "sender_list": st.just(["partners"]),
    "phi": st.booleans(),
    "category": st.lists(st.sampled_from(["identifier", "clinical", "payment"]), min_size=1),
    "phi_in": st.lists(st.sampled_from(["subject", "body", "attachment"]), min_size=1),
    "subject_keyword": st.just(["[secure]"]),
    "header": st.just({"X-Secure": "*"}),
    "size_over": st.integers(0, 400),
    "recipient_has_certificate": st.booleans(),
})
outcomes = st.fixed_dictionaries(
    {"action": st.sampled_from(ACTIONS)},
    optional={"fallbacks": st.lists(st.sampled_from(ACTIONS[:5]), max_size=2, unique=True),
              "allow_phi_plaintext": st.booleans()})


@st.composite
def policies(draw) -> Policy:
    rules = [{"name": f"r{i}", "when": draw(conditions), **draw(outcomes)}
             for i in range(draw(st.integers(0, 6)))]
    data = {"lists": {"partners": ["lab.example", "dr@smiledental.example"]},
            "rules": rules, "default": draw(outcomes)}
    try:
        policy_file = PolicyFile.model_validate(data)
    except ValueError:
        assume(False)
    assume(not check(policy_file))          # only policies the loader accepts
    return Policy(policy_file, "test")


envelopes = st.builds(lambda s, r: Envelope(s, tuple(r)), addresses,
                      st.lists(addresses, min_size=1, max_size=6))
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


@SETTINGS
@given(policies(), envelopes, verdicts, raw_messages, st.sets(addresses))
def test_one_decision_per_recipient_and_no_plaintext_phi(policy, envelope, verdict, raw, certs):
    plan = PolicyEngine(policy, has_certificate=certs.__contains__).decide(envelope, verdict, raw)
    assert [d.recipient for d in plan.decisions] == list(envelope.rcpt_tos)
    assert len(plan.trace) == len(envelope.rcpt_tos)
    for decision in plan.decisions:
        if verdict.phi and decision.action is Action.RELAY:
            assert decision.options.get("allow_phi_plaintext") is True
        for fallback in decision.fallbacks:
            assert PROTECTION_RANK[fallback] >= PROTECTION_RANK[decision.action]


@SETTINGS
@given(envelopes, verdicts, raw_messages)
def test_shipped_policy_never_relays_phi_outside_the_practice(envelope, verdict, raw):
    plan = PolicyEngine(load_policy(None)).decide(envelope, verdict, raw)
    for decision in plan.decisions:
        if verdict.phi and decision.action is Action.RELAY:
            assert decision.recipient.endswith("@smiledental.example")


@SETTINGS
@given(policies(), envelopes, verdicts, raw_messages)
def test_plan_round_trips_through_the_queue_item_json(policy, envelope, verdict, raw):
    plan = PolicyEngine(policy).decide(envelope, verdict, raw)
    item = QueueItem.new("0" * 32, envelope, plan)
    again = QueueItem.from_json(json.loads(json.dumps(item.to_json())))
    assert again.plan == plan
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
