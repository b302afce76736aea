"""Portal mail leaves through the queue: the ``outbox`` table (a second
queue with its own delivery loop) is replaced by ``sent``, the record of what
each patient sent to the practice and its delivery state.

Mail still waiting in the outbox is not dropped. When the caller hands over
``adopt_unsent`` (``open_store(url, adopt_unsent=…)``; ``phigate run`` does,
with a function that commits each row to its spool) every unsent row becomes
a queue item and a ``sent`` line; delivered rows of patients keep their line.
Without it the migration refuses to run while unsent rows exist, and says
what to do.

Revision ID: 0004
Revises: 0003s
"""
import sqlalchemy as sa
from alembic import context, op

revision = "0004"
down_revision = "0003s"
branch_labels = None
depends_on = None

REFUSAL = ("the portal outbox still holds {n} unsent message(s); they must move into the "
           "queue first. Start the gateway (`phigate run`, with its queue directory "
           "available): it moves them while it upgrades the portal database.")

OUTBOX_COLUMNS = [
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("provider", sa.String(200), nullable=False),
    sa.Column("message_id", sa.String(998), nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False, server_default="patient"),
    sa.Column("rcpt", sa.String(320)),
    sa.Column("subject", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("sent_at", sa.Float, index=True),
]


def _sent_table(create: bool):
    columns = [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("queue_id", sa.String(64), nullable=False, unique=True),
        sa.Column("subject", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("delivered_at", sa.Float),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
    ]
    return op.create_table("sent", *columns) if create else sa.table(
        "sent", *(sa.column(c.name) for c in columns))


def upgrade() -> None:
    bind = op.get_bind()
    tables = set(sa.inspect(bind).get_table_names())
    if "outbox" not in tables:
        return                           # created fresh at head: ``sent`` exists already
    outbox = sa.table("outbox", *(sa.column(c.name) for c in OUTBOX_COLUMNS))
    unsent = bind.execute(sa.select(outbox).where(outbox.c.sent_at.is_(None))
                          .order_by(outbox.c.id)).mappings().all()
    adopt = context.config.attributes.get("adopt_unsent")
    if unsent and adopt is None:
        raise RuntimeError(REFUSAL.format(n=len(unsent)))
    sent = _sent_table(create="sent" not in tables)
    delivered = bind.execute(sa.select(outbox).where(
        outbox.c.sent_at.is_not(None), outbox.c.kind == "patient")).mappings().all()
    for row in delivered:
        bind.execute(sa.insert(sent).values(
            account_id=row["account_id"], queue_id=f"outbox-{row['id']}",
            subject=row["subject"], created_at=row["created_at"], attempts=row["attempts"],
            delivered_at=row["sent_at"], failed=0))
    for row in unsent:
        queue_id = adopt(dict(row))
        if row["kind"] == "patient":
            bind.execute(sa.insert(sent).values(
                account_id=row["account_id"], queue_id=queue_id, subject=row["subject"],
                created_at=row["created_at"], attempts=row["attempts"], failed=0))
    op.drop_table("outbox")


def downgrade() -> None:
    op.create_table("outbox", *OUTBOX_COLUMNS)
    op.drop_table("sent")
