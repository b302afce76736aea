"""Schema migrations: a database as revision 0001 made it (SQLite, the schema
dumped before 0002 existed, with rows in it) is upgraded to head by
``open_store``; the result matches a database created fresh at head, the
rows survive, the subjects of stored outbox mail are filled in (0002) and
delivered patient mail becomes the Sent record (0004), and it downgrades
again. Revision 0004 retires the outbox: mail still unsent in it moves into
a real spool, or, with no spool to move it to, the upgrade refuses and says
why."""
from __future__ import annotations

import email.policy
import sqlite3
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from gateway.config.models import PortalConfig
from gateway.model import Action
from gateway.portal.service import unsent_adopter
from gateway.portal.store import MIGRATIONS, open_store, sqlite_url
from gateway.queue.store import QUEUE, QueueStore

DUMP_0001 = Path(__file__).parent / "data" / "portal-0001.sql"


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


SCRIPTS = ScriptDirectory.from_config(alembic_config())
HEAD = SCRIPTS.get_current_head()        # raises when the revisions fork into two heads


def test_revisions_form_one_line():
    chain = [r.revision for r in SCRIPTS.walk_revisions("base", "heads")]
    assert list(reversed(chain)) == ["0001", "0002", "0003s", "0004", "0005"]


def make_0001_database(path: Path, unsent: bool = False) -> None:
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
        if unsent:
            for n in (2, 3):
                db.execute("INSERT INTO outbox (id, account_id, provider, message_id, raw, "
                           "created_at, attempts, sent_at) VALUES (?, 1, 'Dr Smith', ?, ?, ?, "
                           "7, NULL)", (n, f"<m{n}@portal.example>", mail.as_bytes(), now))


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
        assert version(store.engine) == version(fresh.engine) == HEAD
        fresh.close()
        account = store.account_by_email_sync("ana@mail.example")
        assert account["first_name"] == "Ana" and account["totp_pending"] is None
        assert [m["public_id"] for m in store.inbox_sync(1)] == ["msg1"]
        sent = store.sent_sync(1)
        assert [(r["subject"], r["delivered_at"] is not None) for r in sent] == [
            ("Question about my crown", True)]
        assert "outbox" not in columns(store.engine)
        assert store.throttle_sync([("k", 60.0, 1)]) is True
        assert store.throttle_sync([("k", 60.0, 1)]) is False
    finally:
        store.close()
    # Opening again is a no-op; 0004, 0003s and 0002 also downgrade to 0001.
    open_store(sqlite_url(old)).close()
    engine = sa.create_engine(sqlite_url(old))
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert columns(engine) == before
    engine.dispose()


def test_unsent_outbox_mail_moves_into_the_spool_or_the_upgrade_refuses(tmp_path):
    old = tmp_path / "old.db"
    make_0001_database(old, unsent=True)
    with pytest.raises(RuntimeError, match="2 unsent message"):
        open_store(sqlite_url(old))
    engine = sa.create_engine(sqlite_url(old))
    assert version(engine) == "0001"            # refused as a whole: nothing changed
    engine.dispose()

    spool = QueueStore(tmp_path / "spool")
    config = PortalConfig(default_provider_address="dr.smith@smiledental.example")
    store = open_store(sqlite_url(old), adopt_unsent=unsent_adopter(config, spool.put_sync))
    try:
        queued = spool.ids(QUEUE)
        assert len(queued) == 2 and spool.size == 2
        assert not list((tmp_path / "spool" / "active").iterdir())   # no attempt started
        for queue_id in queued:
            item = spool.load(queue_id)
            [r] = item.recipients
            assert (r.address, r.action) == ("dr.smith@smiledental.example", Action.MAILBOX)
            assert item.plan.verdict.phi and r.option("allow_phi_plaintext") is True
            assert b"Does it hurt?" in spool.read_message(queue_id)
        sent = store.sent_sync(1)
        assert sorted(r["queue_id"] for r in sent if r["delivered_at"] is None) == queued
        assert len(sent) == 3 and "outbox" not in columns(store.engine)
    finally:
        store.close()
