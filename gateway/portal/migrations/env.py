"""alembic environment for the portal store: runs on the connection the store
hands over in ``config.attributes["connection"]`` (no alembic.ini)."""
from alembic import context

from gateway.portal.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
