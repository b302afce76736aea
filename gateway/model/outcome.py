"""What one delivery attempt did for one recipient."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class PermanentKind(str, enum.Enum):
    REJECTED = "rejected"          # the peer refused with 5xx
    NO_CERTIFICATE = "no_certificate"   # no usable certificate: try the plan's fallback
    BAD_CERTIFICATE = "bad_certificate"
    POLICY = "policy"              # our own safety check refused (e.g. PHI to plaintext)
    MESSAGE = "message"            # the message itself cannot be processed
    HOLD = "hold"                  # a last safety check stopped it: hold for an administrator


@dataclass(frozen=True, slots=True)
class Delivered:
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Transient:
    reason: str
    code: int | None = None


@dataclass(frozen=True, slots=True)
class Permanent:
    reason: str
    code: int | None = None
    kind: PermanentKind = PermanentKind.REJECTED

    @property
    def wants_fallback(self) -> bool:
        return self.kind in (PermanentKind.NO_CERTIFICATE, PermanentKind.BAD_CERTIFICATE)


Outcome = Delivered | Transient | Permanent
