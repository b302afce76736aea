"""``phigate certs discover`` and ``phigate certs publish-records`` (Direct).

    certs discover ADDRESS [--json] [--no-cache]
        run Direct certificate discovery exactly as the ``direct`` action does
        (DNS CERT, then LDAP; the stop rule; validation against
        ``direct.anchors``) and print every candidate with its verdict.
        Exit 0 when at least one certificate is usable, 1 when none is.
    certs publish-records ADDRESS|DOMAIN [--ttl SECONDS]
        the CERT resource records (zone-file lines, PKIX) for the practice's
        own Direct certificates (identities in the certificate store) bound to
        that address (SAN rfc822Name) or domain (SAN dNSName).

Registered under ``certs`` by ``gateway.cli.certs``. No traceback, whatever
the network does: discovery never raises, and its failures are rows.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import sys

from cryptography.hazmat.primitives.serialization import Encoding

from gateway.cli.output import add_json_flag, fail, load_config_or_exit, print_json, print_table
from gateway.crypto.certstore import CertStore
from gateway.crypto.discovery import AnchorError, Discoverer, binding, load_anchors
from gateway.crypto.discovery.resolver import owner_name


def register(csub) -> None:
    disc = csub.add_parser("discover", help="find and validate a Direct address's certificates")
    disc.add_argument("address", help="the Direct address, e.g. dr.lee@direct.example.org")
    disc.add_argument("--no-cache", action="store_true",
                      help="look everything up again (the fresh result is still cached)")
    add_json_flag(disc)
    disc.set_defaults(func=cmd_discover)
    pub = csub.add_parser("publish-records",
                          help="CERT records (zone-file lines) for the practice's Direct certificates")
    pub.add_argument("target", metavar="ADDRESS|DOMAIN")
    pub.add_argument("--ttl", type=int, default=3600, help="TTL of the records (default 3600)")
    pub.set_defaults(func=cmd_publish_records)


def cmd_discover(args) -> int:
    config = load_config_or_exit(args)
    try:
        anchors = load_anchors(config.direct.anchors)
    except AnchorError as exc:
        return fail(str(exc), 2)
    discoverer = Discoverer(config.direct.resolver, anchors, config.state_dir / "direct" / "cache")
    result = asyncio.run(discoverer.discover(args.address, use_cache=not args.no_cache))
    if args.json:
        print_json(result.to_json())
    else:
        if not anchors:
            print("note: direct.anchors is empty, so no certificate can be trusted")
        print_table(["source", "location", "sha256", "verdict", "reason"],
                    [[c.source, c.location, (c.sha256 or "-")[:16], c.verdict, c.reason]
                     for c in result.candidates])
        print(f"\n{len(result.chosen)} usable certificate(s) for {result.address}"
              + (" (locations from the cache)" if result.cached else ""))
    return 0 if result.chosen else 1


def cmd_publish_records(args) -> int:
    config = load_config_or_exit(args)
    target = args.target.strip().lower().rstrip(".")
    wanted = "address" if "@" in target else "domain"
    store = CertStore(config.effective_cert_store)
    now = dt.datetime.now(dt.UTC)
    lines = []
    for ident in store.identities():
        if binding(ident.cert, target) != wanted:
            continue
        if ident.cert.not_valid_after_utc < now:
            print(f"phigate: skipped expired certificate {ident.fingerprint[:16]}",
                  file=sys.stderr)
            continue
        data = base64.b64encode(ident.cert.public_bytes(Encoding.DER)).decode()
        lines.append(f"{owner_name(target).to_text()} {args.ttl} IN CERT PKIX 0 0 {data}")
    if not lines:
        return fail(f"no {wanted}-bound Direct identity for {target}: import one with "
                    "phigate certs identity import FILE --for ADDRESS|@DOMAIN")
    print("\n".join(lines))
    return 0
