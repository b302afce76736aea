"""The ``phigate`` command.

Each sub-command family lives in its own module exposing
``register(subparsers)``; this file holds the explicit list of those modules
and the global options (``-c/--config``, ``--version``). Commands that read the config get it
from ``args.config_path`` through ``load_config_or_exit``.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Explicit registry: one module per command family.
COMMAND_MODULES = [
    "gateway.cli.daemon",      # run, check-config
    "gateway.cli.queue",       # queue list|show|retry|hold|release|drop
    "gateway.cli.users",       # users add|list|remove
    "gateway.cli.portal",      # portal grant|revoke|reset|list|serve|purge
    "gateway.cli.policy",      # policy test|eval|check|detectors
    "gateway.cli.certs",       # certs import|list|show|remove|identity import|anchor add
    "gateway.cli.smime",       # smime open
    "gateway.cli.direct",      # direct status
    "gateway.cli.inbound",     # inbound status
    "gateway.cli.cluster",     # cluster status
]


def installed_version() -> str:
    """The version from the installed metadata, whose one source is pyproject.toml."""
    try:
        return version("phigate")
    except PackageNotFoundError:        # a checkout on sys.path without `pip install`
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phigate", description="phigate secure mail gateway")
    parser.add_argument("--version", action="version", version=f"phigate {installed_version()}")
    parser.add_argument("-c", "--config", dest="config_path", type=Path, default=None,
                        help="config YAML (default: the embedded defaults)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
