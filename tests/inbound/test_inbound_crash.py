"""``kill -9`` of the daemon at random points while it works through 50
encrypted messages (queued but not yet appended, part-way through the
appends, right after start-up), restarted each time: in the end every
message was opened exactly once: 50 readable copies with 50 distinct queue
ids and subjects, 50 originals in the archive, none left in INBOX."""
from __future__ import annotations

import random
from collections import Counter

from tests.inbound.conftest import ARCHIVE, wait_until

MESSAGES = 50
KILLS = 8


def progress(world) -> int:
    return sum(1 for m in world.mails() if m.headers["X-Phigate-Queue-Id"])


def test_kill_9_at_random_points_processes_each_message_once(inbound_world, daemon_factory):
    w = inbound_world
    rng = random.Random(11)
    for n in range(MESSAGES):
        w.append(w.encrypted(n))
    extra = w.config()
    extra["queue"] = {"max_crashes": 100, "retry": {"min": "1s", "max": "2s"}}
    d = daemon_factory(None, extra, start=False)
    w.seed(d)
    d.start()
    for _ in range(KILLS):
        point = rng.choice(["queued", "appends", "started"])
        if point == "queued":          # a new item fetched and committed, not yet appended
            before = set(d.queue_ids())
            wait_until(lambda b=before: set(d.queue_ids()) - b or progress(w) >= MESSAGES,
                       what="a new spool item")
        elif point == "appends":
            target = min(MESSAGES, progress(w) + rng.randint(1, 8))
            wait_until(lambda t=target: progress(w) >= t, what=f"{target} readable copies")
        d.kill()
        d.start()
    wait_until(lambda: len(w.mails(ARCHIVE)) == MESSAGES and progress(w) == MESSAGES,
               timeout=180, what="every message opened")
    wait_until(lambda: not d.queue_ids(), what="an empty spool")
    inbox = w.mails()
    ids = Counter(m.headers["X-Phigate-Queue-Id"] for m in inbox)
    subjects = Counter(m.headers["Subject"] for m in inbox)
    assert len(inbox) == MESSAGES                          # no original left, no duplicate
    assert len(ids) == MESSAGES and set(ids.values()) == {1}
    assert subjects == Counter(f"Referral {n}" for n in range(MESSAGES))
    assert all(m.headers["X-Phigate-Decrypted"] == "yes" for m in inbox)
    archived = Counter(m.headers["Subject"] for m in w.mails(ARCHIVE))
    assert archived == subjects
    assert not d.queue_ids("shunt")
    assert d.stop() == 0
