"""Open a logged-in IMAP session to a watched practice mailbox.

IMAPClient (on the standard library's imaplib) rather than aioimaplib, which
the portal courier uses: the inbound watcher needs STARTTLS, which aioimaplib
does not have, and an IDLE that notices a dropped connection, which
aioimaplib's does not (libs.md §3). IMAPClient has both, plus a read timeout
on every command, MOVE, UIDPLUS and INTERNALDATE on APPEND. It is blocking,
so callers run it in a worker thread (``asyncio.to_thread``); there is one
session per watched folder and one short one per inbound action, never a
hot path.

TLS: ``implicit`` (993) or ``starttls`` (143, refused if the server does not
offer it); the server certificate is always verified, against ``ca_file``
when the mailbox names a private CA.
"""
from __future__ import annotations

import imaplib
import socket
import ssl

from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, IMAPClientError, LoginError

# What a broken connection or a refusing server raises; everything is retried.
IMAP_ERRORS = (OSError, ssl.SSLError, socket.timeout, imaplib.IMAP4.error, IMAPClientError)


# Most specific first: (exception class, fixed phrase).
_PHRASES = ((ssl.SSLCertVerificationError, "TLS certificate not trusted"),
            (ssl.SSLError, "TLS failed"),
            (LoginError, "IMAP login refused"),
            (CapabilityError, "server lacks a needed capability (STARTTLS?)"),
            (imaplib.IMAP4.abort, "IMAP connection lost"),
            (imaplib.IMAP4.error, "IMAP command refused"),
            (TimeoutError, "IMAP timeout"),
            (ConnectionRefusedError, "connection refused"))


def error_text(exc: BaseException) -> str:
    """A fixed, content-free phrase for an IMAP failure (never the text a
    server sent, which may quote a message); the type name otherwise."""
    for kind, phrase in _PHRASES:
        if isinstance(exc, kind):
            return phrase
    return type(exc).__name__


def _tls_context(mailbox) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(mailbox.ca_file) if mailbox.ca_file else None)


def connect(mailbox) -> IMAPClient:
    """A logged-in IMAPClient for an ``InboundMailbox`` config (password from
    its 0600 file). Raises one of ``IMAP_ERRORS``."""
    password = mailbox.password_file.read_text(encoding="utf-8").strip()
    if mailbox.tls == "implicit":
        client = IMAPClient(mailbox.host, mailbox.port, ssl=True,
                            ssl_context=_tls_context(mailbox), timeout=mailbox.timeout)
    else:
        client = IMAPClient(mailbox.host, mailbox.port, ssl=False, timeout=mailbox.timeout)
        try:
            client.starttls(_tls_context(mailbox))
        except BaseException:
            client.shutdown()
            raise
    client.normalise_times = False           # INTERNALDATE with its own time zone
    try:
        client.login(mailbox.user, password)
    except BaseException:
        client.shutdown()
        raise
    return client


def close(client: IMAPClient) -> None:
    """LOGOUT, or drop the socket when the connection is already gone."""
    try:
        client.logout()
    except IMAP_ERRORS:
        try:
            client.shutdown()
        except IMAP_ERRORS:
            pass
