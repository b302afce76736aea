"""One queued message: envelope, plan and per-recipient delivery state.

Stored as JSON in the first line of ``<id>.msg`` (before the untouched
message) and later in ``<id>.state``. JSON with a
``schema_version``; never pickle.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from gateway.model import Action, Envelope, Plan

SCHEMA_VERSION = 1


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

    def to_json(self) -> dict:
        return {"address": self.address, "action": self.action.value,
                "fallbacks": [a.value for a in self.fallbacks], "status": self.status.value,
                "attempts": self.attempts, "next_attempt": self.next_attempt,
                "last_error": self.last_error, "steps": self.steps}

    @classmethod
    def from_json(cls, data: dict) -> RecipientState:
        return cls(address=data["address"], action=Action(data["action"]),
                   fallbacks=[Action(a) for a in data.get("fallbacks", ())],
                   status=Status(data["status"]), attempts=data.get("attempts", 0),
                   next_attempt=data.get("next_attempt", 0.0),
                   last_error=data.get("last_error", ""), steps=dict(data.get("steps", {})))


@dataclass(slots=True)
class QueueItem:
    id: str
    envelope: Envelope
    plan: Plan
    recipients: list[RecipientState]
    created_at: float = field(default_factory=time.time)
    crashes: int = 0                  # attempts interrupted by a crash (see store.mark_in_flight)
    dsn_sent: bool = False
    held_reason: str = ""

    @classmethod
    def new(cls, item_id: str, envelope: Envelope, plan: Plan) -> QueueItem:
        recipients = []
        for rcpt in envelope.rcpt_tos:
            d = plan.decision_for(rcpt)
            recipients.append(RecipientState(rcpt, d.action, list(d.fallbacks)))
        return cls(item_id, envelope, plan, recipients, created_at=envelope.received_at or time.time())

    def pending(self) -> list[RecipientState]:
        return [r for r in self.recipients if r.status is Status.PENDING]

    def recipient(self, address: str) -> RecipientState:
        for r in self.recipients:
            if r.address == address:
                return r
        raise KeyError("recipient not in item")

    @property
    def done(self) -> bool:
        return all(r.status in (Status.DELIVERED, Status.FAILED) for r in self.recipients)

    def to_json(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "id": self.id,
                "envelope": self.envelope.to_json(), "plan": self.plan.to_json(),
                "recipients": [r.to_json() for r in self.recipients],
                "created_at": self.created_at, "crashes": self.crashes,
                "dsn_sent": self.dsn_sent, "held_reason": self.held_reason}

    @classmethod
    def from_json(cls, data: dict) -> QueueItem:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported queue item schema_version {version!r}")
        return cls(id=data["id"], envelope=Envelope.from_json(data["envelope"]),
                   plan=Plan.from_json(data["plan"]),
                   recipients=[RecipientState.from_json(r) for r in data["recipients"]],
                   created_at=data["created_at"], crashes=data.get("crashes", 0),
                   dsn_sent=data.get("dsn_sent", False), held_reason=data.get("held_reason", ""))
