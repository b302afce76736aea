"""Logging and audit: structlog JSON lines on stderr (journald) or a file.

``audit(event, **fields)`` records a state change (received, queued, attempt,
delivered, deferred, bounced, held, shunted …) keyed by queue id. Only
whitelisted, content-free fields are allowed (``events.ALLOWED_FIELDS``):
passing anything else raises in tests and is dropped in production, so a
subject or body can never reach a log line by accident. Inside the event loop
lines are written once per loop iteration (``gateway.audit.sink`` says what
that means if the process is killed).
"""
from gateway.audit.events import ALLOWED_FIELDS, audit
from gateway.audit.setup import configure_logging, get_logger

__all__ = ["ALLOWED_FIELDS", "audit", "configure_logging", "get_logger"]
