"""Pure data shared by every layer: envelopes, findings, verdicts, decisions,
plans and delivery outcomes.

Nothing here does I/O or imports another phigate package, so the policy
engine, the queue and the edges can all depend on it. Every type converts to
and from plain JSON-able dicts (``to_json`` / ``from_json``) because plans are
stored in queue items.
"""
from gateway.model.acceptance import Accepted, Refused
from gateway.model.decision import PROTECTION_RANK, Action, Decision, Plan
from gateway.model.envelope import Envelope
from gateway.model.outcome import Delivered, Outcome, Permanent, PermanentKind, Transient
from gateway.model.verdict import Finding, Verdict

__all__ = [
    "PROTECTION_RANK",
    "Accepted",
    "Action",
    "Decision",
    "Delivered",
    "Envelope",
    "Finding",
    "Outcome",
    "Permanent",
    "PermanentKind",
    "Plan",
    "Refused",
    "Transient",
    "Verdict",
]
