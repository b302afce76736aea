"""Typed audit events with a whitelist of content-free fields."""
from __future__ import annotations

import os

import structlog

from gateway.audit.setup import flush_logs, write_info

EVENTS = frozenset({
    "received", "refused", "decided", "queued", "attempt", "delivered",
    "deferred", "bounced", "fallback", "held", "released", "dropped", "shunted", "expired",
    "dsn_sent", "recovered", "config_loaded", "config_rejected", "started", "stopping",
    "decrypted", "verified", "signed", "encrypted", "deposited", "notice_sent", "portal_view",
    "portal_login", "portal_reply", "read_receipt",
    "mdn_sent", "mdn_received",
    "auth_failed", "auth_locked", "portal_login_failed", "portal_identity_failed",
    "portal_upload_refused",
})

# Rare events written at once, with the batch before them, rather than with the
# event loop's iteration (gateway.audit.sink): whoever learns of them another way
# first (systemd's READY=1 after a reload, the 535 of a refused login) finds the
# line already there. The per-message events, several a message, are batched.
AT_ONCE = frozenset({
    "started", "stopping", "recovered", "config_loaded", "config_rejected",
    "auth_failed", "auth_locked", "portal_login", "portal_login_failed",
    "portal_identity_failed", "portal_upload_refused",
})

# Fields that can never carry message content. Addresses are allowed in the audit
# log (it is access-controlled like the spool); subjects, bodies and matched text
# have no field here at all.
ALLOWED_FIELDS = frozenset({
    "queue_id", "recipient", "recipients", "sender", "auth_user", "peer", "size", "action",
    "rule", "rules", "decision", "decisions", "detectors", "categories", "locations",
    "findings", "phi", "errors", "attempt", "attempts", "code", "status", "reason", "delay",
    "next_attempt", "fallback", "outcome", "crashes", "policy_version", "latency_ms",
    "cert_fingerprint", "signer", "trusted", "account_id", "message_ref", "source",
    "count", "path", "key", "listener", "fingerprint", "upstream", "mode",
})


def audit(event: str, **fields) -> None:
    """Write one audit line. Unknown fields are dropped (and flagged) so a
    careless caller cannot leak content; set PHIGATE_STRICT_AUDIT=1 (tests) to
    make that an error instead."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    bad = [k for k in fields if k not in ALLOWED_FIELDS]
    if bad:
        if os.environ.get("PHIGATE_STRICT_AUDIT") == "1":
            raise ValueError(f"audit fields not allowed: {bad}")
        fields = {k: v for k, v in fields.items() if k in ALLOWED_FIELDS}
        fields["dropped_fields"] = len(bad)
    # the key order structlog gives: bound values, then "event", then the processors'
    if not write_info({"audit": True, **fields, "event": event}):
        structlog.get_logger("audit").info(event, audit=True, **fields)
    if event in AT_ONCE:
        flush_logs()
