"""Watch the practice's mailboxes over IMAP; queue what needs opening.

One ``FolderWatcher`` task per mailbox and folder (``inbound.mailboxes``).
Each logs in (``imapconn``: implicit TLS or STARTTLS, certificate verified),
selects its folder and then loops: scan the messages above the last UID it
handled, then wait for news, with IDLE when the server offers it (renewed
every ``idle_refresh``) or by polling every ``poll_interval`` otherwise.

A message needs work when its top-level Content-Type is
``application/pkcs7-mime`` (S/MIME or Direct, enveloped or opaque-signed) or
``multipart/signed`` with an S/MIME protocol. Such a message is fetched
(BODY.PEEK: the \\Seen flag is not set) and put in the spool with an
``inbound`` plan (``Intake.accept``: the fsync is the commit point); only the
inbound action, after that commit, touches the message at its source.
Messages that need nothing are never touched, nor are originals phigate
could not open (keyword ``$PhigateFailed``). phigate's own copies are never
S/MIME at the top (every S/MIME layer is opened; what has none to open is
left alone), so they need nothing; a header a sender could forge decides
nothing here. The last UID advances in the state directory only after
the spool commit, and a message's spool id is fixed (``StateBook.item_id``),
so after a crash the same message is neither lost nor queued twice.

A dropped connection, IDLE included (an EOF or BYE seen while idling, or no
answer to the DONE that ends each ``idle_refresh``), ends the session; the
watcher reconnects after a backoff that doubles from ``reconnect_min`` up to
``reconnect_max`` and resets once a folder is selected again. The state file
shows the connection state and the last error (an exception type or a fixed
phrase, never server text).
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import time
from typing import Protocol

from gateway.audit import get_logger
from gateway.imapconn import IMAP_ERRORS, close, connect, error_text
from gateway.inbound_state import MailboxState, StateBook
from gateway.model import Action, Decision, Envelope, Plan, Verdict

FAILED_KEYWORD = "$PhigateFailed"
_SMIME_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
_SIGNATURE_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature")
_BATCH = 100
# Inbound content is not classified: it counts as PHI (fail closed).
INBOUND_VERDICT = Verdict(phi=True, reasons=("inbound message, not classified",))
log = get_logger(__name__)


class Intake(Protocol):
    """Where the watcher puts work: the spool (``actions.inbound.SpoolIntake``)."""

    def known(self, item_id: str) -> bool:
        """Whether an item with this id is in the spool (queue, hold or shunt)."""
        ...

    async def accept(self, item_id: str, envelope: Envelope, raw: bytes, plan: Plan) -> bool:
        """Commit the item (fsync) and schedule it; False when the spool is full."""
        ...


class ConnectionDropped(Exception):
    """The server said BYE, or the socket reached EOF, while idling."""


class SpoolFull(Exception):
    """The spool refused the item; retried after the backoff."""


def needs_work(header: bytes) -> bool:
    """Whether a message with this header block is S/MIME that phigate opens."""
    msg = email.message_from_bytes(header, policy=email.policy.compat32)
    ctype = msg.get_content_type()
    if ctype in _SMIME_TYPES:
        return True
    protocol = str(msg.get_param("protocol", "") or "").lower()
    return ctype == "multipart/signed" and protocol in _SIGNATURE_TYPES


def inbound_plan(mailbox, folder: str, uidvalidity: int, uid: int, flags: list[str],
                 internaldate: str) -> tuple[Envelope, Plan]:
    """The envelope and plan of one mailbox message: one recipient (the
    mailbox user) with the ``inbound`` action and where the message lives."""
    envelope = Envelope(mail_from="", rcpt_tos=(mailbox.user,), peer=f"{mailbox.host}:"
                        f"{mailbox.port}", received_at=time.time(), source="imap")
    decision = Decision(mailbox.user, Action.INBOUND, "inbound",
                        reason=f"S/MIME in mailbox {mailbox.name}",
                        options={"mailbox": mailbox.name, "folder": folder,
                                 "uidvalidity": uidvalidity, "uid": uid, "flags": flags,
                                 "internaldate": internaldate})
    return envelope, Plan(INBOUND_VERDICT, (decision,))


class FolderWatcher:
    def __init__(self, mailbox, folder: str, book: StateBook, intake: Intake, *,
                 reconnect_min: float, reconnect_max: float):
        self.mailbox = mailbox
        self.folder = folder
        self.book = book
        self.state: MailboxState = book.get(mailbox.name)
        self.intake = intake
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self._delay = reconnect_min
        self._stop = asyncio.Event()
        self._client = None

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._session()
            except (*IMAP_ERRORS, ConnectionDropped, SpoolFull) as exc:
                if self._stop.is_set():
                    break
                error = "spool full" if isinstance(exc, SpoolFull) else error_text(exc)
                self.state.connection(self.folder, "disconnected", error)
                log.warning("inbound mailbox disconnected", mailbox=self.mailbox.name,
                            error=error, retry_in=self._delay)
            except Exception as exc:  # noqa: BLE001 — a bug must not end the watch for good
                error = f"internal error: {type(exc).__name__}"
                self.state.connection(self.folder, "disconnected", error)
                log.error("inbound watcher failed", mailbox=self.mailbox.name, error=error,
                          retry_in=self._delay)
            try:
                await asyncio.wait_for(self._stop.wait(), self._delay)
            except TimeoutError:
                pass
            self._delay = min(self._delay * 2, self.reconnect_max)
        self.state.connection(self.folder, "stopped")

    def stop(self) -> None:
        """End the session at once (a thread blocked in IDLE wakes at EOF)."""
        self._stop.set()
        client = self._client
        if client is not None:
            try:
                client.socket().shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    async def _session(self) -> None:
        self.state.connection(self.folder, "connecting")
        client = await asyncio.to_thread(connect, self.mailbox)
        self._client = client
        try:
            if self._stop.is_set():
                return
            info = await asyncio.to_thread(client.select_folder, self.folder)
            uidvalidity = int(info[b"UIDVALIDITY"])
            idle = client.has_capability("IDLE")
            self._delay = self.reconnect_min
            while not self._stop.is_set():
                self.state.connection(self.folder, "processing")
                await self._scan(client, uidvalidity)
                self.state.connection(self.folder, "idle" if idle else "polling")
                if idle:
                    await asyncio.to_thread(self._idle_wait, client)
                else:
                    await self._poll_wait(client)
        finally:
            self._client = None
            await asyncio.to_thread(close, client)

    def _idle_wait(self, client) -> None:
        """Block (in a thread) until the folder has news, ``idle_refresh``
        passes, or the stop; raise ConnectionDropped on BYE or EOF."""
        client.idle()
        deadline = time.monotonic() + self.mailbox.idle_refresh
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            started = time.monotonic()
            responses = client.idle_check(timeout=left)
            if any(r and r[0] == b"BYE" for r in responses):
                raise ConnectionDropped("BYE")
            if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                break
            # idle_check returns early with nothing only when the socket hit EOF.
            if not responses and time.monotonic() - started < left - 0.5:
                raise ConnectionDropped("EOF")
        if self._stop.is_set():
            raise ConnectionDropped("stopping")
        client.idle_done()        # raises on a dead connection (read timeout)

    async def _poll_wait(self, client) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), self.mailbox.poll_interval)
        except TimeoutError:
            await asyncio.to_thread(client.noop)

    async def _scan(self, client, uidvalidity: int) -> None:
        last = self.state.position(self.folder, uidvalidity)
        found = await asyncio.to_thread(client.search, ["UID", f"{last + 1}:*", "NOT",
                                                         "KEYWORD", FAILED_KEYWORD])
        uids = sorted(u for u in found if u > last)
        for start in range(0, len(uids), _BATCH):
            batch = uids[start:start + _BATCH]
            heads = await asyncio.to_thread(client.fetch, batch, [b"BODY.PEEK[HEADER]"])
            for uid in batch:
                header = heads.get(uid, {}).get(b"BODY[HEADER]")
                if header is not None and needs_work(header):
                    await self._queue(client, uidvalidity, uid)
                self.state.advance(self.folder, uid, save=False)
                if self._stop.is_set():
                    break
            self.state.save()           # every message up to here is committed or needs nothing
            if self._stop.is_set():
                return

    async def _queue(self, client, uidvalidity: int, uid: int) -> None:
        item_id = self.book.item_id(self.mailbox.name, self.folder, uidvalidity, uid)
        if self.intake.known(item_id):
            return
        data = await asyncio.to_thread(client.fetch, [uid],
                                       [b"BODY.PEEK[]", b"FLAGS", b"INTERNALDATE"])
        entry = data.get(uid)
        if not entry or b"BODY[]" not in entry:
            return                                    # expunged meanwhile
        flags = [f.decode() if isinstance(f, bytes) else str(f) for f in entry[b"FLAGS"]]
        internaldate = entry[b"INTERNALDATE"]
        envelope, plan = inbound_plan(self.mailbox, self.folder, uidvalidity, uid, flags,
                                      internaldate.isoformat() if internaldate else "")
        if not await self.intake.accept(item_id, envelope, bytes(entry[b"BODY[]"]), plan):
            raise SpoolFull()


class InboundWatchers:
    """Every FolderWatcher of the config, started and stopped together."""

    def __init__(self, config, book: StateBook, intake: Intake):
        self.watchers = [FolderWatcher(m, folder, book, intake,
                                       reconnect_min=config.reconnect_min,
                                       reconnect_max=config.reconnect_max)
                         for m in config.mailboxes for folder in m.folders]
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(w.run()) for w in self.watchers]

    async def stop(self, grace: float = 10.0) -> None:
        for w in self.watchers:
            w.stop()
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
