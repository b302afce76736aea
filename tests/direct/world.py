"""The Direct discovery conformance world: one NSD zone (``dd.test``), three
slapd servers, an HTTP server for CRLs, AIA and certificate URLs, and a PKI,
all built at test time. Each case lives under its own name, as in the public
certificate discovery tool; ``World.expect[case]`` is the exact set of
certificates (SHA-256 of the DER) discovery must choose.

Hosts (``crl.dd.test``, ``aia.dd.test``, ``certs.dd.test``, ``ldap-a.dd.test``
…) exist only in this zone, so every fetch and every LDAP connection proves
that names went through the configured resolver, not the system's.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from tests.crypto.pki import write_pem
from tests.direct.dpki import ca, crl, der, leaf
from tests.peers.httpd import Httpd
from tests.peers.nsd import Nsd, require_nsd
from tests.peers.ports import free_port
from tests.peers.slapd import Slapd, require_slapd

ZONE = "dd.test"


def sha(issued) -> str:
    return hashlib.sha256(der(issued)).hexdigest()


@dataclass
class World:
    nsd: Nsd
    httpd: Httpd
    anchors_file: Path
    anchors: list
    expect: dict[str, set[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)      # sha256 → label, for messages

    def resolver(self, timeout: float = 5.0):
        from gateway.config.models import DirectResolverConfig
        return DirectResolverConfig(nameservers=[self.nsd.address], timeout=timeout)


def _cert_rr(owner: str, *certs) -> str:
    return "".join(f"{owner} IN CERT PKIX 0 0 {base64.b64encode(der(c)).decode()}\n"
                   for c in certs)


@contextlib.contextmanager
def build_world(base: Path):
    require_nsd()
    require_slapd()
    httpd = Httpd()
    httpd.start()
    servers: list[Slapd] = []
    nsd = Nsd(base / "nsd")
    try:
        yield _populate(base, httpd, nsd, servers)
    finally:
        nsd.stop()
        for server in servers:
            server.stop()
        httpd.stop()


def _populate(base: Path, httpd: Httpd, nsd: Nsd, servers: list[Slapd]) -> World:
    def url(host: str, path: str) -> str:
        return httpd.url(path, host=f"{host}.{ZONE}")

    # PKI: the root is an anchor; the intermediate is given to nobody and
    # reachable only through the leaves' AIA caIssuers URL.
    root = ca("Direct Test Root")
    sub = ca("Direct Test Sub", root, crl_url=url("crl", "/root.crl"))
    nc_root = ca("Direct NC Root", bc_critical=False)        # basicConstraints NOT critical
    nc_sub = ca("Direct NC Sub", nc_root, bc_critical=False)
    stranger = ca("Untrusted Root")
    orphan_sub = ca("Direct Orphan Sub", root)                # its AIA URL answers 404
    anchors_file = write_pem(base / "anchors.pem", root.cert, nc_root.cert)

    def ok(**kw):
        return leaf(sub, crl_url=url("crl", "/sub.crl"), aia_url=url("aia", "/sub.der"), **kw)

    httpd.put("/sub.der", der(sub))
    httpd.put("/ncsub.p7c", pkcs7.serialize_certificates([nc_sub.cert], Encoding.DER))
    world = World(nsd, httpd, anchors_file, [root.cert, nc_root.cert])

    def expect(case: str, *chosen) -> None:
        world.expect[case] = {sha(c) for c in chosen}

    rr = ""
    # 1. DNS address-bound (a valid domain-bound one beside it is not used).
    a1, d1 = ok(email=f"d1@dns-addr.{ZONE}"), ok(dns=f"dns-addr.{ZONE}")
    rr += _cert_rr("d1.dns-addr", a1) + _cert_rr("dns-addr", d1)
    expect(f"d1@dns-addr.{ZONE}", a1)
    # 2. DNS domain-bound.
    d2 = ok(dns=f"dns-dom.{ZONE}")
    rr += _cert_rr("dns-dom", d2)
    expect(f"d2@dns-dom.{ZONE}", d2)
    # 3. Valid beside expired, revoked, untrusted, wrongly bound, weak, sign-only.
    mixed = f"d3@mixed.{ZONE}"
    v3 = ok(email=mixed)
    e3 = ok(email=mixed, expired=True)
    r3 = ok(email=mixed)
    u3 = leaf(stranger, email=mixed)
    w3 = ok(email=f"other@mixed.{ZONE}")
    k3 = ok(email=mixed, key="rsa1024")
    s3 = ok(email=mixed, key_usage="sign")
    rr += _cert_rr("d3.mixed", v3, e3, r3, u3, w3, k3, s3)
    expect(mixed, v3)
    world.names.update({sha(e3): "expired", sha(r3): "revoked", sha(u3): "untrusted",
                        sha(w3): "other address", sha(k3): "rsa1024", sha(s3): "sign-only"})
    # 4. Stop rule in DNS: expired address-bound; valid domain-bound and LDAP unused.
    e5, d5, l5 = ok(email=f"d5@stop.{ZONE}", expired=True), ok(dns=f"stop.{ZONE}"), \
        ok(email=f"d5@stop.{ZONE}")
    rr += _cert_rr("d5.stop", e5) + _cert_rr("stop", d5)
    expect(f"d5@stop.{ZONE}")
    # LDAP: three servers; ldap-a has two naming contexts.
    ldap_a = Slapd(base / "ldap-a", ["dc=one,dc=test", "dc=two,dc=test"])
    ldap_b = Slapd(base / "ldap-b", ["dc=b,dc=test"])
    ldap_c = Slapd(base / "ldap-c", ["dc=c,dc=test"])
    servers += [ldap_a, ldap_b, ldap_c]
    ldap_a.add_person("dc=one,dc=test", "d5", mail=f"d5@stop.{ZONE}", certificates=[der(l5)])
    # 5. LDAP address-bound (entry in the second naming context); the domain entry is unused.
    l6, ld6 = ok(email=f"d6@ldap-addr.{ZONE}"), ok(dns=f"ldap-addr.{ZONE}")
    ldap_a.add_person("dc=two,dc=test", "d6", mail=f"d6@ldap-addr.{ZONE}",
                      certificates=[der(l6)])
    ldap_a.add_person("dc=one,dc=test", "ldap-addr", mail=f"ldap-addr.{ZONE}",
                      certificates=[der(ld6)])
    expect(f"d6@ldap-addr.{ZONE}", l6)
    # 6. LDAP domain-bound, with an expired one beside it.
    ld7, ld7x = ok(dns=f"ldap-dom.{ZONE}"), ok(dns=f"ldap-dom.{ZONE}", expired=True)
    ldap_a.add_person("dc=one,dc=test", "ldap-dom", mail=f"ldap-dom.{ZONE}",
                      certificates=[der(ld7), der(ld7x)])
    expect(f"d7@ldap-dom.{ZONE}", ld7)
    # 7. Stop rule in LDAP: expired address-bound entry, valid domain-bound entry.
    e8, ld8 = ok(email=f"d8@ldap-stop.{ZONE}", expired=True), ok(dns=f"ldap-stop.{ZONE}")
    ldap_a.add_person("dc=one,dc=test", "d8", mail=f"d8@ldap-stop.{ZONE}",
                      certificates=[der(e8)])
    ldap_a.add_person("dc=one,dc=test", "ldap-stop", mail=f"ldap-stop.{ZONE}",
                      certificates=[der(ld8)])
    expect(f"d8@ldap-stop.{ZONE}")
    # 8. SRV priority and weight: priority 0 holds an unreachable and an
    # unresolvable target; in priority 1 the heavier ldap-c wins over ldap-b;
    # priority 2 (ldap-a) is never asked.
    srv = f"d9@srv.{ZONE}"
    a9, b9, c9 = ok(email=srv), ok(email=srv), ok(email=srv)
    ldap_a.add_person("dc=one,dc=test", "d9", mail=srv, certificates=[der(a9)])
    ldap_b.add_person("dc=b,dc=test", "d9", mail=srv, certificates=[der(b9)])
    ldap_c.add_person("dc=c,dc=test", "d9", mail=srv, certificates=[der(c9)])
    expect(srv, c9)
    # 8b. A server that answers without an entry passes on to the next target.
    c17 = ok(email=f"d17@srv2.{ZONE}")
    ldap_c.add_person("dc=c,dc=test", "d17", mail=f"d17@srv2.{ZONE}", certificates=[der(c17)])
    expect(f"d17@srv2.{ZONE}", c17)
    # 9. Nothing published anywhere: d10@nothing (no CERT, no SRV).
    expect(f"d10@nothing.{ZONE}")
    # 10. The intermediate's AIA URL answers 404: no path.
    o11 = leaf(orphan_sub, email=f"d11@aia-broken.{ZONE}", aia_url=url("aia", "/missing.der"))
    rr += _cert_rr("d11.aia-broken", o11)
    expect(f"d11@aia-broken.{ZONE}")
    # 11. CA certificates with non-critical basicConstraints (root and intermediate).
    n12 = leaf(nc_sub, email=f"d12@nc.{ZONE}", aia_url=url("aia", "/ncsub.p7c"))
    rr += _cert_rr("d12.nc", n12)
    expect(f"d12@nc.{ZONE}", n12)
    # 12. An answer too large for UDP (TC bit): retried over TCP.
    big = f"d13@big.{ZONE}"
    b13 = [ok(email=big, key="rsa4096") for _ in range(3)]
    rr += _cert_rr("d13.big", *b13)
    expect(big, *b13)
    # 13. IPKIX: the CERT record holds a URL.
    u14 = ok(email=f"d14@url.{ZONE}")
    httpd.put("/d14.der", der(u14))
    rr += f"d14.url IN CERT IPKIX 0 0 {base64.b64encode(url('certs', '/d14.der').encode()).decode()}\n"
    expect(f"d14@url.{ZONE}", u14)

    # 14. Records that give no certificate still count as records: a PGP-only
    # address name means no domain-bound lookup; a dead URL is an error.
    d15, d16 = ok(dns=f"pgp.{ZONE}"), ok(dns=f"url-broken.{ZONE}")
    rr += "d15.pgp IN CERT PGP 0 0 AAECAw==\n" + _cert_rr("pgp", d15)
    dead_url = base64.b64encode(url("certs", "/gone.der").encode()).decode()
    rr += f"d16.url-broken IN CERT IPKIX 0 0 {dead_url}\n" + _cert_rr("url-broken", d16)
    expect(f"d15@pgp.{ZONE}")
    expect(f"d16@url-broken.{ZONE}")

    httpd.put("/root.crl", crl(root).public_bytes(Encoding.DER))
    httpd.put("/sub.crl", crl(sub, [r3]).public_bytes(Encoding.DER))
    closed = free_port()
    for host in ("crl", "aia", "certs", "ldap-a", "ldap-b", "ldap-c", "down"):
        rr += f"{host} IN A 127.0.0.1\n"
    rr += (f"_ldap._tcp.stop IN SRV 0 0 {ldap_a.port} ldap-a.{ZONE}.\n"
           f"_ldap._tcp.ldap-addr IN SRV 0 0 {ldap_a.port} ldap-a.{ZONE}.\n"
           f"_ldap._tcp.ldap-dom IN SRV 0 0 {ldap_a.port} ldap-a.{ZONE}.\n"
           f"_ldap._tcp.ldap-stop IN SRV 0 0 {ldap_a.port} ldap-a.{ZONE}.\n"
           f"_ldap._tcp.srv IN SRV 0 100 {closed} down.{ZONE}.\n"
           f"_ldap._tcp.srv IN SRV 0 0 389 nohost.{ZONE}.\n"
           f"_ldap._tcp.srv IN SRV 1 10 {ldap_b.port} ldap-b.{ZONE}.\n"
           f"_ldap._tcp.srv IN SRV 1 50 {ldap_c.port} ldap-c.{ZONE}.\n"
           f"_ldap._tcp.srv IN SRV 2 0 {ldap_a.port} ldap-a.{ZONE}.\n"
           f"_ldap._tcp.srv2 IN SRV 0 0 {ldap_b.port} ldap-b.{ZONE}.\n"
           f"_ldap._tcp.srv2 IN SRV 1 0 {ldap_c.port} ldap-c.{ZONE}.\n")
    nsd.add_zone(ZONE, rr)
    for server in servers:
        server.start()
    nsd.start()
    return world
