"""Identity proof at registration and encrypted TOTP secrets:
accounts.identity_verified_at / identity_failures, links.attempts, and
accounts.totp_secret / totp_pending widened to 255 characters (an encrypted
secret is longer than the plain one; SQLite does not enforce lengths).

Like 0002, every step looks first: revision 0001 builds its tables from the
current ``schema.metadata``, so a fresh database already has the columns.
Secrets stored in plain text before this revision are encrypted by
``PortalStore.encrypt_plain_totp_sync`` when the store is opened with its key.

Revision ID: 0003s
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003s"
down_revision = "0002"
branch_labels = None
depends_on = None

NEW_COLUMNS = {
    "accounts": [sa.Column("identity_verified_at", sa.Float),
                 sa.Column("identity_failures", sa.Integer, nullable=False, server_default="0")],
    "links": [sa.Column("attempts", sa.Integer, nullable=False, server_default="0")],
}
WIDENED = ("totp_secret", "totp_pending")


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    for table, columns in NEW_COLUMNS.items():
        have = {c["name"] for c in inspector.get_columns(table)}
        for column in columns:
            if column.name not in have:
                op.add_column(table, column)
    if bind.dialect.name != "sqlite":
        for name in WIDENED:
            op.alter_column("accounts", name, type_=sa.String(255))


def downgrade() -> None:
    for table, columns in NEW_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column.name)
