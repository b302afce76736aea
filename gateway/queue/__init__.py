"""The queue is the commit point and the one road out. ``store`` puts a
message and its plan on disk (one file fsync into a name ``reserve`` made
durable ahead; file and directory without one) before the 250;
``item`` is the JSON state of one queued message with per-recipient state;
``dispatcher`` runs the actions for due recipients with backoff, fallbacks,
give-up and shunting, and ``enqueue`` is how every mail phigate writes itself
enters the queue; ``dsn`` writes PHI-free delivery status notifications,
``notices`` the held notice and the digest text, ``digest`` sends the
administrator's daily digest; ``control`` is the admin socket and
``RemoteSpool`` (enqueue from another process).
"""
