"""Cluster tests use the portal's fixtures (store on SQLite and PostgreSQL,
config, HTTP client)."""
from tests.portal.conftest import (  # noqa: F401 — fixtures
    portal_config,
    portal_port,
    portal_store,
)
