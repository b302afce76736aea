"""``phigate run`` and ``phigate check-config``."""
from __future__ import annotations

import argparse
import re
import sys

import yaml

from gateway.cli.output import add_json_flag, load_config_or_exit, print_json
from gateway.config import ConfigError

_SECRET_KEY = re.compile(r"(password|secret|token|passphrase)(?!_file)", re.IGNORECASE)


def register(sub) -> None:
    run = sub.add_parser("run", help="run the gateway (SMTP listener, queue, delivery)")
    # Internal: how the supervisor starts its worker processes (see gateway/supervisor.py).
    run.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    run.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check-config", help="validate the config and print it, secrets redacted")
    add_json_flag(check)
    check.set_defaults(func=cmd_check_config)


def redact(value, key: str = ""):
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if value is not None and _SECRET_KEY.search(key):
        return "<redacted>"
    return value


def effective(config) -> dict:
    return redact(config.model_dump(mode="json"))


def exit_config_error(exc: ConfigError):
    print("phigate: configuration error:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    raise SystemExit(2) from None


def load_checked(args, isolated: bool = False):
    """The config, with its policy file and classifier settings checked too;
    ``isolated`` (``run``): as the daemon will, without compiling a classifier here."""
    config = load_config_or_exit(args)
    from gateway.app import build_policy
    try:
        build_policy(config, isolated=isolated)
    except ConfigError as exc:
        exit_config_error(exc)
    return config


def cmd_check_config(args) -> int:
    config = load_checked(args)
    data = effective(config)
    if args.json:
        print_json(data)
    else:
        source = args.config_path or "(embedded defaults)"
        print(f"# effective configuration from {source}: OK")
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    return 0


def cmd_run(args) -> int:
    config = load_checked(args, isolated=True)
    from gateway.app import main
    try:
        return main(config, args.config_path, worker=args.worker, listen_fd=args.listen_fd)
    except ConfigError as exc:          # found while starting (a secret file, the schema)
        exit_config_error(exc)
