"""InboundAction: open an S/MIME message taken from a practice mailbox and put
the readable result back where staff read their mail.

The watcher (``ingress.imap``) committed the raw message with a plan whose
decision options say where it lives (mailbox, folder, UIDVALIDITY, UID,
flags, INTERNALDATE). Here, after that commit:

1. ``open_message`` decrypts and verifies it (in a thread) with the
   practice's identities, trust anchors, intermediates and CRL cache.
2. In one IMAP session (``imapconn``): unless a message carrying
   ``X-Phigate-Queue-Id: <this item>`` is already in the folder (a retry after
   a crash), APPEND
   * when it opened (decrypted, and any signature valid): the readable
     message with the ``X-Phigate-*`` result headers, unread, with the
     original's other flags and INTERNALDATE (its Date header is kept);
   * when it did not (no key, bad or untrusted or revoked signer, garbage):
     a short notice, also unread, that names what failed and where the
     original is, with no content of the message.
   A message with no layer phigate opens (compressed data, say) is left alone.
3. Opened: the original moves to ``archive_folder`` (created if missing),
   by MOVE, or by COPY + STORE \\Deleted + UID EXPUNGE of that UID only
   (UIDPLUS); the original is never deleted before the archive copy exists.
   Not opened: the original stays in place and gets the keyword
   ``$PhigateFailed`` so the watcher does not queue it again.

A broken connection is a Transient outcome (the dispatcher retries with its
backoff); every step is safe to repeat. The result is audited (``decrypted``,
``verified``), counted in the mailbox state, and ``SpoolIntake`` is what the
watcher commits through.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
from collections.abc import Sequence
from pathlib import Path

from gateway.audit import audit
from gateway.crypto.certstore import CertStore
from gateway.crypto.inbound import OpenResult, open_message
from gateway.crypto.smime_entity import field_name
from gateway.imapconn import IMAP_ERRORS, close, connect, error_text
from gateway.inbound_state import StateBook
from gateway.ingress.imap import FAILED_KEYWORD
from gateway.model import Action, Delivered, Envelope, Outcome, Permanent, Plan, Transient
from gateway.queue.store import ItemNotFound, QueueFull, QueueStore

QUEUE_ID_HEADER = "X-Phigate-Queue-Id"
SESSIONS_PER_MAILBOX = 3
_DROP_FLAGS = {"\\seen", "\\recent", "\\deleted"}


class SpoolIntake:
    """The watcher's way into the spool: commit (fsync), then schedule."""

    def __init__(self, store: QueueStore, dispatcher):
        self.store = store
        self.dispatcher = dispatcher

    def known(self, item_id: str) -> bool:
        try:
            self.store.find(item_id)
        except ItemNotFound:
            return False
        return True

    async def accept(self, item_id: str, envelope: Envelope, raw: bytes, plan: Plan) -> bool:
        try:
            item = await self.store.put(envelope, raw, plan, item_id=item_id)
        except QueueFull:
            return False
        audit("queued", queue_id=item.id, source="imap", size=len(raw),
              recipient=envelope.rcpt_tos[0], action=Action.INBOUND.value)
        self.dispatcher.submit(item, raw)
        return True


def stamped(message: bytes, item_id: str) -> bytes:
    """``message`` with our queue id header first and any a sender wrote removed."""
    head, sep, body = message.partition(b"\r\n\r\n")
    kept, skipping = [], False
    for line in head.split(b"\r\n"):
        if line[:1] not in (b" ", b"\t"):
            skipping = field_name(line) == QUEUE_ID_HEADER.lower().encode()
        if not skipping:
            kept.append(line)
    return f"{QUEUE_ID_HEADER}: {item_id}\r\n".encode() + b"\r\n".join(kept) + sep + body


def opened(result: OpenResult) -> bool:
    """Readable and trustworthy: decryption did not fail and no signature is bad."""
    return result.decrypted != "failed" and result.signature_status() != "invalid"


def failure_reason(result: OpenResult) -> str:
    if result.decrypted == "failed":
        return f"could not be decrypted ({result.decrypt_reason})"
    sig = result.signature
    return f"signature not accepted ({sig.reason if sig else 'unknown'})"


def _header_value(raw: bytes, name: bytes) -> str:
    """One header field of ``raw`` (unfolded), for the notice; "" when absent."""
    head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    return ""


def notice(raw: bytes, result: OpenResult, item_id: str, mailbox) -> bytes:
    """The PHI-free failure notice: no subject or content of the message,
    only its sender address, Date and Message-ID (to find it) and the reason."""
    sender = email.utils.parseaddr(_header_value(raw, b"From"))[1] or "unknown sender"
    sent = _header_value(raw, b"Date") or "unknown"
    message_id = _header_value(raw, b"Message-ID")
    verdict = result.message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    ours = b"".join(line + b"\r\n" for line in verdict if line.startswith(b"X-Phigate-"))
    text = (f"phigate could not open a secure (S/MIME) message in this folder: it "
            f"{failure_reason(result)}.\r\n\r\n"
            "The original is left in place, unchanged:\r\n"
            f"  From: {sender}\r\n  Date: {sent}\r\n\r\n"
            "Ask the sender to check the certificates they used, or your administrator "
            f"to look up reference {item_id} (phigate queue / audit log).\r\n")
    head = (f"From: phigate <{mailbox.user}>\r\nTo: <{mailbox.user}>\r\n"
            f"Subject: Secure message could not be opened\r\n"
            f"Date: {email.utils.formatdate(localtime=False)}\r\n"
            f"Message-ID: {email.utils.make_msgid('phigate')}\r\n"
            + (f"In-Reply-To: {message_id}\r\n" if message_id.startswith("<") else "")
            + f"{QUEUE_ID_HEADER}: {item_id}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n")
    return (head.encode("ascii", "replace") + ours + b"\r\n"
            + text.encode("ascii", "replace"))


class InboundAction:
    action = Action.INBOUND

    def __init__(self, mailboxes: Sequence, certstore: CertStore, smime, crl_dir: Path,
                 book: StateBook):
        self.mailboxes = {m.name: m for m in mailboxes}
        self.certstore = certstore
        self.smime = smime
        self.crl_dir = crl_dir
        self.book = book
        # Providers cap IMAP connections per user (Dovecot: 10 per IP): a
        # queue of many items for one mailbox shares a few sessions' worth.
        self._sessions = {m.name: asyncio.Semaphore(SESSIONS_PER_MAILBOX) for m in mailboxes}

    async def execute(self, item, raw: bytes, recipients: Sequence) -> dict[str, Outcome]:
        options = item.plan.decision_for(recipients[0].address).options
        mailbox = self.mailboxes.get(options.get("mailbox"))
        if mailbox is None:
            outcome: Outcome = Permanent("mailbox no longer configured (inbound.mailboxes)")
        else:
            outcome = await self._open_and_deliver(item, raw, mailbox, options)
        return {r.address: outcome for r in recipients}

    async def _open_and_deliver(self, item, raw: bytes, mailbox, options: dict) -> Outcome:
        store = self.certstore
        partners = [r.certificate for r in store.list() if r.kind == "recipient"]
        result = await asyncio.to_thread(
            open_message, raw, identities=store.identities(), anchors=store.trust_anchors(),
            intermediates=[*store.intermediates(), *partners], crl_dir=self.crl_dir,
            require_email_protection=self.smime.require_email_protection,
            revocation=self.smime.crl)
        if result.decrypted == "no" and result.signature is None:
            return Delivered("nothing to open (compressed data, say): left alone")
        ok = opened(result)
        if ok:
            data = stamped(result.message, item.id)
        else:
            data = notice(raw, result, item.id, mailbox)
        try:
            async with self._sessions[mailbox.name]:
                await asyncio.to_thread(_deliver, mailbox, options, item.id, data, ok)
        except IMAP_ERRORS as exc:
            return Transient(f"IMAP: {error_text(exc)}")
        for event, fields in result.audit_events():
            audit(event, queue_id=item.id, **fields)
        state = self.book.get(mailbox.name)
        if ok:
            state.count("processed")
            return Delivered("opened into the mailbox")
        state.count("failed", error=failure_reason(result))
        audit("refused", queue_id=item.id, action=Action.INBOUND.value,
              reason=failure_reason(result))
        return Delivered("not opened: notice appended, original left in place")


def _deliver(mailbox, options: dict, item_id: str, data: bytes, ok: bool) -> None:
    """The IMAP side, in a worker thread; every step safe to repeat."""
    folder, uid = options["folder"], options["uid"]
    client = connect(mailbox)
    try:
        info = client.select_folder(folder)
        same_folder = int(info[b"UIDVALIDITY"]) == options["uidvalidity"]
        if not client.search(["HEADER", QUEUE_ID_HEADER, item_id]):
            flags = [f for f in options.get("flags", []) if f.lower() not in _DROP_FLAGS]
            when = (dt.datetime.fromisoformat(options["internaldate"])
                    if options.get("internaldate") else None)
            client.append(folder, data, flags=flags, msg_time=when)
        if not same_folder or not client.search(["UID", str(uid)]):
            return                           # already moved (a retry) or gone meanwhile
        if not ok:
            try:
                client.add_flags([uid], [FAILED_KEYWORD])
            except client.Error:
                pass      # keywords not allowed here: last UID alone keeps it from requeueing
            return
        _archive(client, uid, mailbox.archive_folder)
    finally:
        close(client)


def _archive(client, uid: int, archive: str) -> None:
    if not client.folder_exists(archive):
        client.create_folder(archive)
    if client.has_capability("MOVE"):
        client.move([uid], archive)
        return
    client.copy([uid], archive)             # the archive copy exists before any deletion
    client.add_flags([uid], ["\\Deleted"])
    if client.has_capability("UIDPLUS"):
        client.uid_expunge([uid])           # only this UID, never others marked \Deleted
