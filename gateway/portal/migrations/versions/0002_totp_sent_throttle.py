"""TOTP enrolment, the Sent view, the optional read notice and rate limiting:
accounts.totp_pending / totp_last_step, outbox.kind / rcpt / subject (subjects
of existing rows filled from their stored mail), the throttle table.

Revision 0001 builds its tables from the *current* ``schema.metadata``, so a
database created fresh already has all of this when 0002 runs (and, since
0004, no outbox table at all): every step here looks first and adds only
what is missing.

Revision ID: 0002
Revises: 0001
"""
import email.policy
from email.parser import BytesHeaderParser

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NEW_COLUMNS = {
    "accounts": [sa.Column("totp_pending", sa.String(64)),
                 sa.Column("totp_last_step", sa.Integer)],
    "outbox": [sa.Column("kind", sa.String(16), nullable=False, server_default="patient"),
               sa.Column("rcpt", sa.String(320)),
               sa.Column("subject", sa.Text, nullable=False, server_default="")],
}


def _subject(raw: bytes) -> str:
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    return str(headers.get("Subject", ""))[:998]


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    added: set[tuple[str, str]] = set()
    tables = set(inspector.get_table_names())
    for table, columns in NEW_COLUMNS.items():
        if table not in tables:
            continue
        have = {c["name"] for c in inspector.get_columns(table)}
        for column in columns:
            if column.name not in have:
                op.add_column(table, column)
                added.add((table, column.name))
    if "throttle" not in inspector.get_table_names():
        op.create_table(
            "throttle",
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                      primary_key=True, autoincrement=True),
            sa.Column("key", sa.String(64), nullable=False),
            sa.Column("at", sa.Float, nullable=False))
        op.create_index("ix_throttle_key_at", "throttle", ["key", "at"])
    if ("outbox", "subject") in added:
        outbox = sa.table("outbox", sa.column("id", sa.Integer), sa.column("raw", sa.LargeBinary),
                          sa.column("subject", sa.Text))
        rows = bind.execute(sa.select(outbox.c.id, outbox.c.raw)).all()
        for row in rows:
            bind.execute(sa.update(outbox).where(outbox.c.id == row.id)
                         .values(subject=_subject(row.raw)))


def downgrade() -> None:
    op.drop_index("ix_throttle_key_at", table_name="throttle")
    op.drop_table("throttle")
    for table, columns in NEW_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column.name)
