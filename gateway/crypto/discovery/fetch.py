"""HTTP GETs for Direct (certificate URLs in CERT records, AIA caIssuers, CRL
distribution points), connecting to the address the configured resolver gave.

aiohttp asks ``_ViaDirectResolver`` for the host's addresses instead of
getaddrinfo, so a CRL or AIA host is looked up exactly like a CERT owner name
(``direct.resolver``). Only ``http`` and ``https`` URLs are fetched (LDAP
URLs in CDP/AIA are skipped); bodies are capped; every failure becomes a
``FetchError`` with a short reason that names no content.
"""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.crypto.discovery.resolver import DirectResolver, DnsFailure

MAX_CERT_BYTES = 1 << 20           # one certificate or a .p7c bundle
MAX_CRL_BYTES = 20 << 20


class FetchError(Exception):
    """The URL could not be fetched: unresolvable host, refused, timeout, HTTP error, too large."""


class _ViaDirectResolver(AbstractResolver):
    def __init__(self, resolver: DirectResolver):
        self._resolver = resolver

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        try:
            addresses = await self._resolver.addresses(host)
        except DnsFailure as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise OSError(f"{host} has no address")
        return [ResolveResult(hostname=host, host=ip, port=port,
                              family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for ip in addresses]

    async def close(self) -> None:
        return None


class Fetcher:
    def __init__(self, resolver: DirectResolver, timeout: float):
        self._resolver = resolver
        self._timeout = timeout

    async def get(self, url: str, limit: int = MAX_CERT_BYTES) -> bytes:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchError(f"unsupported URL scheme {scheme or '(none)'}")
        connector = aiohttp.TCPConnector(resolver=_ViaDirectResolver(self._resolver),
                                         use_dns_cache=False)
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                             trust_env=False) as session, \
                    session.get(url, allow_redirects=True, max_redirects=3) as response:
                if response.status != 200:
                    raise FetchError(f"HTTP {response.status}")
                body = bytearray()
                async for chunk in response.content.iter_chunked(1 << 16):
                    body += chunk
                    if len(body) > limit:
                        raise FetchError("response too large")
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError("HTTP timeout") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise FetchError(f"cannot fetch ({exc.__class__.__name__})") from None
        return bytes(body)
