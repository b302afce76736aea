"""CRLs fetched from distribution points, cached until their nextUpdate.

``CrlCache.for_certificate(cert)`` returns the CRLs named by the HTTP URIs of
the certificate's cRLDistributionPoints: from memory or the cache directory
while the copy is current (nextUpdate not passed), else fetched again. A URL
that cannot be fetched or parsed gives nothing (the revocation check then
reports "unknown"); a stale copy is still returned because what it revokes
stays revoked. Files are named by the SHA-256 of the URL (0600, atomic).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.crypto.discovery.cache import Bounded
from gateway.crypto.discovery.fetch import MAX_CRL_BYTES, Fetcher, FetchError
from gateway.crypto.revocation import load_crls
from gateway.queue.safeio import atomic_replace, ensure_dir


def http_uris(cert: x509.Certificate, extension, method=None) -> list[str]:
    """The http(s) URIs in a CRLDistributionPoints (``method`` None) or an
    AuthorityInformationAccess extension (access descriptions of ``method``)."""
    try:
        value = cert.extensions.get_extension_for_class(extension).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    if method is None:
        names = [n for dp in value for n in (dp.full_name or ())]
    else:
        names = [d.access_location for d in value if d.access_method == method]
    return [n.value for n in names if isinstance(n, x509.UniformResourceIdentifier)
            and n.value.lower().startswith(("http://", "https://"))]


class CrlCache:
    def __init__(self, fetcher: Fetcher, directory: Path | None):
        self._fetcher = fetcher
        self._dir = directory
        self._memory: dict[str, x509.CertificateRevocationList] = Bounded(1000)

    async def for_certificate(self, cert: x509.Certificate,
                              now: dt.datetime) -> list[x509.CertificateRevocationList]:
        found = []
        for url in http_uris(cert, x509.CRLDistributionPoints):
            crl = await self.get(url, now)
            if crl is not None:
                found.append(crl)
        return found

    async def get(self, url: str, now: dt.datetime) -> x509.CertificateRevocationList | None:
        cached = self._memory.get(url) or self._read(url)
        if cached is not None and _current(cached, now):
            self._memory[url] = cached
            return cached
        try:
            crls = load_crls(await self._fetcher.get(url, MAX_CRL_BYTES))
        except FetchError:
            crls = []
        if not crls:
            return cached
        self._memory[url] = crls[0]
        self._write(url, crls[0])
        return crls[0]

    def _path(self, url: str) -> Path | None:
        if self._dir is None:
            return None
        return self._dir / (hashlib.sha256(url.encode()).hexdigest() + ".crl")

    def _read(self, url: str) -> x509.CertificateRevocationList | None:
        path = self._path(url)
        try:
            crls = load_crls(path.read_bytes()) if path is not None else []
        except OSError:
            return None
        return crls[0] if crls else None

    def _write(self, url: str, crl: x509.CertificateRevocationList) -> None:
        path = self._path(url)
        if path is None:
            return
        try:
            ensure_dir(path.parent)
            atomic_replace(path, crl.public_bytes(serialization.Encoding.DER))
        except OSError:
            pass                     # the cache is an optimisation; memory still holds it


def _current(crl: x509.CertificateRevocationList, now: dt.datetime) -> bool:
    return crl.next_update_utc is not None and crl.next_update_utc >= now
