"""structlog configuration: one JSON object per line, ISO timestamps."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure_logging(level: str = "info", file: Path | None = None) -> None:
    """Route structlog and stdlib logging to JSON lines on stderr or ``file``."""
    # held open for the life of the process (closed at exit), line-buffered
    stream = open(file, "a", buffering=1, encoding="utf-8") if file else sys.stderr  # noqa: SIM115
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    # Third-party loggers (aiosmtpd's "mail.log" echoes client data): warnings only,
    # formatted by the same JSON renderer.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=structlog.processors.JSONRenderer(),
        foreign_pre_chain=[structlog.processors.add_log_level,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.ERROR)


def get_logger(name: str = "phigate"):
    return structlog.get_logger(name)
