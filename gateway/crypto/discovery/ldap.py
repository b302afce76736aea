"""LDAP certificate lookup on one server (RFC 4523 userCertificate), blocking.

The caller runs ``search_certificates`` in a thread (``asyncio.to_thread``):
``ldap3`` is a maintained, pure-Python LDAPv3 client, but its only reliable
strategy is synchronous, and a Direct lookup must not hold up the event loop
that also runs the SMTP listeners.

On one server, reached at an IP the Direct resolver gave: anonymous bind;
read the rootDSE ``namingContexts`` and search every one of them (subtree)
for ``mail=<address>``, and only when that found no certificate for
``mail=<domain>``; collect the values of ``userCertificate`` and
``userCertificate;binary``. Connection and protocol failures raise
``LdapUnavailable`` with a short reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

_ATTRIBUTES = ["userCertificate;binary", "userCertificate"]


class LdapUnavailable(Exception):
    """The server could not be reached or did not answer the searches."""


@dataclass(frozen=True)
class LdapFound:
    binding: str                     # "address" | "domain" | "" when nothing was found
    base_dns: tuple[str, ...]        # the naming contexts searched
    certificates: tuple[bytes, ...]  # DER values, duplicates removed, in server order


def search_certificates(ip: str, port: int, address: str, domain: str,
                        timeout: float) -> LdapFound:
    seconds = max(1, math.ceil(timeout))    # ldap3 packs SO_RCVTIMEO from an int
    server = ldap3.Server(ip, port=port, get_info=ldap3.NONE, connect_timeout=seconds)
    try:
        conn = ldap3.Connection(server, auto_bind=ldap3.AUTO_BIND_NO_TLS, read_only=True,
                                receive_timeout=seconds, raise_exceptions=True)
    except Exception as exc:         # noqa: BLE001 (ldap3 raises non-LDAP errors too; a server's fault)
        raise LdapUnavailable(_describe(exc)) from None
    try:
        conn.search("", "(objectClass=*)", search_scope=ldap3.BASE,
                    attributes=["namingContexts"])
        bases = tuple(bytes(value).decode("utf-8", "replace") for entry in _entries(conn)
                      for name, values in entry.get("raw_attributes", {}).items()
                      if name.lower() == "namingcontexts" for value in values)
        for kind, target in (("address", address), ("domain", domain)):
            found: dict[bytes, None] = {}
            for base in bases:
                conn.search(base, f"(mail={escape_filter_chars(target)})",
                            search_scope=ldap3.SUBTREE, attributes=_ATTRIBUTES)
                for entry in _entries(conn):
                    for name, values in entry.get("raw_attributes", {}).items():
                        if name.lower().split(";")[0] == "usercertificate":
                            found.update(dict.fromkeys(bytes(x) for x in values))
            if found:
                return LdapFound(kind, bases, tuple(found))
        return LdapFound("", bases, ())
    except Exception as exc:         # noqa: BLE001 (as above)
        raise LdapUnavailable(_describe(exc)) from None
    finally:
        try:
            conn.unbind()
        except LDAPException:
            pass


def _entries(conn: ldap3.Connection) -> list[dict]:
    return [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]


def _describe(exc: Exception) -> str:
    name = exc.__class__.__name__
    if "SocketOpen" in name or "Socket" in name:
        return "LDAP server unreachable"
    if "Timeout" in name or "timed out" in str(exc).lower():
        return "LDAP timeout"
    return f"LDAP error ({name})"
