"""The patient portal: secure WebMail for recipients without a certificate.

``store`` keeps accounts, messages, attachments, sessions, one-time links,
the access log and each patient's Sent record (SQLAlchemy Core, SQLite or
PostgreSQL, schema by alembic). ``auth`` checks passwords, lockout and TOTP.
``app`` builds the aiohttp web application (a thin edge: it never delivers).
``mails`` writes every mail the portal sends and its queue plan; the mail
leaves through the spool handed to the app (``spool.enqueue``), like all
mail phigate sends.
"""
