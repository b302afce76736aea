"""PolicyEngine: (envelope, verdict, raw) → Plan, one Decision per recipient.

First matching rule wins per recipient; ``default`` decides for the rest.
Fail closed at decision time, whatever the file says: a relay rule without
``allow_phi_plaintext: true`` never matches a PHI verdict (the trace says
so), and when the default would relay PHI in plaintext the recipient is
held instead. The Plan's ``trace`` records, per recipient, every rule tried
and the first condition that failed, so ``phigate policy test`` and the
queue can explain each decision without holding any message text.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.model import Action, Decision, Envelope, Plan, Verdict
from gateway.policy.conditions import CertificateLookup, MessageFacts, first_failed, matched_keyword
from gateway.policy.rules import PolicyFile, Rule, Ruling

RELAY_OF_PHI = "relay of PHI needs allow_phi_plaintext: true"
DEFAULT_WOULD_LEAK = ("held: no rule allows this PHI to leave and the default would relay it "
                      "in plaintext")


@dataclass(frozen=True)
class Policy:
    """A validated policy file (see ``gateway.policy.loader``)."""
    file: PolicyFile
    version: str          # short hash of the file's bytes, stored in every Plan
    source: Path | None = None


def _decision(recipient: str, name: str, ruling: Ruling, facts: MessageFacts,
              keywords: list[str] | None) -> Decision:
    options: dict = {}
    if ruling.allow_phi_plaintext:
        options["allow_phi_plaintext"] = True
    if ruling.sign:
        options["sign"] = True
    if ruling.strip_subject_keyword and keywords:
        options["strip_subject_keyword"] = matched_keyword(facts.subject, keywords)
    return Decision(recipient, Action(ruling.action), name,
                    fallbacks=tuple(Action(a) for a in ruling.fallbacks),
                    reason=ruling.description, options=options)


def _leaks(ruling: Ruling, verdict: Verdict) -> bool:
    return verdict.phi and ruling.action == "relay" and not ruling.allow_phi_plaintext


class PolicyEngine:
    def __init__(self, policy: Policy, has_certificate: CertificateLookup | None = None):
        self.policy = policy
        self.has_certificate = has_certificate

    def decide(self, envelope: Envelope, verdict: Verdict, raw: bytes) -> Plan:
        facts = MessageFacts(envelope, verdict, raw, self.has_certificate)
        decisions, trace = [], []
        for recipient in envelope.rcpt_tos:
            decision, tried = self._decide_one(recipient, facts)
            decisions.append(decision)
            trace.append({"recipient": recipient, "tried": tried, "rule": decision.rule,
                          "action": decision.action.value})
        return Plan(verdict, tuple(decisions), tuple(trace), self.policy.version)

    __call__ = decide

    def _decide_one(self, recipient: str, facts: MessageFacts) -> tuple[Decision, list[dict]]:
        lists = self.policy.file.lists
        tried: list[dict] = []
        for rule in self.policy.file.rules:
            failed = first_failed(rule.when, recipient, facts, lists)
            if failed is not None:
                tried.append({"rule": rule.name, "matched": False, "failed": failed})
                continue
            if _leaks(rule, facts.verdict):
                tried.append({"rule": rule.name, "matched": False, "failed": RELAY_OF_PHI})
                continue
            tried.append({"rule": rule.name, "matched": True})
            return _decision(recipient, rule.name, rule, facts, _keywords(rule)), tried
        default = self.policy.file.default
        if _leaks(default, facts.verdict):
            tried.append({"rule": "default", "matched": False, "failed": RELAY_OF_PHI})
            return Decision(recipient, Action.HOLD, "default", reason=DEFAULT_WOULD_LEAK), tried
        tried.append({"rule": "default", "matched": True})
        return _decision(recipient, "default", default, facts, None), tried


def _keywords(rule: Rule) -> list[str] | None:
    return rule.when.subject_keyword
