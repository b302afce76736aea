"""Table definitions of the portal store (SQLAlchemy Core).

Message bodies and attachments are kept only until ``expires_at`` (the
configured retention); the purge removes them. Secrets (session ids, one-time
link tokens) are stored as SHA-256 hashes, never in the clear.

Changes after revision 0001 go through a new alembic revision in
``migrations/versions`` (0002 added the TOTP enrolment columns, the outbox's
kind/rcpt/subject and the throttle table; 0003s the identity-proof columns
and room for encrypted TOTP secrets; 0004 replaced the outbox by the
``sent`` record: portal mail now leaves through the queue; 0005 replaced the
``throttle`` rows by atomic ``limits`` counters and added ``nodes``); never
edit an applied revision.
"""
from __future__ import annotations

from sqlalchemy import (
                        BigInteger,
                        Column,
                        Float,
                        ForeignKey,
                        Integer,
                        LargeBinary,
                        MetaData,
                        String,
                        Table,
                        Text,
                        UniqueConstraint,
)

metadata = MetaData()

accounts = Table(
    "accounts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("public_id", String(32), nullable=False, unique=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("first_name", String(200), nullable=False, default=""),
    Column("last_name", String(200), nullable=False, default=""),
    Column("birth_date", String(10), nullable=False, default=""),     # ISO date or ""
    Column("phone", String(50), nullable=False, default=""),
    Column("address", Text, nullable=False, default=""),
    Column("provider", String(200), nullable=False, default=""),
    Column("password_hash", String(300)),                              # none: not registered yet
    Column("totp_secret", String(255)),                                # encrypted (store.TotpCipher)
    Column("totp_pending", String(255)),                               # enrolment not confirmed yet
    Column("totp_last_step", Integer),                                 # last accepted time step
    Column("status", String(16), nullable=False, default="active"),    # active | revoked
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("lock_count", Integer, nullable=False, default=0),
    Column("locked_until", Float, nullable=False, default=0.0),
    Column("created_at", Float, nullable=False),
    # identity proof at registration: a birth date on file, or staff approval
    Column("identity_verified_at", Float),                             # staff confirmed who it is
    Column("identity_failures", Integer, nullable=False, default=0, server_default="0"),
)

links = Table(
    "links", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", String(16), nullable=False),                     # register | reset
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),   # wrong birth dates
)

messages = Table(
    "messages", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("public_id", String(32), nullable=False, unique=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("queue_id", String(64), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("sender", String(320), nullable=False, default=""),
    Column("message_id", String(998), nullable=False, default=""),
    Column("subject", Text, nullable=False, default=""),
    Column("body_text", Text, nullable=False, default=""),
    Column("body_html", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("read_at", Float),
    Column("expires_at", Float, nullable=False, index=True),
    UniqueConstraint("queue_id", "recipient", name="uq_messages_queue_recipient"),
)

attachments = Table(
    "attachments", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("public_id", String(32), nullable=False, unique=True),
    Column("message_id", Integer, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("data", LargeBinary, nullable=False),
)

sessions = Table(
    "sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
)

# What each patient sent to the practice (the "Sent" view). The mail itself
# is a queue item (``queue_id``); the action delivering it records here when
# it was delivered (``delivered_at``), how often it was tried and whether it
# failed for good. Nothing reads this table to deliver.
sent = Table(
    "sent", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("queue_id", String(64), nullable=False, unique=True),
    Column("subject", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("delivered_at", Float),
    Column("failed", Integer, nullable=False, default=0),      # 1: given up, the patient should call
)

access_log = Table(
    "access_log", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("account_id", Integer, nullable=False, index=True),
    Column("event", String(32), nullable=False),
    Column("message_ref", String(32), nullable=False, default=""),
    Column("at", Float, nullable=False),
)

# Rate limiting shared by every node: one row per counted key, its count in
# the current fixed window, raised by a single INSERT ... ON CONFLICT DO
# UPDATE ... RETURNING (store.throttle_sync), so concurrent requests on any
# node cannot both see room under the limit. ``key`` is an HMAC of what is
# counted (an address asked for, a client address), never the address itself.
limits = Table(
    "limits", metadata,
    Column("key", String(64), primary_key=True),
    Column("window_start", Float, nullable=False),
    Column("count", Integer, nullable=False),
)

# The nodes of a cluster (gateway.cluster): each gateway sharing the store
# reports itself here, with the hashes of what must be the same everywhere
# and the mail in its own spool. No PHI: names, versions, hashes, counts.
nodes = Table(
    "nodes", metadata,
    Column("name", String(255), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("config_sha256", String(64), nullable=False),
    Column("policy_sha256", String(64), nullable=False),
    Column("users_sha256", String(64), nullable=False),
    Column("certs_sha256", String(64), nullable=False),
    Column("secrets_sha256", String(64), nullable=False),     # portal secret + TOTP key
    Column("spool", Integer, nullable=False, default=0),       # items in its queue and hold
)
