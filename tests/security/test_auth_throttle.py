"""The SMTP AUTH throttle on its own, with a clock the test moves (no
waiting): growing delays, lock per login and per address (spraying), locks
lifted by time, success clears the login only, counts shared by two
instances on one file (two worker processes), the database file is 0600."""
from __future__ import annotations

import stat

import structlog

from gateway.auth.throttle import AuthThrottle, address_key
from gateway.config.models import AuthThrottleConfig

CONFIG = AuthThrottleConfig(delay_base=1, delay_max=8, login_lockout_after=4,
                            address_lockout_after=6, lockout_period=60, forget_after=3600)


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path, clock):
    return AuthThrottle(tmp_path / "auth-throttle.db", CONFIG, clock=clock)


def test_delays_grow_and_the_login_locks_then_unlocks(tmp_path):
    clock = Clock()
    t = make(tmp_path, clock)
    failures = [t.failed("frontdesk", "192.0.2.7") for _ in range(4)]
    assert [f.delay for f in failures] == [1, 2, 4, 8]
    assert [f.locked for f in failures] == [False, False, False, True]
    assert t.locked_for("frontdesk", "198.51.100.1") == 60      # the login, from anywhere
    clock.now += 61
    assert t.locked_for("frontdesk", "198.51.100.1") == 0
    t.succeeded("frontdesk")
    assert t.failed("frontdesk", "198.51.100.1").delay == 1


def test_spraying_many_logins_locks_the_address(tmp_path):
    clock = Clock()
    t = make(tmp_path, clock)
    results = [t.failed(f"user{i}", "203.0.113.5") for i in range(6)]
    assert results[-1].locked and results[-1].delay == 8
    assert t.locked_for("anyone", "203.0.113.5") == 60
    assert t.locked_for("anyone", "203.0.113.6") == 0
    t.succeeded("user0")                                # a success does not clear the address
    assert t.locked_for("user0", "203.0.113.5") == 60


def test_counts_shared_between_instances_and_forgotten(tmp_path):
    clock = Clock()
    first, second = make(tmp_path, clock), make(tmp_path, clock)
    first.failed("frontdesk", "192.0.2.7")
    assert second.failed("frontdesk", "192.0.2.8").count == 2
    clock.now += 3601
    assert first.failed("frontdesk", "192.0.2.7").count == 1


def test_database_is_private_and_ipv6_counted_per_64(tmp_path):
    make(tmp_path, Clock())
    assert stat.S_IMODE((tmp_path / "auth-throttle.db").stat().st_mode) == 0o600
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1")


def test_unlock_through_the_cli(tmp_path, capsys):
    from gateway.auth.throttle import throttle_path
    from gateway.cli import main
    config = tmp_path / "phigate.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    throttle = AuthThrottle(throttle_path(tmp_path / "state"), CONFIG)
    for _ in range(4):
        throttle.failed("frontdesk", "192.0.2.7")
    assert throttle.locked_for("frontdesk", "198.51.100.1") > 0
    try:
        assert main(["-c", str(config), "users", "unlock", "frontdesk"]) == 0
    finally:
        structlog.reset_defaults()            # the CLI set logging up on captured stderr
    assert "not locked" in capsys.readouterr().out
    assert throttle.locked_for("frontdesk", "198.51.100.1") == 0
