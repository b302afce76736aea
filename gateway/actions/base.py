"""The ActionHandler protocol the dispatcher calls."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from gateway.model import Action, Outcome


class ItemView(Protocol):
    """What an action may read of a queue item (see ``gateway.queue.item``)."""

    id: str

    @property
    def envelope(self): ...
    @property
    def plan(self): ...


class ActionHandler(Protocol):
    action: Action

    async def execute(self, item, raw: bytes, recipients: Sequence) -> Mapping[str, Outcome]:
        """Carry out the action for ``recipients`` (RecipientState objects of
        ``item``) and return an Outcome per recipient address.

        ``raw`` is the message exactly as accepted. A multi-step action records
        completed steps in ``recipient.steps`` so that a retry never repeats a
        side effect; the dispatcher persists them after the call. Exceptions
        are bugs: the dispatcher counts them and shunts the item.
        """
        ...


def decision_option(item, address: str, name: str):
    """The option ``name`` of ``address``'s decision in the item's plan (None
    when unset or the recipient is not in the plan)."""
    try:
        return item.plan.decision_for(address).options.get(name)
    except KeyError:
        return None
