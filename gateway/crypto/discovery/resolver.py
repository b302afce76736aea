"""DNS for Direct: CERT, SRV and host addresses through the configured resolver.

Every name Direct looks up (the CERT owner names, ``_ldap._tcp.<domain>``,
the SRV targets, the hosts of LDAP servers and of CRL, AIA and certificate
URLs) goes through one dnspython resolver built from ``direct.resolver``:
the configured ``HOST:PORT`` nameservers, or the system's resolvers from
resolv.conf when the list is empty, never getaddrinfo. A UDP answer with the
TC bit is asked again over TCP (dnspython's resolver does this on its own);
EDNS0 advertises 1232 octets, the size that avoids IP fragmentation.

Answers carry their TTL and "nothing there" answers (NXDOMAIN, NODATA) carry
the negative TTL of the zone (RFC 2308: the SOA's TTL capped by its MINIMUM)
so that callers can cache both.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from gateway.config.types import split_hostport

NEGATIVE_TTL_DEFAULT = 300       # no SOA in a negative answer: cache "nothing" this long
NEGATIVE_TTL_MAX = 3600


class DnsFailure(Exception):
    """The lookup itself failed (timeout, SERVFAIL, no nameserver answered)."""


@dataclass(frozen=True)
class Records:
    """The records of one RRset, or none (``rdata`` empty) with the negative TTL."""
    rdata: tuple
    ttl: int


def owner_name(address_or_domain: str) -> dns.name.Name:
    """``local@domain`` → ``local.domain.``, the address-bound CERT owner name
    as the conformance tools and the reference implementation form it (``@``
    becomes a dot; a dot inside the local part is NOT escaped as RFC 4398
    §3.3 would have it, because no Direct peer publishes the escaped form);
    a bare domain → its name."""
    return dns.name.from_text(address_or_domain.replace("@", "."))


class DirectResolver:
    def __init__(self, nameservers: Sequence[str], timeout: float):
        if nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [_nameserver(text) for text in nameservers]
        else:
            try:
                resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                resolver = dns.asyncresolver.Resolver(configure=False)   # every lookup fails
        resolver.timeout = resolver.lifetime = timeout
        resolver.use_edns(0, 0, 1232)
        resolver.cache = None        # callers cache with the TTL; no second layer
        self._resolver = resolver

    async def lookup(self, name: str | dns.name.Name, rdtype: str) -> Records:
        """The RRset of ``rdtype`` at ``name`` (after CNAMEs); empty for NXDOMAIN/NODATA."""
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False,
                                                  raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as exc:
            responses = list(exc.responses().values())
            return Records((), _negative_ttl(responses[0] if responses else None))
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsFailure(_describe(exc)) from None
        if answer.rrset is None:
            return Records((), _negative_ttl(answer.response))
        return Records(tuple(answer.rrset), answer.rrset.ttl)

    async def addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of ``host`` (an IP literal is returned as is)."""
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return [host]
        found: list[str] = []
        failure: DnsFailure | None = None
        for rdtype in ("A", "AAAA"):
            try:
                found += [rd.address for rd in (await self.lookup(host, rdtype)).rdata]
            except DnsFailure as exc:
                failure = exc
        if not found and failure is not None:
            raise failure
        return found


def _nameserver(text: str) -> dns.nameserver.Do53Nameserver:
    host, port = split_hostport(text)
    return dns.nameserver.Do53Nameserver(host, port=port)


def _negative_ttl(response: dns.message.Message | None) -> int:
    if response is not None:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                return min(rrset.ttl, rrset[0].minimum, NEGATIVE_TTL_MAX)
    return NEGATIVE_TTL_DEFAULT


def _describe(exc: BaseException) -> str:
    if isinstance(exc, dns.resolver.LifetimeTimeout | dns.exception.Timeout):
        return "DNS timeout"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "no nameserver answered (SERVFAIL or refused)"
    return f"DNS error ({exc.__class__.__name__})"
