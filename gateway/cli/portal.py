"""``phigate portal grant|revoke|reset|list|pending|approve|serve|purge|migrate``:
patient portal accounts.

``grant`` takes Open Dental's required patient fields; a new account gets a
one-time registration link (printed, or queued for mailing with ``--send``).
``reset`` issues a password-reset link the same way. An account made when
mail was deposited has no birth date on file, so nothing proves who registers
it: ``pending`` lists such accounts (and those with too many wrong birth
dates), ``approve`` records that staff confirmed the patient (optionally
adding the birth date, which registration then asks for) and issues a fresh
link. ``serve`` runs the web portal alone (its own process sharing the store,
e.g. a portal host in a DMZ sharing the PostgreSQL store); like ``--send`` it
puts every mail into the gateway's queue (``RemoteSpool``: through the
running daemon, or straight into the spool when none runs), never sends
itself. ``migrate`` upgrades the database's schema by hand (under the lock
every node takes when it upgrades at start).
"""
from __future__ import annotations

import asyncio
import datetime
import signal

from gateway.cli.output import add_json_flag, fail, load_config_or_exit, print_json, print_table


def register(sub) -> None:
    portal = sub.add_parser("portal", help="patient portal accounts and web server")
    psub = portal.add_subparsers(dest="portal_command", metavar="ACTION")
    psub.required = True

    grant = psub.add_parser("grant", help="give a patient (or outside provider) portal access")
    grant.add_argument("email")
    for flag, text in (("--first-name", "first name"), ("--last-name", "last name"),
                       ("--birth-date", "date of birth, YYYY-MM-DD"), ("--phone", "phone"),
                       ("--address", "postal address"),
                       ("--provider", "primary provider (as named in portal.provider_*)")):
        grant.add_argument(flag, required=True, help=text)
    grant.add_argument("--send", action="store_true", help="e-mail the registration link")
    grant.set_defaults(func=cmd_grant)

    revoke = psub.add_parser("revoke", help="end access: no login, sessions and links removed")
    revoke.add_argument("email")
    revoke.set_defaults(func=cmd_revoke)

    reset = psub.add_parser("reset", help="issue a one-time password-reset link")
    reset.add_argument("email")
    reset.add_argument("--send", action="store_true", help="e-mail the link to the account")
    reset.add_argument("--clear-totp", action="store_true",
                       help="also turn off the account's two-step sign-in (lost phone)")
    reset.set_defaults(func=cmd_reset)

    pending = psub.add_parser("pending", help="accounts waiting for staff to confirm identity")
    add_json_flag(pending)
    pending.set_defaults(func=cmd_pending)

    approve = psub.add_parser("approve", help="staff confirmed the patient's identity: "
                              "let the registration link work")
    approve.add_argument("email")
    approve.add_argument("--birth-date", help="date of birth, YYYY-MM-DD (then asked at "
                         "registration)")
    approve.add_argument("--send", action="store_true", help="e-mail a fresh registration link")
    approve.set_defaults(func=cmd_approve)

    ls = psub.add_parser("list", help="list portal accounts")
    add_json_flag(ls)
    ls.set_defaults(func=cmd_list)

    serve = psub.add_parser("serve", help="run the portal web server alone (until SIGTERM)")
    serve.set_defaults(func=cmd_serve)

    purge = psub.add_parser("purge", help="delete messages past their retention now")
    purge.set_defaults(func=cmd_purge)

    migrate = psub.add_parser("migrate", help="upgrade the portal database's schema now "
                              "(nodes also do it when they start, one at a time)")
    add_json_flag(migrate)
    migrate.set_defaults(func=cmd_migrate)


def _store(config):
    from gateway.portal.service import open_portal_store
    return open_portal_store(config.portal, config.state_dir)


def _iso_date(text: str) -> str:
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise SystemExit("phigate: --birth-date must be YYYY-MM-DD") from None


def remote_spool(config):
    from gateway.queue.control import RemoteSpool
    return RemoteSpool(config.queue.dir, config.state_dir, config.workers,
                       max(1, config.queue.max_items // config.workers))


async def _deliver_link(config, email: str, link: str, purpose: str) -> int:
    from gateway.actions.portal import NoticeTemplate
    from gateway.app import hostname_of
    from gateway.portal.mails import phi_free
    from gateway.queue.control import SpoolUnavailable
    sender = config.portal.notice_from or f"portal@{hostname_of(config)}"
    data = NoticeTemplate(config.portal).build(sender, email, link, purpose == "register")
    envelope, plan = phi_free(sender, email, f"portal-{purpose}",
                              f"the portal {purpose} link an administrator sent")
    try:
        queue_id = await remote_spool(config).enqueue(envelope, data, plan)
    except SpoolUnavailable as exc:
        return fail(f"the link was not queued: {exc}")
    print(f"{purpose} link for {email} queued as {queue_id}")
    return 0


def _issue_link(config, store, account: dict, purpose: str, send: bool) -> int:
    ttl = (config.portal.registration_link_ttl if purpose == "register"
           else config.portal.reset_link_ttl)
    token = store.issue_link_sync(account["id"], purpose, ttl)
    link = f"{config.portal.base_url.rstrip('/')}/{purpose}/{token}"
    if send:
        return asyncio.run(_deliver_link(config, account["email"], link, purpose))
    print(f"one-time {purpose} link (give it only to the account holder): {link}")
    return 0


def cmd_grant(args) -> int:
    config = load_config_or_exit(args)
    store = _store(config)
    account = store.upsert_account_sync(
        args.email, first_name=args.first_name, last_name=args.last_name,
        birth_date=_iso_date(args.birth_date), phone=args.phone, address=args.address,
        provider=args.provider)
    print(f"portal access granted to {account['email']}")
    if account["password_hash"] is None:
        return _issue_link(config, store, account, "register", args.send)
    return 0


def _existing(store, email: str) -> dict:
    account = store.account_by_email_sync(email)
    if account is None:
        raise SystemExit(f"phigate: no portal account for {email}")
    return account


def cmd_revoke(args) -> int:
    config = load_config_or_exit(args)
    store = _store(config)
    store.revoke_sync(_existing(store, args.email)["id"])
    print(f"portal access revoked for {args.email}")
    return 0


def cmd_reset(args) -> int:
    config = load_config_or_exit(args)
    store = _store(config)
    account = _existing(store, args.email)
    if account["status"] != "active":
        return fail("the account is revoked; grant access again first")
    store.set_account_sync(account["id"], failed_logins=0, locked_until=0.0)
    if args.clear_totp:
        store.set_account_sync(account["id"], totp_secret=None, totp_pending=None,
                               totp_last_step=None)
        print(f"two-step sign-in turned off for {account['email']}")
    purpose = "reset" if account["password_hash"] else "register"
    return _issue_link(config, store, account, purpose, args.send)


def cmd_pending(args) -> int:
    config = load_config_or_exit(args)
    rows = _store(config).pending_accounts_sync(config.portal.identity_account_max_attempts)
    if args.json:
        print_json(rows)
        return 0
    print_table(["email", "name", "waiting since", "why"],
                [[r["email"], f"{r['first_name']} {r['last_name']}".strip(),
                  datetime.datetime.fromtimestamp(r["created_at"]).strftime("%Y-%m-%d %H:%M"),
                  r["reason"]] for r in rows],
                empty="(no account waits for staff)")
    return 0


def cmd_approve(args) -> int:
    config = load_config_or_exit(args)
    store = _store(config)
    account = _existing(store, args.email)
    if account["status"] != "active":
        return fail("the account is revoked; grant access again first")
    store.approve_identity_sync(account["id"],
                                _iso_date(args.birth_date) if args.birth_date else None)
    print(f"identity confirmed for {account['email']}")
    if account["password_hash"] is None:
        return _issue_link(config, store, account, "register", args.send)
    return 0


def cmd_list(args) -> int:
    config = load_config_or_exit(args)
    rows = _store(config).list_accounts_sync()
    if args.json:
        print_json(rows)
        return 0
    print_table(["email", "name", "provider", "status", "registered", "locked", "messages",
                 "read"],
                [[r["email"], f"{r['first_name']} {r['last_name']}".strip(), r["provider"],
                  r["status"], "yes" if r["registered"] else "no",
                  "yes" if r["locked"] else "no", r["messages"], r["read"]] for r in rows],
                empty="(no portal accounts)")
    return 0


def cmd_purge(args) -> int:
    config = load_config_or_exit(args)
    removed = _store(config).purge_sync(sent_retention=config.portal.retention)
    print(f"{removed} expired message(s) deleted")
    return 0


def cmd_migrate(args) -> int:
    """Upgrade the schema under the same lock the nodes take; a database newer
    than this phigate, or a pre-0004 outbox with mail in it, is refused."""
    config = load_config_or_exit(args)
    from gateway.portal.service import database_url
    from gateway.portal.store import SchemaTooNew, make_engine, migrate
    engine = make_engine(database_url(config.portal, config.state_dir))
    try:
        before, after = migrate(engine)
    except (SchemaTooNew, RuntimeError) as exc:     # newer schema; 0004 with unsent outbox mail
        return fail(str(exc))
    finally:
        engine.dispose()
    if args.json:
        print_json({"before": before, "after": after, "changed": before != after})
    elif before == after:
        print(f"portal schema already at revision {after}")
    else:
        print(f"portal schema upgraded: {before or '(empty)'} -> {after}")
    return 0


def cmd_serve(args) -> int:
    config = load_config_or_exit(args)
    from gateway.portal.service import PortalService

    async def run() -> None:
        store = _store(config)
        service = PortalService(config.portal, config.state_dir, store,
                                spool=remote_spool(config))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await service.start()
        print(f"portal listening on {config.portal.address}", flush=True)
        try:
            await stop.wait()
        finally:
            await service.stop()
            store.close()

    asyncio.run(run())
    return 0
