""".ci/system-deps names every Debian package a test asks for.

A test that needs a peer says so through ``missing_peer("… (Debian package
NAME) …")``; each NAME must be in the script's list, or a fresh CI machine
(which has nothing, and installs with --no-install-recommends) fails that
test. Packages that only a *recommends* pulls in, and that the tests need,
are checked by name too.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "system-deps"


def listed() -> set[str]:
    block = re.search(r"^PACKAGES=\((.*?)^\)", SCRIPT.read_text(), re.DOTALL | re.MULTILINE)
    assert block, "no PACKAGES=( … ) in .ci/system-deps"
    return {line.split("#", 1)[0].strip() for line in block.group(1).splitlines()} - {""}


def test_every_package_a_test_names_is_installed():
    asked = set()
    for path in (ROOT / "tests").rglob("*.py"):
        asked |= set(re.findall(r"Debian package ([a-z0-9][a-z0-9.+-]+)", path.read_text()))
    assert asked, "no test names a Debian package"
    assert asked <= listed(), f"add to .ci/system-deps: {sorted(asked - listed())}"


def test_what_no_install_recommends_drops_is_named():
    packages = listed()
    # swaks --tls needs Net::SSLeay (a Recommends of swaks); Debian's python3
    # has no ensurepip without python3-venv (the Makefile and the wheel test make venvs).
    assert {"libnet-ssleay-perl", "libio-socket-ssl-perl", "python3-venv"} <= packages
    assert "--no-install-recommends" in SCRIPT.read_text()
