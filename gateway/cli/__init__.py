"""The ``phigate`` command.

Each sub-command family lives in its own module exposing
``register(subparsers)``; this file holds the explicit list of those modules
and the global options (``-c/--config``, ``--version``). Commands that read the config get it
from ``args.config_path`` through ``load_config_or_exit``. Only the module of the command
given is imported (``phigate run`` does not load the portal's or Direct's libraries);
without a known command (``--help``, a typo) all are, for the full help.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Explicit registry: each top-level command and the module that registers it.
COMMANDS = {
    "run": "gateway.cli.daemon",
    "check-config": "gateway.cli.daemon",
    "queue": "gateway.cli.queue",       # queue list|show|retry|hold|release|drop|digest
    "users": "gateway.cli.users",       # users add|list|remove|unlock
    "portal": "gateway.cli.portal",     # portal grant|revoke|reset|list|serve|purge|...
    "policy": "gateway.cli.policy",     # policy test|eval|check|detectors
    "certs": "gateway.cli.certs",       # certs import|list|show|remove|identity|anchor|discover
    "smime": "gateway.cli.smime",       # smime open
    "direct": "gateway.cli.direct",     # direct status
    "inbound": "gateway.cli.inbound",   # inbound status
    "cluster": "gateway.cli.cluster",   # cluster status
}
COMMAND_MODULES = list(dict.fromkeys(COMMANDS.values()))


def installed_version() -> str:
    """The version from the installed metadata, whose one source is pyproject.toml."""
    try:
        return version("phigate")
    except PackageNotFoundError:        # a checkout on sys.path without `pip install`
        return "unknown (not installed)"


def command_of(argv: list[str]) -> str | None:
    """The top-level command in ``argv`` (skipping the global options), if it is one."""
    args = iter(argv)
    for arg in args:
        if arg in ("-c", "--config"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or only ``command``'s module's ones."""
    parser = argparse.ArgumentParser(prog="phigate", description="phigate secure mail gateway")
    parser.add_argument("--version", action="version", version=f"phigate {installed_version()}")
    parser.add_argument("-c", "--config", dest="config_path", type=Path, default=None,
                        help="config YAML (default: the embedded defaults)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in [COMMANDS[command]] if command in COMMANDS else COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_of(argv))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
