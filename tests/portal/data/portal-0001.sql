-- A portal database exactly as revision 0001 left it (SQLite), dumped with
-- `sqlite3 portal.db .dump` from a store opened at 0001 before revision 0002
-- existed. tests/portal/test_migrations.py upgrades a copy of it to head.
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version VALUES('0001');
CREATE TABLE accounts (
	id INTEGER NOT NULL, 
	public_id VARCHAR(32) NOT NULL, 
	email VARCHAR(320) NOT NULL, 
	first_name VARCHAR(200) NOT NULL, 
	last_name VARCHAR(200) NOT NULL, 
	birth_date VARCHAR(10) NOT NULL, 
	phone VARCHAR(50) NOT NULL, 
	address TEXT NOT NULL, 
	provider VARCHAR(200) NOT NULL, 
	password_hash VARCHAR(300), 
	totp_secret VARCHAR(64), 
	status VARCHAR(16) NOT NULL, 
	failed_logins INTEGER NOT NULL, 
	lock_count INTEGER NOT NULL, 
	locked_until FLOAT NOT NULL, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (public_id), 
	UNIQUE (email)
);
CREATE TABLE access_log (
	id INTEGER NOT NULL, 
	account_id INTEGER NOT NULL, 
	event VARCHAR(32) NOT NULL, 
	message_ref VARCHAR(32) NOT NULL, 
	at FLOAT NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE links (
	token_hash VARCHAR(64) NOT NULL, 
	account_id INTEGER NOT NULL, 
	purpose VARCHAR(16) NOT NULL, 
	expires_at FLOAT NOT NULL, 
	used_at FLOAT, 
	PRIMARY KEY (token_hash), 
	FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE TABLE messages (
	id INTEGER NOT NULL, 
	public_id VARCHAR(32) NOT NULL, 
	account_id INTEGER NOT NULL, 
	queue_id VARCHAR(64) NOT NULL, 
	recipient VARCHAR(320) NOT NULL, 
	sender VARCHAR(320) NOT NULL, 
	message_id VARCHAR(998) NOT NULL, 
	subject TEXT NOT NULL, 
	body_text TEXT NOT NULL, 
	body_html TEXT NOT NULL, 
	created_at FLOAT NOT NULL, 
	read_at FLOAT, 
	expires_at FLOAT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_messages_queue_recipient UNIQUE (queue_id, recipient), 
	UNIQUE (public_id), 
	FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE TABLE sessions (
	id_hash VARCHAR(64) NOT NULL, 
	account_id INTEGER NOT NULL, 
	created_at FLOAT NOT NULL, 
	last_seen FLOAT NOT NULL, 
	PRIMARY KEY (id_hash), 
	FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE TABLE outbox (
	id INTEGER NOT NULL, 
	account_id INTEGER NOT NULL, 
	provider VARCHAR(200) NOT NULL, 
	message_id VARCHAR(998) NOT NULL, 
	raw BLOB NOT NULL, 
	created_at FLOAT NOT NULL, 
	attempts INTEGER NOT NULL, 
	sent_at FLOAT, 
	PRIMARY KEY (id), 
	FOREIGN KEY(account_id) REFERENCES accounts (id) ON DELETE CASCADE
);
CREATE TABLE attachments (
	id INTEGER NOT NULL, 
	public_id VARCHAR(32) NOT NULL, 
	message_id INTEGER NOT NULL, 
	filename VARCHAR(255) NOT NULL, 
	content_type VARCHAR(255) NOT NULL, 
	data BLOB NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (public_id), 
	FOREIGN KEY(message_id) REFERENCES messages (id) ON DELETE CASCADE
);
CREATE INDEX ix_access_log_account_id ON access_log (account_id);
CREATE INDEX ix_messages_account_id ON messages (account_id);
CREATE INDEX ix_messages_expires_at ON messages (expires_at);
CREATE INDEX ix_outbox_sent_at ON outbox (sent_at);
CREATE INDEX ix_attachments_message_id ON attachments (message_id);
COMMIT;
