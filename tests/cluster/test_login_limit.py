"""The per-client login limit under concurrency, across two nodes: 12 wrong
logins at once from one client address, half to each node's app (one
shared store and secret), against ``login_client_limit`` 5: exactly 5 are
tried (401), the other 7 are refused before any password check (429)."""
from __future__ import annotations

import asyncio

from gateway.portal.auth import hash_password
from tests.cluster.test_secret import serve_node
from tests.portal.conftest import PortalClient

SECRET = b"one-secret-for-the-cluster-0123456789"


async def test_twelve_wrong_logins_at_once_over_two_nodes(portal_store, portal_config):
    account = await portal_store.upsert_account("pat@mail.example", provider="Dr Smith")
    await portal_store.set_account(account["id"],
                                   password_hash=await hash_password("right-password-1"))
    a, base_a = await serve_node(portal_store, portal_config, SECRET)
    b, base_b = await serve_node(portal_store, portal_config, SECRET)
    clients = [PortalClient((base_a, base_b)[i % 2]) for i in range(12)]
    try:
        for client in clients:
            await client.get("/login")

        async def wrong(client) -> int:
            status, _ = await client.post("/login", {"email": "pat@mail.example",
                                                     "password": "wrong", "code": ""})
            return status
        statuses = await asyncio.gather(*(wrong(c) for c in clients))
        assert sorted(statuses) == [401] * 5 + [429] * 7
    finally:
        for client in clients:
            await client.close()
        await a.cleanup()
        await b.cleanup()
