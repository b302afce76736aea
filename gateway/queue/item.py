"""One queued message: envelope, plan and per-recipient delivery state.

Stored as JSON in the first line of ``<id>.msg`` (before the untouched
message) and later in ``<id>.state``. JSON with a ``schema_version``; never
pickle.

The plan is the record of what the policy decided at acceptance and is never
changed. Everything a delivery attempt reads or changes about one recipient
lives in its ``RecipientState`` (one home): the action in effect, the
fallbacks not tried yet, the rule's options for the action in effect, status,
attempts and the steps done.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from gateway.model import Action, Decision, Envelope, Plan

SCHEMA_VERSION = 2        # 2: options/rule/reason moved into the recipient state


class Status(str, enum.Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"       # permanent failure: reported to the sender in a DSN
    HELD = "held"           # parked for an administrator


@dataclass(slots=True)
class RecipientState:
    address: str
    action: Action                    # the action in effect (moves along the fallbacks)
    fallbacks: list[Action] = field(default_factory=list)   # those not tried yet
    status: Status = Status.PENDING
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""              # SMTP reply or reason; never message content
    steps: dict = field(default_factory=dict)   # multi-step actions record what is done
    options: dict = field(default_factory=dict)  # the rule's knobs for the action in effect
    rule: str = ""                    # the rule that decided (policy terms, never PHI)
    reason: str = ""                  # that rule's description

    @classmethod
    def from_decision(cls, decision: Decision) -> RecipientState:
        return cls(decision.recipient, decision.action, list(decision.fallbacks),
                   options=dict(decision.options), rule=decision.rule, reason=decision.reason)

    def option(self, name: str):
        return self.options.get(name)

    def change_action(self, action: Action) -> None:
        """Move to ``action`` (a fallback or an administrator's release): the
        rule's permission to send PHI in plaintext does not follow it."""
        self.action = action
        self.options.pop("allow_phi_plaintext", None)

    def to_json(self) -> dict:
        return {"address": self.address, "action": self.action.value,
                "fallbacks": [a.value for a in self.fallbacks], "status": self.status.value,
                "attempts": self.attempts, "next_attempt": self.next_attempt,
                "last_error": self.last_error, "steps": self.steps, "options": self.options,
                "rule": self.rule, "reason": self.reason}

    @classmethod
    def from_json(cls, data: dict) -> RecipientState:
        return cls(address=data["address"], action=Action(data["action"]),
                   fallbacks=[Action(a) for a in data.get("fallbacks", ())],
                   status=Status(data["status"]), attempts=data.get("attempts", 0),
                   next_attempt=data.get("next_attempt", 0.0),
                   last_error=data.get("last_error", ""), steps=dict(data.get("steps", {})),
                   options=dict(data.get("options", {})), rule=data.get("rule", ""),
                   reason=data.get("reason", ""))


def _upgrade_v1(data: dict, plan: Plan) -> None:
    """Schema 1 kept options, rule and reason only in the plan: copy them into
    each recipient (options only while the action in effect is still the
    decided one; an administrator's release as relay kept its permission)."""
    for r in data["recipients"]:
        try:
            decision = plan.decision_for(r["address"])
        except KeyError:
            continue
        r["rule"], r["reason"] = decision.rule, decision.reason
        options = dict(decision.options) if r["action"] == decision.action.value else {}
        if r.get("steps", {}).get("released_as") == Action.RELAY.value:
            options["allow_phi_plaintext"] = True
        r["options"] = options


@dataclass(slots=True)
class QueueItem:
    id: str
    envelope: Envelope
    plan: Plan
    recipients: list[RecipientState]
    created_at: float = field(default_factory=time.time)
    crashes: int = 0                  # attempts interrupted by a crash (see store.mark_in_flight)
    held_reason: str = ""

    @classmethod
    def new(cls, item_id: str, envelope: Envelope, plan: Plan) -> QueueItem:
        recipients = [RecipientState.from_decision(plan.decision_for(rcpt))
                      for rcpt in envelope.rcpt_tos]
        return cls(item_id, envelope, plan, recipients, created_at=envelope.received_at or time.time())

    def pending(self) -> list[RecipientState]:
        return [r for r in self.recipients if r.status is Status.PENDING]

    def recipient(self, address: str) -> RecipientState:
        for r in self.recipients:
            if r.address == address:
                return r
        raise KeyError("recipient not in item")

    def to_json(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "id": self.id,
                "envelope": self.envelope.to_json(), "plan": self.plan.to_json(),
                "recipients": [r.to_json() for r in self.recipients],
                "created_at": self.created_at, "crashes": self.crashes,
                "held_reason": self.held_reason}

    @classmethod
    def from_json(cls, data: dict) -> QueueItem:
        version = data.get("schema_version")
        if version not in (1, SCHEMA_VERSION):
            raise ValueError(f"unsupported queue item schema_version {version!r}")
        plan = Plan.from_json(data["plan"])
        if version == 1:
            _upgrade_v1(data, plan)
        return cls(id=data["id"], envelope=Envelope.from_json(data["envelope"]), plan=plan,
                   recipients=[RecipientState.from_json(r) for r in data["recipients"]],
                   created_at=data["created_at"], crashes=data.get("crashes", 0),
                   held_reason=data.get("held_reason", ""))
