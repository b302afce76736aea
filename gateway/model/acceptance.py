"""The answer the core gives an edge (SMTP, IMAP, portal) for one message."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.model.envelope import Envelope


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


class Acceptor(Protocol):
    async def accept(self, envelope: Envelope, raw: bytes) -> Accepted | Refused:
        """Classify, decide and commit ``raw`` to the queue (the commit point).
        Accepted only once the message and its plan are fsynced."""
        ...
