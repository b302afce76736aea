"""``phigate inbound status [--json]``: each watched mailbox and folder with
its connection state, UIDVALIDITY and last UID handled, the counts of
messages opened (processed), not opened (failed: notice appended, original
left in place) and still in the spool (pending), and the last error.

Reads the state files the daemon keeps (``gateway.inbound_state``) and the
spool; it never connects to the mailbox. Nothing shown comes from a message.
"""
from __future__ import annotations

import time

from gateway.cli.output import add_json_flag, load_config_or_exit, print_json, print_table
from gateway.inbound_state import read_state, state_directory
from gateway.model import Action
from gateway.queue.store import AREAS, ItemNotFound, QueueStore


def register(sub) -> None:
    inbound = sub.add_parser("inbound", help="mailboxes watched for inbound S/MIME")
    isub = inbound.add_subparsers(dest="inbound_command", metavar="ACTION")
    isub.required = True
    status = isub.add_parser("status", help="connection, position and counts per mailbox")
    add_json_flag(status)
    status.set_defaults(func=cmd_status)


def pending_counts(store: QueueStore) -> dict[str, int]:
    """Inbound items still in the spool (queue, hold, shunt), per mailbox name."""
    counts: dict[str, int] = {}
    for area in AREAS:
        for item_id in store.ids(area):
            try:
                item = store.load(item_id, area)
            except (ItemNotFound, ValueError, KeyError):
                continue
            for decision in item.plan.decisions:
                if decision.action is Action.INBOUND:
                    name = decision.options.get("mailbox", "")
                    counts[name] = counts.get(name, 0) + 1
    return counts


def status_rows(config) -> list[dict]:
    if not config.inbound.mailboxes:
        return []
    directory = state_directory(config.state_dir)
    pending = pending_counts(QueueStore(config.queue.dir))
    rows = []
    for mailbox in config.inbound.mailboxes:
        state = read_state(directory, mailbox.name)
        for folder in mailbox.folders:
            entry = state["folders"].get(folder, {})
            rows.append({"mailbox": mailbox.name, "user": mailbox.user, "folder": folder,
                         "connection": entry.get("connection", "never connected"),
                         "since": entry.get("since") or None,
                         "uidvalidity": entry.get("uidvalidity"),
                         "last_uid": entry.get("last_uid", 0),
                         "processed": state["processed"], "failed": state["failed"],
                         "pending": pending.get(mailbox.name, 0),
                         "last_error": entry.get("last_error") or state["last_error"] or None})
    return rows


def _ago(when: float | None, now: float) -> str:
    if not when:
        return ""
    seconds = max(0, int(now - when))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def cmd_status(args) -> int:
    config = load_config_or_exit(args)
    rows = status_rows(config)
    if args.json:
        print_json({"mailboxes": rows})
        return 0
    now = time.time()
    print_table(["mailbox", "folder", "connection", "since", "uidvalidity", "last uid",
                 "processed", "failed", "pending", "last error"],
                [[r["mailbox"], r["folder"], r["connection"], _ago(r["since"], now),
                  r["uidvalidity"], r["last_uid"], r["processed"], r["failed"], r["pending"],
                  r["last_error"] or ""] for r in rows],
                empty="(no inbound.mailboxes configured)")
    return 0
