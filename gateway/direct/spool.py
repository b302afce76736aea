"""How Direct code sends a message of its own (an MDN, a timeout DSN): as a
new spool item that the dispatcher delivers, like every message phigate
sends (one road out)."""
from __future__ import annotations

import time

from gateway.model import Action, Decision, Envelope, Plan
from gateway.model.verdict import NO_PHI

MDN_SOURCE = "direct-mdn"      # Envelope.source of MDNs: never tracked, never asking for MDNs


class Spool:
    def __init__(self, dispatcher):
        self.dispatcher = dispatcher

    async def put(self, envelope: Envelope, raw: bytes, plan: Plan) -> str:
        return await self.dispatcher.enqueue(envelope, raw, plan)

    async def send_mdn(self, mdn: bytes, *, reporter: str, to: str) -> str:
        """Queue ``mdn`` for ``to`` as a Direct message signed as ``reporter``
        (null return path, RFC 3798 §3)."""
        envelope = Envelope(mail_from="", rcpt_tos=(to,), received_at=time.time(),
                            source=MDN_SOURCE)
        plan = Plan(NO_PHI, (Decision(to, Action.DIRECT, "direct-mdn",
                                      options={"direct_signer": reporter}),))
        return await self.put(envelope, mdn, plan)

    async def send_dsn(self, dsn: bytes, to: str) -> str:
        envelope = Envelope(mail_from="", rcpt_tos=(to,), received_at=time.time(), source="dsn")
        return await self.put(envelope, dsn, Plan.relay_all([to], rule="dsn"))
