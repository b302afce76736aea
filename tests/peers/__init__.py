"""Real peers the tests talk to on loopback (an upstream sink, the daemon,
PostgreSQL, Dovecot, Chromium). ``make test`` installs every one of them and
sets PHIGATE_REQUIRE_PEERS=1, so there a missing peer fails the test instead
of skipping it: a skipped test proves nothing."""
import os
import subprocess

import pytest


def missing_peer(reason: str):
    """Skip for lack of a peer, or fail when the run requires every peer."""
    if os.environ.get("PHIGATE_REQUIRE_PEERS") == "1":
        pytest.fail(f"{reason} (PHIGATE_REQUIRE_PEERS=1: every peer must run)")
    pytest.skip(reason)


def stop_process(process: subprocess.Popen | None) -> None:
    """Stop a peer's server process: SIGTERM, then SIGKILL if it does not exit (bounded)."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
