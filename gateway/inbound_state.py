"""What phigate knows about each watched mailbox, kept in the state directory.

``<state_dir>/inbound/<mailbox>.json`` (written atomically, 0600)::

    {"folders": {"INBOX": {"uidvalidity": 1795388006, "last_uid": 45,
                           "connection": "idle", "last_error": "", "since": 1764892800.0}},
     "processed": 12, "failed": 1, "last_error": ""}

``last_uid`` moves past a message only once it needed nothing or its spool
item is committed, so a restart neither misses nor repeats one; a changed
UIDVALIDITY starts the folder again from the beginning. The watcher and the
inbound action of one process share one ``MailboxState`` per mailbox
(``StateBook``); ``phigate inbound status`` reads the files.

Spool items made from a mailbox message have a keyed id: HMAC-SHA-256 of
(mailbox, folder, UIDVALIDITY, UID) under a random key in
``<state_dir>/inbound/id.key``. The same message always gets the same id
(so it is queued once, and the copy the action APPENDs can be found again
after a crash), and no sender can predict it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

from gateway.queue.safeio import atomic_replace, ensure_dir

COUNTS = ("processed", "failed")


class MailboxState:
    def __init__(self, directory: Path, name: str):
        self.path = Path(directory) / f"{name}.json"
        self.name = name
        self.data = read_state(directory, name)

    def folder(self, folder: str) -> dict:
        return self.data["folders"].setdefault(folder, {"uidvalidity": None, "last_uid": 0,
                                                        "connection": "starting",
                                                        "last_error": "", "since": 0.0})

    def position(self, folder: str, uidvalidity: int) -> int:
        """The last UID handled in ``folder``; 0 when UIDVALIDITY changed."""
        state = self.folder(folder)
        if state["uidvalidity"] != uidvalidity:
            state["uidvalidity"], state["last_uid"] = uidvalidity, 0
            self.save()
        return state["last_uid"]

    def advance(self, folder: str, last_uid: int, *, save: bool = True) -> None:
        self.folder(folder)["last_uid"] = last_uid
        if save:
            self.save()

    def connection(self, folder: str, state: str, error: str = "") -> None:
        """connecting | idle | polling | processing | disconnected (with the error)."""
        entry = self.folder(folder)
        if entry["connection"] == state and entry["last_error"] == error:
            return
        entry.update(connection=state, since=time.time())
        if error:
            entry["last_error"] = error
            self.data["last_error"] = error
        self.save()

    def count(self, kind: str, error: str = "") -> None:
        self.data[kind] += 1
        if error:
            self.data["last_error"] = error
        self.save()

    def save(self) -> None:
        atomic_replace(self.path, json.dumps(self.data, sort_keys=True).encode())


def state_directory(state_dir: Path) -> Path:
    return Path(state_dir) / "inbound"


def read_state(directory: Path, name: str) -> dict:
    """The stored state of mailbox ``name`` (empty when never watched)."""
    try:
        data = json.loads((Path(directory) / f"{name}.json").read_text())
    except FileNotFoundError:
        data = {}
    data.setdefault("folders", {})
    data.setdefault("last_error", "")
    for kind in COUNTS:
        data.setdefault(kind, 0)
    return data


class StateBook:
    """One ``MailboxState`` per mailbox, shared within the process."""

    def __init__(self, state_dir: Path):
        self.directory = state_directory(state_dir)
        ensure_dir(self.directory)
        self._states: dict[str, MailboxState] = {}
        self._key = _id_key(self.directory)

    def get(self, name: str) -> MailboxState:
        if name not in self._states:
            self._states[name] = MailboxState(self.directory, name)
        return self._states[name]

    def item_id(self, mailbox: str, folder: str, uidvalidity: int, uid: int) -> str:
        """The spool id of one mailbox message (owned by worker 0, see
        ``queue.store.owner``: the first hex digit is a multiple of any
        worker count, so worker 0, which runs the watchers, owns it)."""
        mac = hmac.new(self._key, f"{mailbox}\0{folder}\0{uidvalidity}\0{uid}".encode(),
                       hashlib.sha256).hexdigest()[:32]
        return "0" + mac[1:]


def _id_key(directory: Path) -> bytes:
    path = directory / "id.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key
