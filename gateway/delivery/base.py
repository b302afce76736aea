"""The Courier protocol."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from gateway.model import Outcome


class Courier(Protocol):
    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> Mapping[str, Outcome]:
        """Deliver ``data`` for ``rcpts``; one Outcome per recipient. Never raises
        for network or peer errors (those are Transient/Permanent outcomes)."""
        ...

    async def close(self) -> None: ...
