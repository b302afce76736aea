"""structlog configuration: one JSON object per line, ISO timestamps.

All output (structlog and stdlib logging) goes through one ``LineSink``
(``gateway.audit.sink``): lines written inside the event loop are batched per
loop iteration, warnings and errors go out at once after them, and the batch
is flushed at exit and before a fork. ``write_info`` is the hot path for
audit lines: the same processors, without structlog's per-call logger.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import sys
import time
from pathlib import Path

import structlog

from gateway.audit.sink import LineSink, SinkLogger, write_limit

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


class _Installed:
    """What ``configure_logging`` gave structlog, to tell whether it still holds."""

    def __init__(self, sink: LineSink, level: int):
        self.sink = sink
        self.logger = SinkLogger(sink)
        self.processors = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ]
        self.wrapper_class = structlog.make_filtering_bound_logger(level)
        self.info_enabled = level <= logging.INFO
        self.expected = list(self.processors)  # capture_logs edits the list in place
        self.logger_factory = self._logger_for  # one object, compared by identity

    def _logger_for(self, *_names) -> SinkLogger:
        return self.logger

    def is_current(self) -> bool:
        config = structlog.get_config()
        return (config["logger_factory"] is self.logger_factory
                and config["wrapper_class"] is self.wrapper_class
                and config["processors"] == self.expected)


_installed: _Installed | None = None


def configure_logging(level: str = "info", file: Path | None = None) -> None:
    """Route structlog and stdlib logging to JSON lines on stderr or ``file``."""
    global _installed
    flush_logs()  # what the previous configuration still holds goes out first
    # held open for the life of the process (closed at exit); LineSink flushes it
    stream = open(file, "a", encoding="utf-8") if file else sys.stderr  # noqa: SIM115
    installed = _Installed(LineSink(stream, write_limit(stream)), _LEVELS[level])
    structlog.configure(
        processors=installed.processors,
        wrapper_class=installed.wrapper_class,
        logger_factory=installed.logger_factory,
        cache_logger_on_first_use=False,
    )
    _installed = installed
    # Third-party loggers (aiosmtpd's "mail.log" echoes client data): warnings only,
    # formatted by the same JSON renderer; the handler flushes the sink per record.
    handler = logging.StreamHandler(installed.sink)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=structlog.processors.JSONRenderer(),
        foreign_pre_chain=[structlog.processors.add_log_level,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.ERROR)


def write_info(event_dict: dict) -> bool:
    """Log ``event_dict`` at info level through the processors ``configure_logging``
    installed, as structlog would, minus its per-call logger proxy and bind.
    False (nothing done) when structlog's configuration is not that one (not
    configured yet, or inside ``structlog.testing.capture_logs``): the caller
    then logs through structlog."""
    installed = _installed
    if installed is None or not installed.is_current():
        return False
    if installed.info_enabled:
        installed.logger.info(_render_info(installed, event_dict))
    return True


def _render_info(installed: _Installed, event_dict: dict) -> str:
    """What the installed processors make of an info-level ``event_dict``, by a
    shorter road for the common case: no context variables bound, no exception,
    plain JSON values (then: the level, the timestamp, ``json.dumps`` with the
    renderer's separators); anything else goes through the processors
    themselves. ``tests/unit/test_audit_log.py`` compares the two."""
    if "exc_info" not in event_dict and not structlog.contextvars.get_contextvars():
        event_dict["level"] = "info"
        event_dict["timestamp"] = utc_timestamp(time.time_ns())
        try:
            return json.dumps(event_dict)
        except (TypeError, ValueError):
            del event_dict["level"], event_dict["timestamp"]
    for processor in installed.expected:
        event_dict = processor(installed.logger, "info", event_dict)
    return event_dict


_second: list = [None, ""]     # the last second formatted, and its text


def utc_timestamp(ns: int) -> str:
    """``ns`` (since the epoch) as structlog's ISO UTC stamper writes it
    (``2026-12-05T03:39:13.266462Z``; no fraction when it is zero), with the
    date and time of day formatted once a second."""
    seconds, rest = divmod(ns, 1_000_000_000)
    if _second[0] != seconds:
        _second[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    micro = rest // 1000
    return f"{_second[1]}.{micro:06d}Z" if micro else f"{_second[1]}Z"


def flush_logs() -> None:
    """Write out the lines batched so far (at exit, before a fork)."""
    if _installed is not None:
        _installed.sink.flush()


atexit.register(flush_logs)
os.register_at_fork(before=flush_logs)


def get_logger(name: str = "phigate"):
    return structlog.get_logger(name)
