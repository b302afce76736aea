"""``phigate smime open MSG.eml [--json] [--output OUT.eml]``.

Decrypts and verifies one message file with the configured certificate
store (practice identities, trust anchors, intermediates, partner
certificates) and the CRL cache, prints the verdict (a table, or JSON with
``--json``) and writes the opened message with its X-Phigate-* headers to
``--output`` (mode 0600: it is decrypted mail). Exit status 0 when nothing
failed, 1 when decryption failed or a signature is invalid.
"""
from __future__ import annotations

import os
from pathlib import Path

from gateway.cli.output import add_json_flag, fail, load_config_or_exit, print_json, print_table
from gateway.crypto.certstore import CertStore
from gateway.crypto.inbound import open_message


def register(sub) -> None:
    smime = sub.add_parser("smime", help="S/MIME tools")
    ssub = smime.add_subparsers(dest="smime_command", metavar="ACTION")
    ssub.required = True
    op = ssub.add_parser("open", help="decrypt and verify a message file, print the verdict")
    op.add_argument("message", type=Path, help="the message (.eml)")
    op.add_argument("--output", type=Path, help="write the opened message here")
    add_json_flag(op)
    op.set_defaults(func=cmd_open)


def cmd_open(args) -> int:
    config = load_config_or_exit(args)
    try:
        raw = args.message.read_bytes()
    except OSError as exc:
        return fail(f"cannot read {args.message}: {exc.strerror}")
    smime = config.smime
    store = CertStore(config.effective_cert_store,
                      require_email_protection=smime.require_email_protection)
    partners = [r.certificate for r in store.list() if r.kind == "recipient"]
    result = open_message(raw, identities=store.identities(), anchors=store.trust_anchors(),
                          intermediates=[*store.intermediates(), *partners],
                          crl_dir=config.effective_crl_cache,
                          require_email_protection=smime.require_email_protection,
                          revocation=smime.crl)
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(result.message)
    verdict = result.verdict()
    if args.json:
        print_json(verdict)
    else:
        print_table(["field", "value"], [(k, ", ".join(v) if isinstance(v, list) else v)
                                         for k, v in verdict.items() if v not in ("", None)])
    return 1 if result.decrypted == "failed" or result.signature_status() == "invalid" else 0
