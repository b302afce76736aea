"""CertStore lookups come from an in-memory index: once it is built, a lookup
opens no file, lists no directory and stats only the store's few directories,
however many certificates are on file; a change by another process (another
CertStore on the same directory, as ``phigate certs`` is to the daemon) is
seen on the next lookup, even when it lands within the file system's
timestamp granularity."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from gateway.crypto.certstore import RACY_WINDOW_NS, CertStore, fingerprint
from tests.crypto.pki import TestPKI, write_pem

COUNT = 12


@pytest.fixture(scope="module")
def pki():
    return TestPKI()


@pytest.fixture(scope="module")
def leaves(pki):
    return [pki.leaf(f"partner{i}@lab{i}.test") for i in range(COUNT)]


def age(directory: Path) -> None:
    """Date every directory of the store back past the racy window, as a
    store that has not changed for a while is."""
    past = time.time_ns() - 10 * RACY_WINDOW_NS
    for root, dirs, _files in os.walk(directory):
        for name in [*dirs, ""]:
            os.utime(os.path.join(root, name), ns=(past, past))


class FileSystemCalls:
    """Counts os.stat calls and records open/listdir/scandir audit events."""

    def __init__(self, monkeypatch):
        self.stats = 0
        self.events: list[tuple[str, str]] = []
        self.active = False
        real_stat = os.stat

        def counting_stat(path, *args, **kwargs):
            if self.active:
                self.stats += 1
            return real_stat(path, *args, **kwargs)

        monkeypatch.setattr(os, "stat", counting_stat)
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args) -> None:
        if self.active and event in {"open", "os.listdir", "os.scandir"}:
            self.events.append((event, str(args[0]) if args else ""))


def test_lookups_do_not_walk_the_store(pki, leaves, tmp_path, monkeypatch):
    store = CertStore(tmp_path / "certs")
    for i, leaf in enumerate(leaves):
        store.import_certificates(write_pem(tmp_path / f"p{i}.pem", leaf.cert))
    cert_path, key_path = leaves[0].write(tmp_path, "own")
    store.import_identity(cert_path, None, "@smile.test", key_path=key_path)
    age(store.directory)
    assert store.certificate_for("partner0@lab0.test") == leaves[0].cert   # builds the index

    calls = FileSystemCalls(monkeypatch)
    calls.active = True
    found = [store.certificate_for(f"partner{i}@lab{i}.test") for i in range(COUNT)]
    found.append(store.certificate_for("nobody@nowhere.test"))
    identity = store.identity_for("dr@smile.test")
    calls.active = False

    assert found == [leaf.cert for leaf in leaves] + [None]
    assert identity is not None and identity.bound_to == "@smile.test"
    assert calls.events == [], "a lookup read the store from disk"
    lookups = COUNT + 2
    # the store, recipients, intermediates, anchors, identities and one identity folder
    assert calls.stats <= lookups * 6, f"{calls.stats} stat calls for {lookups} lookups"


def test_another_process_change_is_seen_on_the_next_lookup(pki, leaves, tmp_path):
    daemon = CertStore(tmp_path / "certs")
    cli = CertStore(tmp_path / "certs")
    assert daemon.certificate_for("partner1@lab1.test") is None
    cli.import_certificates(write_pem(tmp_path / "p.pem", leaves[1].cert))
    assert daemon.certificate_for("partner1@lab1.test") == leaves[1].cert
    # A second change right away (same timestamp tick): a --for binding.
    cli.import_certificates(write_pem(tmp_path / "p.pem", leaves[1].cert),
                            for_address="billing@lab1.test")
    assert daemon.certificate_for("billing@lab1.test") == leaves[1].cert
    cli.remove(fingerprint(leaves[1].cert))
    assert daemon.certificate_for("partner1@lab1.test") is None
    assert daemon.certificate_for("billing@lab1.test") is None


def test_change_to_an_aged_store_is_seen(pki, leaves, tmp_path):
    daemon = CertStore(tmp_path / "certs")
    cli = CertStore(tmp_path / "certs")
    cli.import_certificates(write_pem(tmp_path / "p.pem", leaves[2].cert))
    age(cli.directory)
    assert daemon.certificate_for("partner2@lab2.test") == leaves[2].cert
    assert daemon.identity_for("dr@smile.test") is None
    cert_path, key_path = leaves[3].write(tmp_path, "own")
    cli.import_identity(cert_path, None, "@smile.test", key_path=key_path)
    assert daemon.identity_for("dr@smile.test").cert == leaves[3].cert
    age(cli.directory)
    daemon.identity_for("dr@smile.test")                    # index rebuilt, now trusted
    cert_path, key_path = leaves[4].write(tmp_path, "own2")
    cli.import_identity(cert_path, None, "@smile.test", key_path=key_path)  # replaced in place
    assert daemon.identity_for("dr@smile.test").cert == leaves[4].cert
