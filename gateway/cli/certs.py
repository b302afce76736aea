"""``phigate certs …``: the S/MIME certificate store (``smime.store_dir``).

    certs import FILE [--for ADDR]        partner certificate(s): PEM, DER, PKCS#7
    certs list [--json]                   everything, expired/expiring marked
    certs show FP [--kind K] [--json]     one certificate by fingerprint prefix
    certs remove FP [--kind K]
    certs identity import FILE [--for ADDR|@domain] [--password-file F] [--key KEY.pem]
    certs anchor add FILE
    certs discover ADDRESS [--json] [--no-cache]     Direct (gateway/cli/direct_certs.py)
    certs publish-records ADDRESS|DOMAIN

The identity password comes from ``--password-file`` or the first line of
standard input (a prompt when stdin is a terminal and FILE is PKCS#12).
Nothing here prints or logs key material.
"""
from __future__ import annotations

import datetime as dt
import getpass
import sys
from pathlib import Path

from gateway.cli import direct_certs
from gateway.cli.output import add_json_flag, fail, load_config_or_exit, print_json, print_table
from gateway.crypto.certstore import CertRecord, CertStore, CertStoreError

MARKS = {"expired": "EXPIRED", "expiring": "expiring soon", "not_yet_valid": "not yet valid",
         "valid": "valid"}
KINDS = ["recipient", "intermediate", "anchor", "identity"]


def register(sub) -> None:
    certs = sub.add_parser("certs", help="S/MIME certificates, identities and trust anchors")
    csub = certs.add_subparsers(dest="certs_command", metavar="ACTION")
    csub.required = True
    imp = csub.add_parser("import", help="import a partner's certificate(s) (PEM, DER, PKCS#7)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--for", dest="for_address", metavar="ADDR",
                     help="use it for this address even if the certificate does not name it")
    imp.set_defaults(func=cmd_import)
    ls = csub.add_parser("list", help="list certificates; expired and expiring ones marked")
    add_json_flag(ls)
    ls.set_defaults(func=cmd_list)
    show = csub.add_parser("show", help="show one certificate")
    show.add_argument("fingerprint", help="fingerprint or a unique prefix of it")
    show.add_argument("--kind", choices=KINDS,
                      help="when the same certificate is stored as two kinds")
    add_json_flag(show)
    show.set_defaults(func=cmd_show)
    rm = csub.add_parser("remove", help="remove a certificate (an identity with its key)")
    rm.add_argument("fingerprint", help="fingerprint or a unique prefix of it")
    rm.add_argument("--kind", choices=KINDS,
                    help="when the same certificate is stored as two kinds")
    rm.set_defaults(func=cmd_remove)
    ident = csub.add_parser("identity", help="the practice's own signing/decryption identities")
    isub = ident.add_subparsers(dest="identity_command", metavar="ACTION")
    isub.required = True
    iimp = isub.add_parser("import", help="import a PKCS#12 file, or a PEM certificate + key")
    iimp.add_argument("file", type=Path)
    iimp.add_argument("--for", dest="for_address", metavar="ADDR|@DOMAIN",
                      help="sender address or @domain (default: the certificate's address)")
    iimp.add_argument("--password-file", type=Path, metavar="F",
                      help="file whose first line is the password (else stdin)")
    iimp.add_argument("--key", type=Path, metavar="KEY.pem", help="PEM private key file")
    iimp.set_defaults(func=cmd_identity_import)
    anchor = csub.add_parser("anchor", help="trust anchors")
    asub = anchor.add_subparsers(dest="anchor_command", metavar="ACTION")
    asub.required = True
    add = asub.add_parser("add", help="trust a CA certificate (PEM, DER, PKCS#7)")
    add.add_argument("file", type=Path)
    add.set_defaults(func=cmd_anchor_add)
    direct_certs.register(csub)


def _store(args) -> CertStore:
    config = load_config_or_exit(args)
    return CertStore(config.effective_cert_store,
                     require_email_protection=config.smime.require_email_protection)


def _row(r: CertRecord, now: dt.datetime) -> list[str]:
    return [r.fingerprint[:16], r.kind, ", ".join(r.addresses) or "-", r.subject,
            r.not_after.strftime("%Y-%m-%d"), MARKS[r.status(now)],
            ",".join(r.key_usage or ("any",)), r.key, r.source]


def cmd_import(args) -> int:
    store = _store(args)
    try:
        records = store.import_certificates(args.file, for_address=args.for_address)
    except (OSError, CertStoreError) as exc:
        return fail(str(exc))
    now = dt.datetime.now(dt.UTC)
    for r in records:
        print(f"imported {r.fingerprint[:16]} for {', '.join(r.addresses) or '(no address)'}"
              f" ({MARKS[r.status(now)]}, until {r.not_after:%Y-%m-%d})")
    if not records:
        print("no end-entity certificate in the file (CA certificates were kept for chains)")
    return 0


def cmd_list(args) -> int:
    records = _store(args).list()
    now = dt.datetime.now(dt.UTC)
    if args.json:
        print_json([r.to_json(now) for r in records])
        return 0
    print_table(["fingerprint", "kind", "address", "subject", "not after", "status",
                 "key usage", "key", "source"], [_row(r, now) for r in records],
                empty="no certificates yet: phigate certs import FILE")
    return 0


def _find(args, operation: str):
    """(record, None) from the store's ``get`` or ``remove``, or (None, exit code)."""
    try:
        return getattr(_store(args), operation)(args.fingerprint, args.kind), None
    except KeyError:
        return None, fail(f"no certificate {args.fingerprint}")
    except CertStoreError as exc:
        return None, fail(str(exc))


def cmd_show(args) -> int:
    record, error = _find(args, "get")
    if record is None:
        return error
    data = record.to_json()
    if args.json:
        print_json(data)
        return 0
    for key, value in data.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{key.replace('_', ' '):20} {'-' if shown in (None, '') else shown}")
    return 0


def cmd_remove(args) -> int:
    record, error = _find(args, "remove")
    if record is None:
        return error
    print(f"removed {record.kind} {record.fingerprint[:16]} ({record.subject})")
    return 0


def _password(args) -> bytes | None:
    if args.password_file:
        line = args.password_file.read_bytes().splitlines()[:1]
        return line[0] if line and line[0] else None
    if sys.stdin.isatty():
        if args.key or args.file.read_bytes().startswith(b"-----"):
            return None              # PEM: an unencrypted key needs no password
        return getpass.getpass("PKCS#12 password: ").encode() or None
    return sys.stdin.buffer.readline().rstrip(b"\r\n") or None


def cmd_identity_import(args) -> int:
    store = _store(args)
    try:
        identity = store.import_identity(args.file, _password(args), args.for_address,
                                         key_path=args.key)
    except (OSError, CertStoreError) as exc:
        return fail(str(exc))
    print(f"identity for {identity.bound_to}: {identity.fingerprint[:16]} "
          f"(chain of {len(identity.chain)}, until {identity.cert.not_valid_after_utc:%Y-%m-%d});"
          f" key stored with mode 0600")
    return 0


def cmd_anchor_add(args) -> int:
    try:
        records = _store(args).add_anchor(args.file)
    except (OSError, CertStoreError) as exc:
        return fail(str(exc))
    for r in records:
        print(f"trust anchor {r.fingerprint[:16]} ({r.subject})")
    return 0
