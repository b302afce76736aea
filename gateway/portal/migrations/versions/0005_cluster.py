"""Several nodes on one database: rate limits become one counter row per key
(``limits``, raised atomically by INSERT ... ON CONFLICT DO UPDATE ...
RETURNING) instead of one ``throttle`` row per request counted and then
inserted; ``nodes`` records each gateway of the cluster (``phigate cluster
status``). Throttle rows are short-lived counts: they are dropped, not
carried over (at worst a limit starts afresh once, at the upgrade).

Revision 0001 builds its tables from the current ``schema.metadata``, so a
fresh database has ``limits`` and ``nodes`` already: every step looks first.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "limits" not in tables:
        op.create_table(
            "limits",
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("window_start", sa.Float, nullable=False),
            sa.Column("count", sa.Integer, nullable=False))
    if "nodes" not in tables:
        op.create_table(
            "nodes",
            sa.Column("name", sa.String(255), primary_key=True),
            sa.Column("version", sa.String(64), nullable=False),
            sa.Column("started_at", sa.Float, nullable=False),
            sa.Column("heartbeat_at", sa.Float, nullable=False),
            sa.Column("config_sha256", sa.String(64), nullable=False),
            sa.Column("policy_sha256", sa.String(64), nullable=False),
            sa.Column("users_sha256", sa.String(64), nullable=False),
            sa.Column("certs_sha256", sa.String(64), nullable=False),
            sa.Column("secrets_sha256", sa.String(64), nullable=False),
            sa.Column("spool", sa.Integer, nullable=False))
    if "throttle" in tables:
        op.drop_index("ix_throttle_key_at", table_name="throttle")
        op.drop_table("throttle")


def downgrade() -> None:
    op.create_table(
        "throttle",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("at", sa.Float, nullable=False))
    op.create_index("ix_throttle_key_at", "throttle", ["key", "at"])
    op.drop_table("nodes")
    op.drop_table("limits")
