"""Initial portal schema: accounts, links, messages, attachments, sessions,
outbox, access log. Later revisions alter it with ``op.*`` steps.

Revision ID: 0001
Revises:
"""
from alembic import op

from gateway.portal.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
