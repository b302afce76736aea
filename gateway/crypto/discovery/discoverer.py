"""Direct certificate discovery: where to look, in which order, when to stop.

1. DNS CERT at the address-bound name ``local.domain``.
2. DNS CERT at the domain-bound name ``domain``, only when step 1 returned
   no CERT record at all.
3. When DNS gave no certificate: SRV ``_ldap._tcp.domain``, targets by
   priority ascending, then weight descending (the order the reference
   implementation and DirectTrust's tools use; deterministic). A target that
   does not resolve or cannot be reached is skipped; on a reachable one,
   ``ldap.search_certificates`` (address, then domain).

PKIX records (type 1) carry the DER certificate; IPKIX (4) and URI (253)
records carry a URL that is fetched. **Stop rule:** the first location that
returns any certificate ends the search, even when none of its certificates
turns out valid (no fallback from an expired address-bound certificate to a
valid domain-bound one). Every certificate of that location is then
validated (``trust.DirectTrust``) and all valid ones are chosen.

A DNS step that fails (timeout, SERVFAIL, a certificate URL that cannot be
fetched) also ends the search, with nothing chosen: what that location holds
is unknown, and going on could pick a certificate the stop rule forbids. The
caller retries later (such results are not cached).

``discover`` never raises: a failure of any kind ends as a candidate row
with verdict "error", and nothing chosen (fail closed).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.crypto.discovery.cache import Location, ResultCache
from gateway.crypto.discovery.crls import CrlCache
from gateway.crypto.discovery.fetch import Fetcher, FetchError
from gateway.crypto.discovery.ldap import LdapUnavailable, search_certificates
from gateway.crypto.discovery.resolver import DirectResolver, DnsFailure, owner_name
from gateway.crypto.discovery.trust import DirectTrust, certificates_in, split_address

log = logging.getLogger("phigate.direct")

PKIX, IPKIX, URI = 1, 4, 253
ERROR_TTL = 0                        # a failed lookup is not cached


@dataclass(frozen=True)
class Candidate:
    """One row of the discovery report: a certificate with its verdict, or a
    location that gave none (``sha256`` None, verdict "none" or "error")."""
    source: str                      # DNS address-bound | DNS domain-bound | LDAP host:port
    location: str
    sha256: str | None               # hex SHA-256 of the DER
    verdict: str                     # valid | invalid | none | error
    reason: str

    def to_json(self) -> dict:
        return {"source": self.source, "location": self.location, "sha256": self.sha256,
                "verdict": self.verdict, "reason": self.reason}


@dataclass
class DiscoveryResult:
    address: str
    chosen: list[x509.Certificate] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    cached: bool = False             # the locations came from the cache

    @property
    def temporary_failure(self) -> bool:
        """Nothing chosen and some lookup failed (DNS error, unreachable LDAP
        server, unfetchable URL): try again later rather than give up."""
        return not self.chosen and any(c.verdict == "error" for c in self.candidates)

    def to_json(self) -> dict:
        valid = {c.sha256: c for c in self.candidates if c.verdict == "valid"}
        return {"address": self.address,
                "chosen": [{"sha256": sha256(c), "subject": c.subject.rfc4514_string(),
                            "not_after": c.not_valid_after_utc.isoformat(),
                            "source": valid[sha256(c)].source} for c in self.chosen],
                "candidates": [c.to_json() for c in self.candidates],
                "cached": self.cached, "temporary_failure": self.temporary_failure}


def sha256(cert_or_der: x509.Certificate | bytes) -> str:
    der = (cert_or_der if isinstance(cert_or_der, bytes)
           else cert_or_der.public_bytes(Encoding.DER))
    return hashlib.sha256(der).hexdigest()


@dataclass
class _Search:
    """The locations looked at so far and the TTL that bounds caching them."""
    locations: list[Location] = field(default_factory=list)
    ttl: int = 86400

    def add(self, location: Location, ttl: int) -> Location:
        self.locations.append(location)
        self.ttl = min(self.ttl, ttl)
        return location


class Discoverer:
    def __init__(self, resolver_config, anchors: Sequence[x509.Certificate],
                 cache_dir: Path | None):
        """``resolver_config``: ``direct.resolver`` (``nameservers``, ``timeout``).
        ``cache_dir``: where DNS results and CRLs are kept; None = memory only."""
        self.timeout = float(resolver_config.timeout)
        self.resolver = DirectResolver(resolver_config.nameservers, self.timeout)
        self.fetcher = Fetcher(self.resolver, self.timeout)
        crl_dir = cache_dir / "crl" if cache_dir is not None else None
        self.trust = DirectTrust(anchors, self.fetcher, CrlCache(self.fetcher, crl_dir))
        self._cache = ResultCache(cache_dir / "lookups" if cache_dir is not None else None)

    async def discover(self, address: str, *, use_cache: bool = True) -> DiscoveryResult:
        local, domain = split_address(address)
        address = f"{local.lower()}@{domain}"
        if not local or "." not in domain:
            return DiscoveryResult(address, [], [Candidate("-", address, None, "error",
                                                           "not a Direct address")])
        try:
            return await self._discover(address, domain, use_cache)
        except Exception as exc:     # noqa: BLE001 (fail closed: nothing chosen, no traceback)
            log.warning("direct discovery failed unexpectedly: %s", exc.__class__.__name__)
            return DiscoveryResult(address, [], [Candidate(
                "-", address, None, "error", f"internal error ({exc.__class__.__name__})")])

    async def _discover(self, address: str, domain: str, use_cache: bool) -> DiscoveryResult:
        locations = self._cache.get(address) if use_cache else None
        cached = locations is not None
        if locations is None:
            search = await self._locate(address, domain)
            locations = search.locations
            if any(loc.certificates for loc in locations) or all(
                    loc.status != "error" for loc in locations):
                self._cache.put(address, locations, search.ttl)
        result = DiscoveryResult(address, cached=cached)
        for loc in locations:
            if not loc.certificates:
                result.candidates.append(Candidate(loc.source, loc.location, None, loc.status,
                                                   loc.detail))
                continue
            for der in loc.certificates:
                result.candidates.append(await self._judge(loc, der, address, result.chosen))
        return result

    async def _judge(self, loc: Location, der: bytes, address: str,
                     chosen: list[x509.Certificate]) -> Candidate:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return Candidate(loc.source, loc.location, sha256(der), "invalid",
                             "not an X.509 certificate")
        verdict = await self.trust.validate(cert, address, purpose="encrypt")
        if not verdict.valid:
            return Candidate(loc.source, loc.location, sha256(der), "invalid", verdict.reason)
        if cert not in chosen:
            chosen.append(cert)
        reason = f"{verdict.binding}-bound, chains to a Direct anchor"
        return Candidate(loc.source, loc.location, sha256(der), "valid",
                         reason + (f"; {verdict.reason}" if verdict.reason else ""))

    async def _locate(self, address: str, domain: str) -> _Search:
        search = _Search()
        first, had_records = await self._dns(address, "DNS address-bound", search)
        if first.certificates or first.status == "error":
            return search
        if not had_records:
            second, _ = await self._dns(domain, "DNS domain-bound", search)
            if second.certificates or second.status == "error":
                return search
        await self._ldap(address, domain, search)
        return search

    async def _dns(self, name: str, source: str, search: _Search) -> tuple[Location, bool]:
        try:
            owner = owner_name(name).to_text()
        except dns.exception.DNSException:
            return search.add(Location(source, name, "error", "not a valid DNS name"),
                              ERROR_TTL), False
        try:
            records = await self.resolver.lookup(owner, "CERT")
        except DnsFailure as exc:
            return search.add(Location(source, owner, "error", str(exc)), ERROR_TTL), False
        certs: list[bytes] = []
        failed: list[str] = []       # URLs that could not be fetched: unknown, so an error
        ignored: list[str] = []      # records that can never give a certificate
        for rd in records.rdata:
            if rd.certificate_type == PKIX:
                certs.append(bytes(rd.certificate))
            elif rd.certificate_type in (IPKIX, URI):
                url = bytes(rd.certificate).decode("ascii", "replace")
                try:
                    found = certificates_in(await self.fetcher.get(url))
                except FetchError as exc:
                    failed.append(f"certificate URL {url}: {exc}")
                    continue
                certs += [c.public_bytes(Encoding.DER) for c in found]
                if not found:
                    ignored.append(f"certificate URL {url}: no certificate in it")
            else:
                ignored.append(f"CERT type {rd.certificate_type} ignored")
        detail = "; ".join(failed + ignored)
        if certs:
            location = Location(source, owner, "found", detail, tuple(certs))
        elif failed:
            location = Location(source, owner, "error", detail)
        elif records.rdata:
            location = Location(source, owner, "none", detail)
        else:
            location = Location(source, owner, "none", "no CERT records")
        return search.add(location, records.ttl), bool(records.rdata)

    async def _ldap(self, address: str, domain: str, search: _Search) -> None:
        srv_name = f"_ldap._tcp.{domain}"
        try:
            srv = await self.resolver.lookup(srv_name, "SRV")
        except DnsFailure as exc:
            search.add(Location("LDAP", srv_name, "error", str(exc)), ERROR_TTL)
            return
        targets = sorted((rd for rd in srv.rdata if rd.target.to_text() != "."),
                         key=lambda rd: (rd.priority, -rd.weight, rd.target.to_text(), rd.port))
        if not targets:
            search.add(Location("LDAP", srv_name, "none", "no SRV records"), srv.ttl)
            return
        for rd in targets:
            found = await self._ldap_server(rd.target.to_text(omit_final_dot=True), rd.port,
                                            address, domain)
            search.add(found, srv.ttl if found.status != "error" else 86400)
            if found.certificates:
                return

    async def _ldap_server(self, host: str, port: int, address: str, domain: str) -> Location:
        source = f"LDAP {host}:{port}"
        try:
            ips = await self.resolver.addresses(host)
        except DnsFailure as exc:
            return Location(source, host, "error", f"host does not resolve ({exc})")
        if not ips:
            return Location(source, host, "error", "host does not resolve")
        problem = ""
        for ip in ips:
            try:
                found = await asyncio.to_thread(search_certificates, ip, port, address,
                                                domain, self.timeout)
            except LdapUnavailable as exc:
                problem = str(exc)
                continue
            where = f"under {', '.join(found.base_dns) or '(no naming context)'}"
            if not found.certificates:
                return Location(source, f"mail={address}, mail={domain} {where}", "none",
                                "no entry with a certificate")
            target = address if found.binding == "address" else domain
            return Location(source, f"mail={target} {where}", "found", "", found.certificates)
        return Location(source, host, "error", problem or "unreachable")

