"""Shared fixtures. Real peers (upstream sinks, openssl, Dovecot, PostgreSQL,
Chromium, NSD, slapd, an HTTP server) live in ``tests/peers/`` as fixture plugins listed here."""
import pytest

pytest_plugins = [
    "tests.peers.sink",
    "tests.peers.daemon",
    "tests.peers.postgres",
    "tests.peers.dovecot",
    "tests.peers.browser",
    "tests.peers.nsd",
    "tests.peers.slapd",
    "tests.peers.httpd",
]


@pytest.fixture
def anyio_backend():
    return "asyncio"
