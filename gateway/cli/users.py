"""``phigate users add|list|remove|unlock``: who may submit mail through
phigate; ``unlock`` lifts a login's AUTH lock (see docs/security.md)."""
from __future__ import annotations

import getpass
import sys

from gateway.auth.users import UserDirectory
from gateway.cli.output import add_json_flag, fail, load_config_or_exit, print_json, print_table
from gateway.config import ConfigError


def register(sub) -> None:
    users = sub.add_parser("users", help="manage submission users (users file)")
    usub = users.add_subparsers(dest="users_command", metavar="ACTION")
    usub.required = True
    add = usub.add_parser("add", help="add or update a user; the password is read from stdin")
    add.add_argument("name")
    add.add_argument("--sender", action="append", default=[], metavar="ADDR",
                     help="address (or @domain) this user may send as; repeatable")
    add.set_defaults(func=cmd_add)
    ls = usub.add_parser("list", help="list users and their allowed senders")
    add_json_flag(ls)
    ls.set_defaults(func=cmd_list)
    rm = usub.add_parser("remove", help="remove a user")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove)
    unlock = usub.add_parser("unlock", help="lift a login's lock after failed AUTH attempts")
    unlock.add_argument("name")
    unlock.set_defaults(func=cmd_unlock)


def _directory(args) -> UserDirectory:
    config = load_config_or_exit(args)
    try:
        return UserDirectory.load(config.auth.users_file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"phigate: {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise SystemExit("phigate: passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_add(args) -> int:
    directory = _directory(args)
    senders = args.sender or (directory.users[args.name].senders
                              if args.name in directory.users else [])
    if not senders:
        return fail("give at least one --sender address (or @domain) for a new user")
    try:
        directory.add(args.name, read_password(), senders)
    except ValueError as exc:
        return fail(str(exc))
    print(f"user {args.name} saved in {directory.path} (senders: {', '.join(senders)})")
    return 0


def cmd_list(args) -> int:
    directory = _directory(args)
    rows = [{"name": n, "senders": e.senders} for n, e in sorted(directory.users.items())]
    if args.json:
        print_json(rows)
    else:
        print_table(["user", "may send as"], [[r["name"], ", ".join(r["senders"])] for r in rows],
                    empty="no users yet: phigate users add NAME --sender ADDR")
    return 0


def cmd_remove(args) -> int:
    directory = _directory(args)
    try:
        directory.remove(args.name)
    except KeyError:
        return fail(f"no user {args.name}")
    print(f"user {args.name} removed")
    return 0


def cmd_unlock(args) -> int:
    from gateway.auth.throttle import AuthThrottle, throttle_path
    config = load_config_or_exit(args)
    throttle = AuthThrottle(throttle_path(config.state_dir), config.auth.throttle)
    if throttle.unlock(args.name):
        print(f"failed logins of {args.name} forgotten; the login is not locked")
    else:
        print(f"{args.name} had no failed logins")
    return 0
