"""The queue is the commit point. ``store`` puts a message and its plan on disk
(fsync file and directory) before the 250; ``item`` is the JSON state of one
queued message with per-recipient status; ``dispatcher`` runs the actions for
due recipients with backoff, fallbacks, give-up and shunting; ``dsn`` writes
PHI-free delivery status notifications.
"""
