"""Delivery-notification tracking for sent Direct messages, per recipient.

One JSON file per sent message under ``<state_dir>/direct/tracking/`` (named
by the SHA-256 of its Message-ID), written with ``safeio.atomic_replace`` so a
restart finds every pending message as it was. Recipient states::

    pending    sent, nothing heard yet
    processed  the receiver's gateway sent ``processed``; waiting for
               ``dispatched`` because the sender asked for final delivery
    completed  ``processed`` (or ``dispatched`` when asked for) arrived
    failed     ``failed``/``denied`` MDN or a failure DSN arrived
    timed_out  nothing final within ``mdn_timeout``; the sender got a DSN

``report`` applies an incoming MDN/DSN and says whether to pass it on to the
sender: not after the timeout (a late ``dispatched`` after the timeout DSN is
swallowed, as the Direct IG wants); a final state never changes again. Finished records stay
``KEEP_FINISHED`` seconds past their deadline so late notifications are still
recognised, then ``expire`` removes them.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gateway.queue.safeio import atomic_replace, ensure_dir

PENDING, PROCESSED, COMPLETED, FAILED, TIMED_OUT = (
    "pending", "processed", "completed", "failed", "timed_out")
FINAL = frozenset({COMPLETED, FAILED, TIMED_OUT})
KEEP_FINISHED = 7 * 86400.0


@dataclass
class Tracked:
    message_id: str
    sender: str                     # envelope sender: who gets the timeout DSN
    queue_id: str
    sent_at: float
    deadline: float
    want_dispatched: bool
    recipients: dict[str, str] = field(default_factory=dict)   # address → state

    @property
    def open(self) -> list[str]:
        return [a for a, s in self.recipients.items() if s not in FINAL]


def _key(message_id: str) -> str:
    return hashlib.sha256(message_id.strip().lower().encode()).hexdigest()[:40]


class MdnTracker:
    def __init__(self, directory: Path, timeout: float, clock=time.time):
        self.directory = Path(directory)
        self.timeout = timeout
        self.clock = clock

    def _path(self, message_id: str) -> Path:
        return self.directory / f"{_key(message_id)}.json"

    def _save(self, record: Tracked) -> None:
        ensure_dir(self.directory)
        atomic_replace(self._path(record.message_id),
                       json.dumps(asdict(record), sort_keys=True).encode())

    def get(self, message_id: str) -> Tracked | None:
        try:
            return Tracked(**json.loads(self._path(message_id).read_bytes()))
        except FileNotFoundError:
            return None

    def track(self, message_id: str, sender: str, queue_id: str, recipients: list[str],
              want_dispatched: bool) -> Tracked:
        """Start tracking ``recipients``. A retried send of the same message
        changes nothing for recipients already tracked (their clock keeps
        running from the first attempt); new ones extend the deadline."""
        now = self.clock()
        record = self.get(message_id) or Tracked(message_id, sender, queue_id, now,
                                                 now + self.timeout, want_dispatched)
        new = [a.lower() for a in recipients if a.lower() not in record.recipients]
        if new:
            record.deadline = max(record.deadline, now + self.timeout)
            record.recipients.update(dict.fromkeys(new, PENDING))
            self._save(record)
        return record

    def forget(self, message_id: str, recipients: list[str]) -> None:
        """Recipients the message never reached (the send failed): untracked."""
        record = self.get(message_id)
        if record is None:
            return
        for a in recipients:
            record.recipients.pop(a.lower(), None)
        if record.recipients:
            self._save(record)
        else:
            self._path(message_id).unlink(missing_ok=True)

    def report(self, message_id: str | None, recipient: str, event: str,
               final_delivery: bool = False) -> bool:
        """Apply ``event`` (an MDN disposition, or "dsn-failed") for ``recipient``
        of ``message_id``; True when the notification should reach the sender."""
        record = self.get(message_id) if message_id else None
        if record is None:
            return True                       # not ours to judge: pass it on
        address = recipient.lower()
        state = record.recipients.get(address)
        if state is None:
            return True
        if state == TIMED_OUT:
            return False                      # the sender already has the failure DSN
        if state in FINAL:
            return True                       # a repeat (or a retried delivery): no change
        if event == "processed":
            new = PROCESSED if record.want_dispatched else COMPLETED
        elif event == "dispatched":
            new = COMPLETED if final_delivery or not record.want_dispatched else PROCESSED
        elif event in ("failed", "denied", "dsn-failed"):
            new = FAILED
        else:
            return True
        record.recipients[address] = new
        self._save(record)
        return True

    def records(self) -> list[Tracked]:
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                found.append(Tracked(**json.loads(path.read_bytes())))
            except (OSError, ValueError, TypeError):
                continue                      # a partial file cannot exist (atomic); skip junk
        return found

    def pending(self) -> list[Tracked]:
        return [r for r in self.records() if r.open]

    def next_deadline(self) -> float | None:
        return min((r.deadline for r in self.pending()), default=None)

    def expire(self) -> list[tuple[Tracked, list[str]]]:
        """Mark recipients past the deadline timed out; return (record, those
        recipients) for the DSNs. Old finished records are removed."""
        now = self.clock()
        due = []
        for record in self.records():
            late = record.open if record.deadline <= now else []
            if late:
                for a in late:
                    record.recipients[a] = TIMED_OUT
                self._save(record)
                due.append((record, late))
            elif not record.open and record.deadline + KEEP_FINISHED <= now:
                self._path(record.message_id).unlink(missing_ok=True)
        return due
