"""``phigate direct status [--json]``: sent Direct messages still waiting for
delivery notifications (MDN tracking in ``<state_dir>/direct/tracking``), one
row per recipient not yet final: queue id, sender, recipient, state
(pending / processed), when it was sent and when it times out. It reads the
state files only, so it works with or without a running daemon."""
from __future__ import annotations

import datetime as dt

from gateway.cli.output import add_json_flag, load_config_or_exit, print_json, print_table
from gateway.direct.service import tracking_dir
from gateway.direct.tracking import MdnTracker


def register(sub) -> None:
    direct = sub.add_parser("direct", help="Direct messaging tools")
    dsub = direct.add_subparsers(dest="direct_command", metavar="ACTION")
    dsub.required = True
    status = dsub.add_parser("status", help="list messages waiting for delivery notifications")
    add_json_flag(status)
    status.set_defaults(func=cmd_status)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def cmd_status(args) -> int:
    config = load_config_or_exit(args)
    tracker = MdnTracker(tracking_dir(config), config.direct.mdn_timeout)
    rows = [{"queue_id": r.queue_id, "message_id": r.message_id, "sender": r.sender,
             "recipient": address, "state": r.recipients[address],
             "want_dispatched": r.want_dispatched, "sent": _when(r.sent_at),
             "deadline": _when(r.deadline)}
            for r in tracker.pending() for address in r.open]
    if args.json:
        print_json({"pending": rows})
        return 0
    print_table(["queue id", "sender", "recipient", "state", "sent", "times out"],
                [(r["queue_id"], r["sender"], r["recipient"], r["state"], r["sent"],
                  r["deadline"]) for r in rows], empty="(no Direct message is waiting)")
    return 0
