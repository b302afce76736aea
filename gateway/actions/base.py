"""The ActionHandler protocol the dispatcher calls."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from gateway.model import Action, Outcome


class ActionHandler(Protocol):
    action: Action

    async def execute(self, item, raw: bytes, recipients: Sequence) -> Mapping[str, Outcome]:
        """Carry out the action for ``recipients`` (RecipientState objects of
        ``item``) and return an Outcome per recipient address.

        ``raw`` is the message exactly as accepted. Per-recipient knobs are
        read from the recipient's state (``recipient.option(name)``), never
        from the plan. A multi-step action records completed steps in
        ``recipient.steps`` so that a retry never repeats a side effect; the
        dispatcher persists them after the call. Exceptions are bugs: the
        dispatcher counts them and shunts the item.
        """
        ...
