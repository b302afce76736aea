"""PortalStore: every read and write of the portal database.

Synchronous SQLAlchemy Core underneath; every public coroutine runs its work
in a thread (``asyncio.to_thread``) so the daemon's loop never waits on the
database. ``open_store(url)`` creates or upgrades the schema with alembic.
SQLite (``sqlite:///<state_dir>/portal.db``) is the default; a PostgreSQL URL
(``postgresql+psycopg://…``) lets several gateway nodes share one store.

The SQLite file is created 0600 before SQLite opens it (its ``-wal`` and
``-shm`` files take the database file's mode), and existing files are set to
0600 at every open. TOTP secrets are stored encrypted (Fernet: AES-128-CBC +
HMAC-SHA256) with a key from a 0600 file (``load_totp_key``); a store opened
without a key cannot write or read one.
"""
from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import secrets
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import case, create_engine, delete, event, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError

from gateway.config.load import ConfigError
from gateway.portal.schema import (
    access_log,
    accounts,
    attachments,
    limits,
    links,
    messages,
    sent,
    sessions,
)

MIGRATIONS = Path(__file__).parent / "migrations"
THROTTLE_KEEP = 86400.0       # limit counters idle this long are purged (windows are shorter)


def new_public_id() -> str:
    return secrets.token_urlsafe(16)


def hash_secret(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class AttachmentIn:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Deposit:
    queue_id: str
    recipient: str
    sender: str
    message_id: str
    subject: str
    body_text: str
    body_html: str
    attachments: list[AttachmentIn] = field(default_factory=list)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def private_sqlite_files(url: str) -> None:
    """Create the SQLite database 0600 (before SQLite does, with the umask's
    mode) and make it and its -wal/-shm files 0600 if they exist already."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if name.exists():
            os.chmod(name, 0o600)


def load_totp_key(path: Path) -> bytes:
    """The Fernet key that encrypts TOTP secrets at rest, made (0600) on first
    use; refused if others can read it."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError([(f"portal.totp_key_file: {path} is readable by others "
                            f"(mode {mode:04o}); run chmod 600 {path}")])
    return path.read_bytes().strip()


TOTP_FIELDS = ("totp_secret", "totp_pending")
_SEALED = "f1:"


class TotpCipher:
    """Seals TOTP secrets for the database; ``None`` key: refuses to."""

    def __init__(self, key: bytes | None):
        self.fernet = Fernet(key) if key else None

    def _need(self) -> Fernet:
        if self.fernet is None:
            raise RuntimeError("portal store opened without a TOTP key (portal.totp_key_file)")
        return self.fernet

    def seal(self, secret: str | None) -> str | None:
        if secret is None:
            return None
        return _SEALED + self._need().encrypt(secret.encode()).decode()

    def open(self, stored: str | None) -> str | None:
        if stored is None or not stored.startswith(_SEALED):
            return stored                      # none, or written before encryption (0003s)
        try:
            return self._need().decrypt(stored[len(_SEALED):].encode()).decode()
        except InvalidToken:
            raise RuntimeError("a TOTP secret does not open with portal.totp_key_file") from None


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        private_sqlite_files(url)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10)


SCHEMA_LOCK_KEY = 0x70686967617465      # pg_advisory_xact_lock key: "phigate" in hex
PURGE_LOCK_KEY = SCHEMA_LOCK_KEY + 1


class SchemaTooNew(ConfigError):
    """The database is at a revision this phigate does not know (a newer
    phigate upgraded it): running on it could corrupt what it does not know."""


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def known_revisions() -> set[str]:
    return {r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn) -> str | None:
    heads = MigrationContext.configure(conn).get_current_heads()
    return heads[0] if heads else None


def refuse_newer(conn) -> None:
    """Raise SchemaTooNew when the database's revision is not one of ours."""
    current = current_revision(conn)
    if current is not None and current not in known_revisions():
        raise SchemaTooNew([
            (f"portal.database_url: the portal database is at schema revision {current!r}, "
            f"newer than this phigate knows (its newest is {head_revision()!r}); another node "
            "runs a newer phigate. Upgrade this node to the same version before starting it.")])


@contextmanager
def _sqlite_schema_lock(engine: Engine):
    """SQLite: an exclusive lock on ``<database>.migrate.lock`` beside the file."""
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.migrate.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)                     # closing releases the lock


def migrate(engine: Engine, adopt_unsent=None) -> tuple[str | None, str]:
    """Bring the schema to the newest alembic revision (idempotent), under a
    lock so that nodes starting together upgrade one after the other
    (PostgreSQL: a transaction-scoped advisory lock taken in the very
    transaction that runs alembic; SQLite: a file lock). Refuses a database
    at a revision newer than ours (``SchemaTooNew``). ``adopt_unsent(row) ->
    queue id`` moves mail still waiting in a pre-0004 outbox into the spool;
    without it that migration refuses to run while such mail exists (see
    revision 0004). Returns (revision before, revision after)."""
    cfg = alembic_config()
    postgres = engine.dialect.name == "postgresql"
    with ExitStack() as stack:
        if not postgres:
            stack.enter_context(_sqlite_schema_lock(engine))
        conn = stack.enter_context(engine.begin())
        if postgres:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        refuse_newer(conn)
        before = current_revision(conn)
        cfg.attributes["connection"] = conn
        cfg.attributes["adopt_unsent"] = adopt_unsent
        command.upgrade(cfg, "head")
        return before, current_revision(conn)


def open_store(url: str, totp_key: bytes | None = None, adopt_unsent=None) -> PortalStore:
    engine = make_engine(url)
    try:
        migrate(engine, adopt_unsent)
    except BaseException:
        engine.dispose()
        raise
    store = PortalStore(engine, totp_key)
    if totp_key:
        store.encrypt_plain_totp_sync()
    return store


class PortalStore:
    def __init__(self, engine: Engine, totp_key: bytes | None = None):
        self.engine = engine
        self.cipher = TotpCipher(totp_key)

    def close(self) -> None:
        self.engine.dispose()

    async def _run(self, fn, *args):
        return await asyncio.to_thread(fn, *args)

    # ---------------------------------------------------------------- accounts
    def _opened(self, row) -> dict | None:
        """An accounts row as a dict with its TOTP secrets decrypted."""
        if not row:
            return None
        account = dict(row)
        for name in TOTP_FIELDS:
            if name in account:
                account[name] = self.cipher.open(account[name])
        return account

    def _sealed(self, values: dict) -> dict:
        return {k: self.cipher.seal(v) if k in TOTP_FIELDS else v for k, v in values.items()}

    def encrypt_plain_totp_sync(self) -> None:
        """Encrypt TOTP secrets stored in plain text (before revision 0003s)."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(accounts.c.id, accounts.c.totp_secret,
                                       accounts.c.totp_pending)).all()
            for row in rows:
                plain = {n: getattr(row, n) for n in TOTP_FIELDS
                         if getattr(row, n) is not None and not getattr(row, n).startswith(_SEALED)}
                if plain:
                    conn.execute(update(accounts).where(accounts.c.id == row.id)
                                 .values(**self._sealed(plain)))

    def _account_where(self, clause) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(accounts).where(clause)).mappings().first()
        return self._opened(row)

    def account_by_email_sync(self, email: str) -> dict | None:
        return self._account_where(func.lower(accounts.c.email) == email.strip().lower())

    def account_sync(self, account_id: int) -> dict | None:
        return self._account_where(accounts.c.id == account_id)

    async def account_by_email(self, email: str) -> dict | None:
        return await self._run(self.account_by_email_sync, email)

    async def account(self, account_id: int) -> dict | None:
        return await self._run(self.account_sync, account_id)

    def upsert_account_sync(self, email: str, **fields) -> dict:
        """Create the account for ``email`` or update the given fields (grant);
        a revoked account becomes active again."""
        email = email.strip()
        fields = self._sealed(fields)
        same = func.lower(accounts.c.email) == email.lower()
        try:
            with self.engine.begin() as conn:
                if conn.execute(update(accounts).where(same)
                                .values(status="active", **fields)).rowcount == 0:
                    conn.execute(insert(accounts).values(
                        public_id=new_public_id(), email=email, created_at=time.time(),
                        **fields))
        except IntegrityError:          # a concurrent creator won: update theirs
            with self.engine.begin() as conn:
                conn.execute(update(accounts).where(same).values(status="active", **fields))
        return self.account_by_email_sync(email)

    async def upsert_account(self, email: str, **fields) -> dict:
        return await self._run(lambda: self.upsert_account_sync(email, **fields))

    def set_account_sync(self, account_id: int, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(accounts).where(accounts.c.id == account_id)
                         .values(**self._sealed(values)))

    async def set_account(self, account_id: int, **values) -> None:
        await self._run(lambda: self.set_account_sync(account_id, **values))

    async def advance_totp_step(self, account_id: int, step: int) -> bool:
        """Accept TOTP time step ``step`` once: False if it (or a later one) was
        already used, so a code seen over someone's shoulder cannot be replayed."""
        def run():
            with self.engine.begin() as conn:
                return conn.execute(
                    update(accounts).where(accounts.c.id == account_id,
                                           (accounts.c.totp_last_step.is_(None))
                                           | (accounts.c.totp_last_step < step))
                    .values(totp_last_step=step)).rowcount == 1
        return await self._run(run)

    async def count_failed_login(self, account_id: int) -> tuple[int, int]:
        """Add one failed login atomically; (failures now, locks so far)."""
        def run():
            with self.engine.begin() as conn:
                row = conn.execute(update(accounts).where(accounts.c.id == account_id)
                                   .values(failed_logins=accounts.c.failed_logins + 1)
                                   .returning(accounts.c.failed_logins,
                                              accounts.c.lock_count)).first()
            return row.failed_logins, row.lock_count
        return await self._run(run)

    def revoke_sync(self, account_id: int) -> None:
        """Revoke access: no login, every session and link gone."""
        with self.engine.begin() as conn:
            conn.execute(update(accounts).where(accounts.c.id == account_id)
                         .values(status="revoked"))
            conn.execute(delete(sessions).where(sessions.c.account_id == account_id))
            conn.execute(delete(links).where(links.c.account_id == account_id))

    def list_accounts_sync(self) -> list[dict]:
        counts = (select(messages.c.account_id, func.count().label("n"),
                         func.count(messages.c.read_at).label("read"))
                  .group_by(messages.c.account_id).subquery())
        q = (select(accounts.c.id, accounts.c.email, accounts.c.first_name, accounts.c.last_name,
                    accounts.c.provider, accounts.c.status, accounts.c.password_hash,
                    accounts.c.locked_until, counts.c.n, counts.c.read)
             .select_from(accounts.outerjoin(counts, counts.c.account_id == accounts.c.id))
             .order_by(accounts.c.last_name, accounts.c.first_name, accounts.c.email))
        with self.engine.connect() as conn:
            return [{"id": r.id, "email": r.email, "first_name": r.first_name,
                     "last_name": r.last_name, "provider": r.provider, "status": r.status,
                     "registered": r.password_hash is not None,
                     "locked": r.locked_until > time.time(),
                     "messages": r.n or 0, "read": r.read or 0} for r in conn.execute(q)]

    # ------------------------------------------------------------ one-time links
    def issue_link_sync(self, account_id: int, purpose: str, ttl: float) -> str:
        raw = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(insert(links).values(token_hash=hash_secret(raw), account_id=account_id,
                                              purpose=purpose, expires_at=time.time() + ttl))
        return raw

    async def issue_link(self, account_id: int, purpose: str, ttl: float) -> str:
        return await self._run(self.issue_link_sync, account_id, purpose, ttl)

    def peek_link_sync(self, raw: str, purpose: str) -> dict | None:
        """The account a valid (unused, unexpired) link belongs to, without using it."""
        q = (select(accounts).join(links, links.c.account_id == accounts.c.id)
             .where(links.c.token_hash == hash_secret(raw), links.c.purpose == purpose,
                    links.c.used_at.is_(None), links.c.expires_at > time.time(),
                    accounts.c.status == "active"))
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        return self._opened(row)

    async def peek_link(self, raw: str, purpose: str) -> dict | None:
        return await self._run(self.peek_link_sync, raw, purpose)

    def use_link_sync(self, raw: str, purpose: str, password_hash: str) -> int | None:
        """Use the link once (atomically) and set the password; the account id
        or None. Every other outstanding link of the account (reset or
        registration) is voided with it, and its sessions end."""
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(
                update(links).where(links.c.token_hash == hash_secret(raw),
                                    links.c.purpose == purpose, links.c.used_at.is_(None),
                                    links.c.expires_at > now)
                .values(used_at=now).returning(links.c.account_id)).first()
            if row is None:
                return None
            conn.execute(update(accounts).where(accounts.c.id == row.account_id)
                         .values(password_hash=password_hash, failed_logins=0, lock_count=0,
                                 locked_until=0.0, identity_failures=0))
            conn.execute(update(links).where(links.c.account_id == row.account_id,
                                             links.c.used_at.is_(None)).values(used_at=now))
            conn.execute(delete(sessions).where(sessions.c.account_id == row.account_id))
            return row.account_id

    async def use_link(self, raw: str, purpose: str, password_hash: str) -> int | None:
        return await self._run(self.use_link_sync, raw, purpose, password_hash)

    # ------------------------------------------------------------ identity proof
    def count_identity_failure_sync(self, raw: str, link_max: int, account_max: int) -> bool:
        """A wrong date of birth on link ``raw``: count it on the link and the
        account; void the link at ``link_max`` and every link of the account
        at ``account_max`` (staff must then approve). True if the link is void."""
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(
                update(links).where(links.c.token_hash == hash_secret(raw),
                                    links.c.used_at.is_(None))
                .values(attempts=links.c.attempts + 1)
                .returning(links.c.account_id, links.c.attempts)).first()
            if row is None:
                return True
            failures = conn.execute(
                update(accounts).where(accounts.c.id == row.account_id)
                .values(identity_failures=accounts.c.identity_failures + 1)
                .returning(accounts.c.identity_failures)).scalar_one()
            voided = links.c.account_id == row.account_id
            if failures < account_max:
                voided = links.c.token_hash == hash_secret(raw)
                if row.attempts < link_max:
                    return False
            conn.execute(update(links).where(voided, links.c.used_at.is_(None))
                         .values(used_at=now))
            return True

    async def count_identity_failure(self, raw: str, link_max: int, account_max: int) -> bool:
        return await self._run(self.count_identity_failure_sync, raw, link_max, account_max)

    def pending_accounts_sync(self, account_max: int) -> list[dict]:
        """Accounts waiting for staff: not registered, active, and either with
        nothing to prove identity by (no birth date on file, not approved) or
        with ``account_max`` wrong dates of birth."""
        q = (select(accounts.c.id, accounts.c.email, accounts.c.first_name,
                    accounts.c.last_name, accounts.c.birth_date, accounts.c.identity_failures,
                    accounts.c.created_at)
             .where(accounts.c.status == "active", accounts.c.password_hash.is_(None),
                    ((accounts.c.birth_date == "") & accounts.c.identity_verified_at.is_(None))
                    | (accounts.c.identity_failures >= account_max))
             .order_by(accounts.c.created_at))
        with self.engine.connect() as conn:
            return [{**dict(r), "reason": "too many wrong dates of birth"
                     if r.identity_failures >= account_max else "no date of birth on file"}
                    for r in conn.execute(q).mappings()]

    def approve_identity_sync(self, account_id: int, birth_date: str | None = None) -> None:
        """Staff confirmed who the account holder is (and may add the birth date)."""
        values = {"identity_verified_at": time.time(), "identity_failures": 0}
        if birth_date:
            values["birth_date"] = birth_date
        self.set_account_sync(account_id, **values)

    # ----------------------------------------------------------------- messages
    def deposit_sync(self, account_id: int, d: Deposit, retention: float) -> str:
        """Store a message for ``account_id``; the same (queue id, recipient)
        always yields the same public id (a retry deposits nothing new)."""
        key = (messages.c.queue_id == d.queue_id) & (messages.c.recipient == d.recipient)
        with self.engine.connect() as conn:
            existing = conn.execute(select(messages.c.public_id).where(key)).first()
        if existing:
            return existing.public_id
        now = time.time()
        public_id = new_public_id()
        try:
            with self.engine.begin() as conn:
                msg_pk = conn.execute(insert(messages).values(
                    public_id=public_id, account_id=account_id, queue_id=d.queue_id,
                    recipient=d.recipient, sender=d.sender, message_id=d.message_id,
                    subject=d.subject, body_text=d.body_text, body_html=d.body_html,
                    created_at=now, expires_at=now + retention)
                    .returning(messages.c.id)).scalar_one()
                for a in d.attachments:
                    conn.execute(insert(attachments).values(
                        public_id=new_public_id(), message_id=msg_pk, filename=a.filename,
                        content_type=a.content_type, data=a.data))
        except IntegrityError:          # another node deposited the same (queue id, recipient)
            with self.engine.connect() as conn:
                return conn.execute(select(messages.c.public_id).where(key)).scalar_one()
        return public_id

    async def deposit(self, account_id: int, d: Deposit, retention: float) -> str:
        return await self._run(self.deposit_sync, account_id, d, retention)

    def inbox_sync(self, account_id: int) -> list[dict]:
        """The account's live messages, unread first, newest first."""
        q = (select(messages.c.public_id, messages.c.sender, messages.c.subject,
                    messages.c.created_at, messages.c.read_at)
             .where(messages.c.account_id == account_id, messages.c.expires_at > time.time())
             .order_by(messages.c.read_at.is_not(None), messages.c.created_at.desc()))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    async def inbox(self, account_id: int) -> list[dict]:
        return await self._run(self.inbox_sync, account_id)

    def open_message_sync(self, account_id: int, public_id: str) -> tuple[dict, list[dict], bool] | None:
        """The message (only if it belongs to ``account_id``), its attachments'
        metadata, and whether this was the first opening (now marked read)."""
        with self.engine.begin() as conn:
            row = conn.execute(select(messages).where(
                messages.c.public_id == public_id, messages.c.account_id == account_id,
                messages.c.expires_at > time.time())).mappings().first()
            if row is None:
                return None
            first = conn.execute(update(messages).where(
                messages.c.id == row["id"], messages.c.read_at.is_(None))
                .values(read_at=time.time())).rowcount == 1
            atts = conn.execute(select(attachments.c.public_id, attachments.c.filename,
                                       attachments.c.content_type,
                                       func.length(attachments.c.data).label("size"))
                                .where(attachments.c.message_id == row["id"])
                                .order_by(attachments.c.id)).mappings()
            return dict(row), [dict(a) for a in atts], first

    async def open_message(self, account_id: int, public_id: str):
        return await self._run(self.open_message_sync, account_id, public_id)

    def attachment_sync(self, account_id: int, message_public_id: str,
                        attachment_public_id: str) -> dict | None:
        q = (select(attachments.c.filename, attachments.c.content_type, attachments.c.data)
             .join(messages, messages.c.id == attachments.c.message_id)
             .where(attachments.c.public_id == attachment_public_id,
                    messages.c.public_id == message_public_id,
                    messages.c.account_id == account_id, messages.c.expires_at > time.time()))
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    async def attachment(self, account_id: int, message_public_id: str, attachment_public_id: str):
        return await self._run(self.attachment_sync, account_id, message_public_id,
                               attachment_public_id)

    def purge_sync(self, now: float | None = None, sent_retention: float | None = None) -> int:
        """Delete expired messages (attachments follow), used or expired
        one-time links, limit counters idle for a day and, with
        ``sent_retention``, lines of the Sent view older than that (in any
        state: the queue gave up on undelivered mail long before); the number
        of messages removed. On PostgreSQL one node purges at a time (a
        transaction-scoped advisory lock, tried: a node finding it taken
        skips this round)."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql" and not conn.execute(
                    text("SELECT pg_try_advisory_xact_lock(:key)"),
                    {"key": PURGE_LOCK_KEY}).scalar_one():
                return 0                 # another node is purging right now
            conn.execute(delete(limits).where(limits.c.window_start <= now - THROTTLE_KEEP))
            if sent_retention is not None:
                conn.execute(delete(sent).where(sent.c.created_at <= now - sent_retention))
            expired = select(messages.c.id).where(messages.c.expires_at <= now)
            conn.execute(delete(attachments).where(attachments.c.message_id.in_(expired)))
            n = conn.execute(delete(messages).where(messages.c.expires_at <= now)).rowcount
            conn.execute(delete(links).where((links.c.expires_at <= now)
                                             | links.c.used_at.is_not(None)))
        return n

    async def purge(self, sent_retention: float | None = None) -> int:
        return await self._run(lambda: self.purge_sync(sent_retention=sent_retention))

    # ----------------------------------------------------------------- sessions
    def create_session_sync(self, account_id: int) -> str:
        raw = secrets.token_urlsafe(32)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(insert(sessions).values(id_hash=hash_secret(raw), account_id=account_id,
                                                 created_at=now, last_seen=now))
        return raw

    async def create_session(self, account_id: int) -> str:
        return await self._run(self.create_session_sync, account_id)

    def session_account_sync(self, raw: str, idle: float, absolute: float) -> dict | None:
        """The active account of a live session (refreshing its idle timer);
        an expired session is deleted."""
        now = time.time()
        key = hash_secret(raw)
        with self.engine.begin() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id_hash == key)).first()
            if row is None:
                return None
            if now - row.last_seen > idle or now - row.created_at > absolute:
                conn.execute(delete(sessions).where(sessions.c.id_hash == key))
                return None
            conn.execute(update(sessions).where(sessions.c.id_hash == key).values(last_seen=now))
            acct = conn.execute(select(accounts).where(accounts.c.id == row.account_id,
                                                       accounts.c.status == "active")
                                ).mappings().first()
        return self._opened(acct)

    async def session_account(self, raw: str, idle: float, absolute: float) -> dict | None:
        return await self._run(self.session_account_sync, raw, idle, absolute)

    async def end_session(self, raw: str) -> None:
        def run():
            with self.engine.begin() as conn:
                conn.execute(delete(sessions).where(sessions.c.id_hash == hash_secret(raw)))
        await self._run(run)

    # --------------------------------------------------------------------- sent
    async def record_sent(self, account_id: int, queue_id: str, subject: str) -> None:
        """A patient's message to the practice is in the queue as ``queue_id``:
        list it in their Sent view."""
        def run():
            with self.engine.begin() as conn:
                conn.execute(insert(sent).values(account_id=account_id, queue_id=queue_id,
                                                 subject=subject[:998], created_at=time.time()))
        await self._run(run)

    def sent_sync(self, account_id: int, limit: int = 200) -> list[dict]:
        """The patient's own messages to the practice, newest first, with their
        delivery state (``delivered_at`` set: delivered; ``failed``: given up;
        ``attempts``: tries so far)."""
        q = (select(sent.c.id, sent.c.queue_id, sent.c.subject, sent.c.created_at, sent.c.delivered_at,
                    sent.c.attempts, sent.c.failed)
             .where(sent.c.account_id == account_id)
             .order_by(sent.c.created_at.desc(), sent.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    async def sent(self, account_id: int) -> list[dict]:
        return await self._run(self.sent_sync, account_id)

    def note_delivery_sync(self, queue_id: str, *, delivered: bool = False,
                           failed: bool = False) -> None:
        """One attempt at the queue item ``queue_id`` ended (no row: nothing to do)."""
        values = {"attempts": sent.c.attempts + 1}
        if delivered:
            values["delivered_at"] = time.time()
        if failed:
            values["failed"] = 1
        with self.engine.begin() as conn:
            conn.execute(update(sent).where(sent.c.queue_id == queue_id).values(**values))

    async def note_delivery(self, queue_id: str, *, delivered: bool = False,
                            failed: bool = False) -> None:
        await self._run(lambda: self.note_delivery_sync(queue_id, delivered=delivered,
                                                        failed=failed))

    # ----------------------------------------------------------------- throttle
    @staticmethod
    def _count(conn, key: str, window: float, now: float) -> int:
        """Count one request for ``key`` in one statement (no read before the
        write, so nodes counting at once serialise on the row): a new window
        starts at 1 when the last one is over; the count now."""
        upsert = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(limits)
        over = limits.c.window_start <= now - window
        return conn.execute(
            upsert.values(key=key, window_start=now, count=1).on_conflict_do_update(
                index_elements=[limits.c.key],
                set_={"count": case((over, 1), else_=limits.c.count + 1),
                      "window_start": case((over, now), else_=limits.c.window_start)})
            .returning(limits.c.count)).scalar_one()

    def throttle_sync(self, checks: list[tuple[str, float, int]]) -> bool:
        """Rate limit: ``checks`` are (key, window seconds, limit). Counts this
        request for every key atomically in one transaction; if any key went
        over its limit the transaction is rolled back (nothing counted) and
        the answer is False. Keys are counted in sorted order, so two requests
        sharing keys cannot deadlock. Windows are fixed: at most ``limit``
        requests from the first one counted until ``window`` seconds later."""
        now = time.time()
        with self.engine.connect() as conn:
            tx = conn.begin()
            for key, window, limit in sorted(checks):
                if self._count(conn, key, window, now) > limit:
                    tx.rollback()
                    return False
            tx.commit()
        return True

    async def throttle(self, checks: list[tuple[str, float, int]]) -> bool:
        return await self._run(self.throttle_sync, checks)

    async def unthrottle(self, key: str) -> None:
        """Give back one counted request of ``key`` (it turned out not to
        count: a login that succeeded)."""
        def run():
            with self.engine.begin() as conn:
                conn.execute(update(limits).where(limits.c.key == key, limits.c.count > 0)
                             .values(count=limits.c.count - 1))
        await self._run(run)

    # --------------------------------------------------------------- access log
    async def log_access(self, account_id: int, event_name: str, message_ref: str = "") -> None:
        def run():
            with self.engine.begin() as conn:
                conn.execute(insert(access_log).values(account_id=account_id, event=event_name,
                                                       message_ref=message_ref, at=time.time()))
        await self._run(run)

    def access_events_sync(self, account_id: int) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            return [(r.event, r.message_ref) for r in conn.execute(
                select(access_log.c.event, access_log.c.message_ref)
                .where(access_log.c.account_id == account_id).order_by(access_log.c.id))]
