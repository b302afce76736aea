"""Schema migrations: a database as revision 0001 made it (SQLite, the schema
dumped before 0002 existed, with rows in it) is upgraded to head by
``open_store``; the result matches a database created fresh at head, the
rows survive, the subjects of stored outbox mail are filled in, and 0002
downgrades again."""
from __future__ import annotations

import email.policy
import sqlite3
import time
from email.message import EmailMessage
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from gateway.portal.store import MIGRATIONS, open_store, sqlite_url

DUMP_0001 = Path(__file__).parent / "data" / "portal-0001.sql"


def make_0001_database(path: Path) -> None:
    now = time.time()
    mail = EmailMessage(policy=email.policy.SMTP)
    mail["From"] = "Ana Silva <ana@mail.example>"
    mail["To"] = "dr.smith@smiledental.example"
    mail["Subject"] = "Question about my crown"
    mail["Message-ID"] = "<m1@portal.example>"
    mail.set_content("Does it hurt?")
    with sqlite3.connect(path) as db:
        db.executescript(DUMP_0001.read_text())
        db.execute("INSERT INTO accounts (id, public_id, email, first_name, last_name, "
                   "birth_date, phone, address, provider, password_hash, totp_secret, status, "
                   "failed_logins, lock_count, locked_until, created_at) VALUES "
                   "(1, 'pub1', 'ana@mail.example', 'Ana', 'Silva', '1975-06-30', '555', "
                   "'1 Main St', 'Dr Smith', 'hash', NULL, 'active', 0, 0, 0, ?)", (now,))
        db.execute("INSERT INTO messages (id, public_id, account_id, queue_id, recipient, "
                   "sender, message_id, subject, body_text, body_html, created_at, read_at, "
                   "expires_at) VALUES (1, 'msg1', 1, 'q-1', 'ana@mail.example', "
                   "'dr.smith@smiledental.example', '<o@x>', 'Results', 'text', '', ?, NULL, ?)",
                   (now, now + 3600))
        db.execute("INSERT INTO outbox (id, account_id, provider, message_id, raw, created_at, "
                   "attempts, sent_at) VALUES (1, 1, 'Dr Smith', '<m1@portal.example>', ?, ?, "
                   "0, ?)", (mail.as_bytes(), now, now))


def columns(engine) -> dict[str, set[str]]:
    inspector = sa.inspect(engine)
    return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}


def version(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()


def test_0001_database_upgrades_to_head(tmp_path):
    old = tmp_path / "old.db"
    make_0001_database(old)
    engine = sa.create_engine(sqlite_url(old))
    before = columns(engine)
    assert version(engine) == "0001"
    assert "throttle" not in before and "subject" not in before["outbox"]
    engine.dispose()

    store = open_store(sqlite_url(old))
    try:
        fresh = open_store(sqlite_url(tmp_path / "fresh.db"))
        assert columns(store.engine) == columns(fresh.engine)
        assert version(store.engine) == version(fresh.engine) != "0001"
        fresh.close()
        account = store.account_by_email_sync("ana@mail.example")
        assert account["first_name"] == "Ana" and account["totp_pending"] is None
        assert [m["public_id"] for m in store.inbox_sync(1)] == ["msg1"]
        sent = store.sent_sync(1)
        assert [(r["subject"], r["sent_at"] is not None) for r in sent] == [
            ("Question about my crown", True)]
        assert store.throttle_sync([("k", 60.0, 1)]) is True
        assert store.throttle_sync([("k", 60.0, 1)]) is False
    finally:
        store.close()
    # Opening again is a no-op; 0002 also downgrades to 0001.
    open_store(sqlite_url(old)).close()
    engine = sa.create_engine(sqlite_url(old))
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert columns(engine) == before
    engine.dispose()
