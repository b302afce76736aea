"""The plan for mail arriving on the Direct MX listener: every recipient
gets ``direct_inbound`` (decrypt, verify, MDN, deliver). It is treated as
PHI (it is encrypted; nothing can be classified before it is opened). The
Acceptor is the ordinary ``Submission`` with ``direct_verdict`` as its
classifier and ``direct_inbound_plan`` as its policy."""
from __future__ import annotations

from gateway.model import Action, Decision, Envelope, Plan, Verdict

DIRECT_VERDICT = Verdict(phi=True, reasons=("Direct message: encrypted, treated as PHI",))


async def direct_verdict(raw: bytes) -> Verdict:
    return DIRECT_VERDICT


def direct_inbound_plan(envelope: Envelope, verdict: Verdict, raw: bytes) -> Plan:
    """The opened message goes in plaintext to the practice's own mailbox
    (``allow_phi_plaintext``, as the portal's delivery there); only a trusted,
    decrypted message is ever delivered (``actions.direct_in``)."""
    return Plan(verdict, tuple(Decision(r, Action.DIRECT_INBOUND, "direct-inbound",
                                        options={"allow_phi_plaintext": True})
                               for r in envelope.rcpt_tos))
