"""What discovery found at each location, kept for the TTL of the DNS records.

An entry holds the locations looked at (with the raw certificates found
there) and expires after the smallest TTL of the records that decided it:
the CERT RRset that held the certificates, the negative TTL of the names that
held none (RFC 2308), the SRV RRset for LDAP. Only conclusive results are
kept (certificates found, or nothing found without any lookup failing);
a timeout or an unreachable server is asked again next time.
Validation is never cached: it runs on every use, with the CRLs' own cache.

In memory, and as JSON files (0600, atomic) under the cache directory when
there is one, named by the SHA-256 of the address so that the daemon and
``phigate certs discover`` share them.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.queue.safeio import atomic_replace, ensure_dir


@dataclass(frozen=True)
class Location:
    """One place looked at and what it gave."""
    source: str                      # "DNS address-bound" | "DNS domain-bound" | "LDAP host:port"
    location: str                    # the owner name, the SRV name, or "mail=… under base DNs"
    status: str                      # "found" | "none" | "error"
    detail: str = ""                 # for "none" and "error" (and URL records that failed)
    certificates: tuple[bytes, ...] = ()

    def to_json(self) -> dict:
        data = asdict(self)
        data["certificates"] = [base64.b64encode(c).decode() for c in self.certificates]
        return data

    @classmethod
    def from_json(cls, data: dict) -> Location:
        return cls(data["source"], data["location"], data["status"], data["detail"],
                   tuple(base64.b64decode(c) for c in data["certificates"]))


class Bounded(dict):
    """A dict that forgets its oldest entries beyond ``limit`` (a daemon runs
    for months; the addresses, CRL and AIA URLs it meets are not bounded)."""

    def __init__(self, limit: int = 10_000):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value) -> None:
        self.pop(key, None)
        super().__setitem__(key, value)
        while len(self) > self.limit:
            del self[next(iter(self))]


class ResultCache:
    def __init__(self, directory: Path | None):
        self._dir = directory
        self._memory: dict[str, tuple[float, list[Location]]] = Bounded()

    def get(self, address: str) -> list[Location] | None:
        entry = self._memory.get(address) or self._read(address)
        if entry is None or entry[0] <= time.time():
            return None
        self._memory[address] = entry
        return entry[1]

    def put(self, address: str, locations: list[Location], ttl: int) -> None:
        if ttl <= 0:
            return
        entry = (time.time() + ttl, locations)
        self._memory[address] = entry
        path = self._path(address)
        if path is None:
            return
        data = {"expires": entry[0], "locations": [loc.to_json() for loc in locations]}
        try:
            ensure_dir(path.parent)
            atomic_replace(path, json.dumps(data).encode())
        except OSError:
            pass                     # the cache is an optimisation; memory still holds it

    def _path(self, address: str) -> Path | None:
        if self._dir is None:
            return None
        return self._dir / (hashlib.sha256(address.encode()).hexdigest() + ".json")

    def _read(self, address: str) -> tuple[float, list[Location]] | None:
        path = self._path(address)
        if path is None:
            return None
        try:
            data = json.loads(path.read_bytes())
            return float(data["expires"]), [Location.from_json(d) for d in data["locations"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
