"""Small value types used in config models: durations, sizes, host:port."""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgG]i?[bB]?|[bB])?\s*$")
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024,
               "m": 1000**2, "mb": 1000**2, "mib": 1024**2, "mi": 1024**2,
               "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3}


def parse_duration(value) -> float:
    """'5d', '30s', '1.5h', '250ms' or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 5m, 2h or 5d")  # noqa: TRY004 (pydantic wants ValueError)
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError("must be a duration such as 30s, 5m, 2h or 5d")
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    for unit in ("w", "d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds}s"


def parse_size(value) -> int:
    """'25MB', '512KiB', '1000' → bytes."""
    if isinstance(value, bool):
        raise ValueError("must be a size such as 25MB or 512KiB")  # noqa: TRY004 (pydantic wants ValueError)
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ValueError("must be a size such as 25MB or 512KiB")
        n = int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()]
    if n < 0:
        raise ValueError("must not be negative")
    return n


def split_hostport(text: str) -> tuple[str, int]:
    """'127.0.0.1:2587', '[::1]:2587' or 'localhost:0' → (host, port), the one
    host:port rule in phigate (config values, listeners, the portal).
    ValueError when there is no port or it is not 0-65535."""
    host, sep, port = str(text).strip().rpartition(":")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:2587")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("port must be 0-65535 (0 picks a free port)")
    return host, int(port)


def join_hostport(host: str, port: int) -> str:
    """(host, port) → 'host:port', an IPv6 host in brackets ('[::1]:2587')."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_hostport(value) -> str:
    """A config value → normalised 'host:port' (validated by ``split_hostport``)."""
    return join_hostport(*split_hostport(value))


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
HostPort = Annotated[str, BeforeValidator(parse_hostport)]
