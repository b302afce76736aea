"""The inline half of a submission: classify, decide, commit.

``Submission.accept`` is what every edge calls with an envelope and the raw
bytes. It awaits the classifier (the daemon's runs in child processes,
``classifiers.isolated``) under a deadline (a timeout
or an error counts as PHI: fail closed), asks the policy for a Plan with one
Decision per recipient, refuses the whole message when a rule says reject,
and otherwise commits message + plan to the queue. Only after the commit does
it return ``Accepted``; the dispatcher then attempts the item at its next
lull (``Dispatcher.lull``: while the next message is being classified), or
within ``LULL_WAIT`` when none comes.

The stored message is the accepted bytes with one ``Received:`` trace header
in front (RFC 5321 §4.4). For mail from the SMTP edge (``source == "smtp"``)
the header section is also fixed as a submission server must (RFC 6409 §8):
every ``X-Phigate-*`` field is removed (they are phigate's own trust
statements, e.g. ``X-Phigate-Signature``, and a client must not be able to
forge them), and a missing ``Date`` or ``Message-ID`` is added. The body is
never rewritten.
"""
from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.audit import audit, get_logger
from gateway.model import Accepted, Envelope, Plan, Refused, Verdict
from gateway.queue.store import QueueFull, QueueStore

log = get_logger("submission")

Classify = Callable[[bytes], Awaitable[Verdict]]


class Decide(Protocol):
    def __call__(self, envelope: Envelope, verdict: Verdict, raw: bytes) -> Plan: ...


def received_header(envelope: Envelope, hostname: str, queue_id: str, now: float) -> bytes:
    protocol = "ESMTPSA" if envelope.auth_user else "ESMTPS"
    helo = "".join(c for c in envelope.helo if c.isprintable() and c not in "()\r\n")[:100]
    peer = envelope.peer.rpartition(":")[0] or envelope.peer
    return (f"Received: from {helo or 'unknown'} ([{peer}])\r\n"
            f"\tby {hostname} (phigate) with {protocol} id {queue_id};\r\n"
            f"\t{email.utils.formatdate(now)}\r\n").encode("ascii", "replace")


def fixed_header_section(raw: bytes, hostname: str, queue_id: str, now: float) -> tuple[bytes, int]:
    """The header section of ``raw`` without client-supplied ``X-Phigate-*``
    fields (and their folded lines) and with ``Date`` / ``Message-ID`` added if
    missing, and the offset in ``raw`` where the body (its blank line first)
    starts: the stored message is that section, then ``raw`` from the offset."""
    end = raw.find(b"\r\n\r\n")
    if raw.startswith(b"\r\n"):
        head, body_at = b"", 0
    elif end < 0:
        head, body_at = raw, len(raw)
    else:
        head, body_at = raw[:end + 2], end + 2
    kept: list[bytes] = []
    names: set[bytes] = set()
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):                 # a folded continuation line
            if not dropping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        dropping = name.startswith(b"x-phigate-")
        if not dropping:
            names.add(name)
            kept.append(line)
    if b"date" not in names:
        kept.append(f"Date: {email.utils.formatdate(now)}\r\n".encode())
    if b"message-id" not in names:
        kept.append(f"Message-ID: <{queue_id}@{hostname}>\r\n".encode("ascii", "replace"))
    if body_at == len(raw):
        kept.append(b"\r\n")
    return b"".join(kept), body_at


class Submission:
    def __init__(self, store: QueueStore, dispatcher, *, hostname: str,
                 classify: Classify, decide: Decide,
                 classifier_timeout: float = 5.0, metrics=None):
        self.store = store
        self.dispatcher = dispatcher
        self.hostname = hostname
        self.classify = classify
        self.decide = decide
        self.classifier_timeout = classifier_timeout
        self.metrics = metrics

    async def verdict(self, raw: bytes) -> Verdict:
        try:
            async with asyncio.timeout(self.classifier_timeout):   # no extra task, unlike wait_for
                return await self.classify(raw)
        except TimeoutError:
            return Verdict(phi=True, errors=("classifier: timeout",),
                           reasons=("classifier timed out: treated as PHI",))
        except Exception as exc:  # noqa: BLE001 — any classifier failure counts as PHI
            return Verdict(phi=True, errors=(f"classifier: {exc.__class__.__name__}",),
                           reasons=("classifier failed: treated as PHI",))

    async def accept(self, envelope: Envelope, raw: bytes) -> Accepted | Refused:
        started = time.monotonic()
        self.dispatcher.lull()          # the loop is idle until the classifier answers
        verdict = await self.verdict(raw)
        plan = self.decide(envelope, verdict, raw)
        if plan.rejected:
            first = plan.rejected[0]
            audit("refused", sender=envelope.mail_from, rule=first.rule,
                  recipients=len(plan.rejected), code=550, **_classified(verdict))
            self._count("rejected")
            reason = first.reason or "refused by the practice's mail policy"
            return Refused(550, "5.7.1", _one_line(f"Policy rule {first.rule}: {reason}"))
        queue_id = self.store.new_id()
        now = time.time()
        trace = received_header(envelope, self.hostname, queue_id, now)
        if envelope.source == "smtp":   # one copy of a large body, not three
            head, body_at = fixed_header_section(raw, self.hostname, queue_id, now)
            data = b"".join((trace, head, memoryview(raw)[body_at:]))
        else:
            data = trace + raw
        try:
            item = await self.store.put(envelope, data, plan, item_id=queue_id)
        except QueueFull:
            log.warning("queue full", size=self.store.size)
            return Refused(451, "4.3.0", "Queue full, try again later")
        audit("queued", queue_id=item.id, sender=envelope.mail_from, auth_user=envelope.auth_user,
              recipients=len(envelope.rcpt_tos), size=len(data),
              decisions=[f"{d.action.value}:{d.rule}" for d in plan.decisions],
              policy_version=plan.policy_version, **_classified(verdict))
        self.dispatcher.submit(item, data, wait_for_lull=True)
        if self.metrics is not None:
            self.metrics.observe_submission(time.monotonic() - started)
            self.metrics.set_queue_sizes(queue=self.store.size)
        return Accepted(item.id)

    def _count(self, name: str) -> None:
        if self.metrics is not None:
            self.metrics.count_outcome(name)


def _classified(verdict: Verdict) -> dict:
    """What the audit line of an accepted or refused message says of its
    verdict: detector and category names and error kinds, never content."""
    return {"phi": verdict.phi, "detectors": sorted(verdict.detectors),
            "categories": sorted(verdict.categories), "errors": list(verdict.errors)}


def _one_line(text: str) -> str:
    return " ".join(text.split()).encode("ascii", "replace").decode()[:200]
