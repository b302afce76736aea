"""Shared CLI helpers: readable tables, ``--json`` output, config loading."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence

from gateway.audit import configure_logging
from gateway.config import Config, ConfigError, load_config


def load_config_or_exit(args) -> Config:
    """Load the config (exit 2 with every problem listed) and send log and
    audit lines where the config says (stderr by default, never stdout)."""
    try:
        config = load_config(args.config_path)
    except ConfigError as exc:
        print("phigate: configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(config.logging.level, config.logging.file)
    return config


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for machines")


def print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Iterable[Sequence], empty: str = "(none)") -> None:
    rows = [["" if c is None else str(c) for c in row] for row in rows]
    if not rows:
        print(empty)
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths))
    print(line.rstrip())
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def fail(message: str, code: int = 1) -> int:
    print(f"phigate: {message}", file=sys.stderr)
    return code
