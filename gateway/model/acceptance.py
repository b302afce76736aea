"""The answer the core (``Submission.accept``) gives an edge for one message."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Accepted:
    queue_id: str


@dataclass(frozen=True, slots=True)
class Refused:
    code: int            # 451, 550, 552, 554 ...
    status: str          # enhanced status code, e.g. "5.7.1"
    text: str            # generic, policy terms only: never PHI

    @property
    def smtp_reply(self) -> str:
        return f"{self.code} {self.status} {self.text}"

