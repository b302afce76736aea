"""``phigate cluster status``: the gateways sharing this portal database.

One line per node (``gateway.cluster``): version, seconds since its last
heartbeat, items in its spool, short hashes of its config, policy, users
file and certificate store, and what is wrong: ``DEAD`` (no heartbeat for
``--dead-after``, default three heartbeats; with mail in its spool that mail
waits for the node or its disk) and ``drift: policy,certs`` (differs from
the other nodes). Exit status 1 when any node is dead or has drifted, so a
monitoring check can run it. ``--json`` prints the full hashes.
"""
from __future__ import annotations

from gateway.cli.output import add_json_flag, load_config_or_exit, print_json, print_table
from gateway.config.types import parse_duration


def register(sub) -> None:
    cluster = sub.add_parser("cluster", help="the gateway nodes sharing the portal database")
    csub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION")
    csub.required = True
    status = csub.add_parser("status", help="list nodes; flag dead nodes and drift")
    status.add_argument("--dead-after", type=parse_duration, default=None,
                        help="heartbeat age that counts as dead (default: 3 x portal.heartbeat)")
    add_json_flag(status)
    status.set_defaults(func=cmd_status)


def problems(node: dict) -> str:
    found = []
    if node["dead"]:
        found.append(f"DEAD, {node['spool']} in spool" if node["spool"] else "DEAD")
    if node["drift"]:
        found.append("drift: " + ",".join(node["drift"]))
    return "; ".join(found) or "ok"


def cmd_status(args) -> int:
    config = load_config_or_exit(args)
    from gateway.cluster import cluster_status
    from gateway.portal.service import database_url
    from gateway.portal.store import make_engine
    dead_after = args.dead_after if args.dead_after is not None else 3 * config.portal.heartbeat
    engine = make_engine(database_url(config.portal, config.state_dir))
    try:
        nodes = cluster_status(engine, dead_after)
    finally:
        engine.dispose()
    if args.json:
        print_json({"dead_after": dead_after, "nodes": nodes})
    else:
        print_table(["node", "version", "heartbeat", "spool", "config", "policy", "users",
                     "certs", "status"],
                    [[n["name"], n["version"], f"{n['age']:.0f}s ago", n["spool"],
                      n["config_sha256"][:12], n["policy_sha256"][:12], n["users_sha256"][:12],
                      n["certs_sha256"][:12], problems(n)] for n in nodes],
                    empty="(no node has registered in this database)")
    return 1 if any(n["dead"] or n["drift"] for n in nodes) else 0
