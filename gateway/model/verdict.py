"""What the classifiers found in a message.

A Finding names the detector, its category and where it fired; it never holds
the matched text, so findings can be logged, stored and shown to admins
without leaking PHI.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    detector: str            # e.g. "ssn", "cdt_code", "radiograph"
    category: str            # "identifier" | "clinical" | "payment" | "attachment" | "error" ...
    location: str            # "subject" | "body" | "attachment:<n>" | "header:<name>"
    count: int = 1
    shadow: bool = False     # from a classifier in shadow mode: recorded, not acted on

    def to_json(self) -> dict:
        return {"detector": self.detector, "category": self.category,
                "location": self.location, "count": self.count, "shadow": self.shadow}

    @classmethod
    def from_json(cls, data: dict) -> Finding:
        return cls(data["detector"], data["category"], data["location"],
                   data.get("count", 1), data.get("shadow", False))


@dataclass(frozen=True, slots=True)
class Verdict:
    phi: bool
    findings: tuple[Finding, ...] = ()
    errors: tuple[str, ...] = ()     # classifier errors (names and exception types only)
    reasons: tuple[str, ...] = ()    # why phi is true, e.g. "identifier+clinical in body"

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(f.category for f in self.findings if not f.shadow)

    @property
    def detectors(self) -> frozenset[str]:
        return frozenset(f.detector for f in self.findings if not f.shadow)

    def to_json(self) -> dict:
        return {"phi": self.phi, "findings": [f.to_json() for f in self.findings],
                "errors": list(self.errors), "reasons": list(self.reasons)}

    @classmethod
    def from_json(cls, data: dict) -> Verdict:
        return cls(phi=data["phi"],
                   findings=tuple(Finding.from_json(f) for f in data.get("findings", ())),
                   errors=tuple(data.get("errors", ())),
                   reasons=tuple(data.get("reasons", ())))


NO_PHI = Verdict(phi=False)
