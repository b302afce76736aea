"""``phigate queue list|show|retry|hold|release|drop|digest``.

Reads go straight to the spool. Changes go through the running daemon's
control socket so they never race with a delivery attempt; with no daemon
running they are applied to the spool directly by the same Dispatcher code.
``digest`` asks the running daemon to queue the administrator's digest now.
"""
from __future__ import annotations

import asyncio
import time

from gateway.cli.output import add_json_flag, fail, load_config_or_exit, print_json, print_table
from gateway.model import Action
from gateway.queue import control
from gateway.queue.dispatcher import Dispatcher
from gateway.queue.item import QueueItem
from gateway.queue.notices import age_text
from gateway.queue.store import AREAS, ItemNotFound, QueueStore, owner


def register(sub) -> None:
    queue = sub.add_parser("queue", help="inspect and manage the mail queue")
    qsub = queue.add_subparsers(dest="queue_command", metavar="ACTION")
    qsub.required = True
    ls = qsub.add_parser("list", help="list queued, held, shunted and failed messages")
    ls.add_argument("--area", choices=AREAS, help="only this area")
    add_json_flag(ls)
    ls.set_defaults(func=cmd_list)
    show = qsub.add_parser("show", help="show one message's envelope, plan and recipient states")
    show.add_argument("id")
    add_json_flag(show)
    show.set_defaults(func=cmd_show)
    for op, text in (("retry", "attempt pending recipients now"),
                     ("hold", "park a queued message for an administrator"),
                     ("release", "send a held or shunted message on"),
                     ("drop", "delete a message from the queue (it will not be delivered)")):
        p = qsub.add_parser(op, help=text)
        p.add_argument("id")
        if op == "release":
            p.add_argument("--as", dest="as_action", choices=[a.value for a in
                           (Action.RELAY, Action.SMIME, Action.DIRECT, Action.PORTAL)],
                           help="action to use (default: portal for PHI, relay otherwise)")
        add_json_flag(p)
        p.set_defaults(func=cmd_change, op=op)
    digest = qsub.add_parser("digest", help="queue the administrator's digest now "
                             "(the daemon must run; admin.address set)")
    add_json_flag(digest)
    digest.set_defaults(func=cmd_digest)



def _summary(item: QueueItem, area: str, now: float) -> dict:
    counts = {}
    for r in item.recipients:
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    pending = item.pending()
    next_attempt = min((r.next_attempt for r in pending), default=None)
    errors = [r.last_error for r in item.recipients if r.last_error]
    return {
        "id": item.id, "area": area, "age_seconds": int(now - item.created_at),
        "sender": item.envelope.mail_from, "recipients": len(item.recipients),
        "status": counts, "phi": item.plan.verdict.phi,
        "next_attempt": next_attempt, "crashes": item.crashes,
        "last_error": errors[0] if errors else "",
    }


def cmd_list(args) -> int:
    config = load_config_or_exit(args)
    store = QueueStore(config.queue.dir)
    now = time.time()
    rows = []
    for area in ([args.area] if args.area else AREAS):
        for item_id in store.ids(area):
            try:
                rows.append(_summary(store.load(item_id, area), area, now))
            except (ItemNotFound, ValueError, KeyError):
                rows.append({"id": item_id, "area": area, "error": "unreadable state"})
    if args.json:
        print_json(rows)
        return 0
    print_table(
        ["id", "area", "age", "from", "rcpts", "status", "next try", "last error"],
        [[r["id"], r["area"], age_text(r.get("age_seconds", 0)), r.get("sender", ""),
          r.get("recipients", ""),
          ",".join(f"{k}={v}" for k, v in r.get("status", {}).items()) or r.get("error", ""),
          age_text(r["next_attempt"] - now) if r.get("next_attempt") else "-",
          (r.get("last_error") or "")[:60]] for r in rows],
        empty="queue is empty")
    return 0


def cmd_show(args) -> int:
    config = load_config_or_exit(args)
    store = QueueStore(config.queue.dir)
    try:
        area = store.find(args.id)
        item = store.load(args.id, area)
    except ItemNotFound:
        return fail(f"no queue item {args.id}")
    if args.json:
        print_json({"area": area, **item.to_json()})
        return 0
    env = item.envelope
    print(f"id:        {item.id} ({area})")
    print(f"from:      {env.mail_from or '<>'}  (user {env.auth_user or '-'}, via {env.source})")
    print(f"received:  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(item.created_at))}")
    verdict = item.plan.verdict
    print(f"phi:       {'yes' if verdict.phi else 'no'}"
          + (f"  ({'; '.join(verdict.reasons)})" if verdict.reasons else ""))
    if verdict.errors:
        print(f"errors:    {', '.join(verdict.errors)}")
    if item.held_reason:
        print(f"held:      {item.held_reason}")
    if item.crashes:
        print(f"crashes:   {item.crashes}")
    print()
    print_table(["finding", "category", "where", "count"],
                [[f.detector + (" (shadow)" if f.shadow else ""), f.category, f.location, f.count]
                 for f in verdict.findings], empty="no findings")
    print()
    print_table(["recipient", "rule", "action now", "fallbacks", "status", "tries", "last error"],
                [[r.address, r.rule, r.action.value,
                  ",".join(a.value for a in r.fallbacks) or "-", r.status.value, r.attempts,
                  r.last_error] for r in item.recipients])
    return 0


def cmd_change(args) -> int:
    config = load_config_or_exit(args)
    request = {"op": args.op, "id": args.id}
    if getattr(args, "as_action", None):
        request["as"] = args.as_action
    shard = owner(args.id, config.workers) if args.id[:1] in "0123456789abcdef" else 0
    path = control.control_socket(config.state_dir, shard, config.workers)
    response = asyncio.run(control.request(path, request))
    if response is None:            # no daemon running: change the spool directly
        store = QueueStore(config.queue.dir, shard=shard, shards=config.workers)
        if not store.lock(blocking=False):
            return fail("the gateway is starting; try again in a moment")
        try:
            response = asyncio.run(control.perform(Dispatcher(store), request))
        finally:
            store.unlock()
    if args.json:
        print_json(response)
    elif "error" in response:
        return fail(response["error"])
    else:
        extra = f" as {response['action']}" if response.get("action") else ""
        print(f"{args.op}: {args.id}{extra}: done")
    return 0 if "error" not in response else 1


def cmd_digest(args) -> int:
    config = load_config_or_exit(args)
    response = asyncio.run(control.request(control.control_socket(
        config.state_dir, 0, config.workers), {"op": "digest"}))
    if response is None:
        return fail("no gateway daemon is running (phigate run)")
    if args.json:
        print_json(response)
    elif "error" in response:
        return fail(response["error"])
    else:
        print(f"digest queued as {response['id']}")
    return 0 if "error" not in response else 1
