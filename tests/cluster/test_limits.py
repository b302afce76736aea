"""Limits and claims in the shared database: 12 rate-limited requests at
once, each from its own connection (as from several nodes), against a limit
of 3 get exactly 3 through; a refused request counts nothing on its other
keys; a window that is over starts again; of 8 simultaneous openings of a
message exactly one is the first (the one that sends the read notice); the
purge runs on one node at a time."""
from __future__ import annotations

import threading

import sqlalchemy as sa

from gateway.portal.store import PURGE_LOCK_KEY, Deposit, open_store


def at_once(url: str, n: int, call) -> list:
    """``call(store)`` from ``n`` stores at the same moment, each with its own
    engine (like ``n`` nodes); their results, in no particular order."""
    stores = [open_store(url) for _ in range(n)]
    barrier = threading.Barrier(n)
    results: list = []

    def request(store) -> None:
        barrier.wait()
        results.append(call(store))

    threads = [threading.Thread(target=request, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    return results


def test_twelve_concurrent_requests_against_a_limit_of_three(portal_store):
    url = portal_store.engine.url.render_as_string(hide_password=False)
    for round_ in range(3):
        checks = [(f"address-{round_}", 3600.0, 3), (f"client-{round_}", 3600.0, 100)]
        results = at_once(url, 12, lambda store, checks=checks: store.throttle_sync(checks))
        assert sorted(results) == [False] * 9 + [True] * 3


def test_refused_request_counts_nothing(portal_store):
    assert portal_store.throttle_sync([("a", 3600.0, 1)]) is True
    # "a" is full: the request is refused and "b" is not counted
    assert portal_store.throttle_sync([("a", 3600.0, 1), ("b", 3600.0, 1)]) is False
    assert portal_store.throttle_sync([("b", 3600.0, 1)]) is True


async def test_window_over_starts_again_and_a_success_is_given_back(portal_store):
    assert portal_store.throttle_sync([("w", 0.0, 1)]) is True
    assert portal_store.throttle_sync([("w", 0.0, 1)]) is True   # a zero window is always over
    assert portal_store.throttle_sync([("x", 3600.0, 2)]) is True
    assert portal_store.throttle_sync([("x", 3600.0, 2)]) is True
    assert portal_store.throttle_sync([("x", 3600.0, 2)]) is False
    await portal_store.unthrottle("x")
    assert portal_store.throttle_sync([("x", 3600.0, 2)]) is True
    assert portal_store.throttle_sync([("x", 3600.0, 2)]) is False


def test_read_notice_is_claimed_by_one_opening(portal_store):
    """The first opening (which sends the read notice) is decided by one
    UPDATE: 8 openings at once from 8 connections, exactly one is first."""
    account = portal_store.upsert_account_sync("reader@mail.example", provider="Dr Smith")
    public_id = portal_store.deposit_sync(account["id"], Deposit(
        "q1", "reader@mail.example", "dr.smith@smiledental.example", "<m@x>", "s", "t", ""),
        3600.0)
    url = portal_store.engine.url.render_as_string(hide_password=False)
    firsts = at_once(url, 8, lambda store: store.open_message_sync(account["id"], public_id)[2])
    assert sorted(firsts) == [False] * 7 + [True]


def test_purge_runs_on_one_node_at_a_time(postgres_url):
    store = open_store(postgres_url)
    try:
        account = store.upsert_account_sync("old@mail.example", provider="Dr Smith")
        store.deposit_sync(account["id"], Deposit(
            "q1", "old@mail.example", "a@b.example", "<m@x>", "s", "t", ""), -1.0)
        with store.engine.begin() as other:       # another node purging right now
            other.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PURGE_LOCK_KEY})
            assert store.purge_sync() == 0
        assert store.purge_sync() == 1
    finally:
        store.close()
