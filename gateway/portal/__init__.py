"""The patient portal: secure WebMail for recipients without a certificate.

``store`` keeps accounts, messages, attachments, sessions, one-time links,
the access log and the outbox of patients' messages (SQLAlchemy Core, SQLite
or PostgreSQL, schema by alembic). ``auth`` checks passwords, lockout and
TOTP. ``app`` builds the aiohttp web application (a thin edge: it never
delivers). ``outbox`` pushes patients' messages to the provider's mailbox
through couriers handed to it by the wiring code.
"""
