"""Per-recipient decisions and the plan stored with every queued message."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gateway.model.verdict import Verdict


class Action(str, enum.Enum):
    RELAY = "relay"      # plain delivery to the upstream over verified TLS
    SMIME = "smime"      # sign + encrypt to a hand-exchanged certificate
    DIRECT = "direct"    # Direct messaging: discovered certificate, trust anchors, MDN
    PORTAL = "portal"    # deposit in the patient portal, send a PHI-free notice
    HOLD = "hold"        # park for an administrator
    REJECT = "reject"    # refuse at DATA
    INBOUND = "inbound"  # decrypt/verify inbound mail, deliver to the practice mailbox
    MAILBOX = "mailbox"  # a patient's portal message into the provider's mailbox (never a rule's)
    DIRECT_INBOUND = "direct_inbound"   # open a Direct message from the Direct MX, send MDNs


# A fallback may only move to equal or stronger protection. HOLD is strongest
# because nothing leaves. REJECT, INBOUND, MAILBOX and DIRECT_INBOUND are never
# fallback targets.
PROTECTION_RANK: dict[Action, int] = {
    Action.RELAY: 0,
    Action.SMIME: 1,
    Action.DIRECT: 1,
    Action.PORTAL: 1,
    Action.HOLD: 2,
}


@dataclass(frozen=True, slots=True)
class Decision:
    recipient: str
    action: Action
    rule: str
    fallbacks: tuple[Action, ...] = ()
    reason: str = ""                    # rule description, in policy terms; never PHI
    options: dict = field(default_factory=dict)   # per-action knobs, e.g. {"sign": true}

    def to_json(self) -> dict:
        return {"recipient": self.recipient, "action": self.action.value, "rule": self.rule,
                "fallbacks": [a.value for a in self.fallbacks], "reason": self.reason,
                "options": dict(self.options)}

    @classmethod
    def from_json(cls, data: dict) -> Decision:
        return cls(recipient=data["recipient"], action=Action(data["action"]), rule=data["rule"],
                   fallbacks=tuple(Action(a) for a in data.get("fallbacks", ())),
                   reason=data.get("reason", ""), options=dict(data.get("options", {})))


@dataclass(frozen=True, slots=True)
class Plan:
    verdict: Verdict
    decisions: tuple[Decision, ...]
    trace: tuple[dict, ...] = ()        # per recipient: rules tried and whether they matched
    policy_version: str = ""

    def decision_for(self, recipient: str) -> Decision:
        for d in self.decisions:
            if d.recipient == recipient:
                return d
        raise KeyError("recipient not in plan")

    @property
    def rejected(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.action is Action.REJECT)

    def to_json(self) -> dict:
        return {"verdict": self.verdict.to_json(),
                "decisions": [d.to_json() for d in self.decisions],
                "trace": list(self.trace), "policy_version": self.policy_version}

    @classmethod
    def from_json(cls, data: dict) -> Plan:
        return cls(verdict=Verdict.from_json(data["verdict"]),
                   decisions=tuple(Decision.from_json(d) for d in data["decisions"]),
                   trace=tuple(data.get("trace", ())),
                   policy_version=data.get("policy_version", ""))

    @classmethod
    def relay_all(cls, rcpt_tos, verdict: Verdict | None = None, rule: str = "default") -> Plan:
        """The plan used before a policy is configured: relay every recipient."""
        from gateway.model.verdict import NO_PHI
        return cls(verdict=verdict or NO_PHI,
                   decisions=tuple(Decision(r, Action.RELAY, rule) for r in rcpt_tos))
