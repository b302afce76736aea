"""ImapCourier: put a message into one mailbox by IMAP APPEND.

Used to land patients' portal messages in the provider's inbox as unread
mail (no ``\\Seen`` flag) in INBOX or a configured folder. Implicit TLS only
(aioimaplib has no STARTTLS), certificate verified. One
short connection per message: portal replies are rare.
"""
from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence

import aioimaplib

from gateway.model import Delivered, Outcome, Permanent, Transient


class ImapCourier:
    def __init__(self, host: str, port: int, user: str, password: str, folder: str = "INBOX",
                 ssl_context: ssl.SSLContext | None = None, timeout: float = 60.0):
        self.host = host
        self.port = port
        self.user = user
        self._password = password
        self.folder = folder
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.timeout = timeout

    @classmethod
    def from_config(cls, mailbox) -> ImapCourier:
        """From a ``PortalMailbox`` config section (password read from its 0600 file)."""
        ctx = ssl.create_default_context(cafile=str(mailbox.ca_file) if mailbox.ca_file else None)
        if not mailbox.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        password = mailbox.password_file.read_text(encoding="utf-8").strip()
        return cls(mailbox.host, mailbox.port, mailbox.user, password, mailbox.folder, ctx)

    @property
    def address(self) -> str:
        return self.user

    async def _connect(self) -> aioimaplib.IMAP4_SSL:
        client = aioimaplib.IMAP4_SSL(host=self.host, port=self.port,
                                      ssl_context=self.ssl_context, timeout=self.timeout)
        await asyncio.wait_for(client.wait_hello_from_server(), self.timeout)
        response = await client.login(self.user, self._password)
        if response.result != "OK":
            await client.logout()
            raise PermissionError("IMAP login refused")
        return client

    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, Outcome]:
        """Append ``data`` once (unread); the same outcome for every recipient."""
        outcome = await self._append(data)
        return {r: outcome for r in rcpts}

    async def _append(self, data: bytes) -> Outcome:
        try:
            client = await self._connect()
        except PermissionError:
            return Permanent("IMAP login refused")
        except (TimeoutError, OSError, aioimaplib.Abort) as exc:
            return Transient(f"IMAP connection failed: {type(exc).__name__}")
        try:
            response = await client.append(data, mailbox=self.folder)
            if response.result != "OK":
                return Transient("IMAP APPEND refused")
            return Delivered("appended")
        except (TimeoutError, OSError, aioimaplib.Abort) as exc:
            return Transient(f"IMAP APPEND failed: {type(exc).__name__}")
        finally:
            await _logout(client)

    async def contains(self, message_id: str) -> bool:
        """Whether a message with this Message-ID is already in the folder."""
        client = await self._connect()
        try:
            await client.select(self.folder)
            response = await client.uid_search(f'HEADER Message-ID "{_quote(message_id)}"')
            return response.result == "OK" and bool(response.lines[0].split())
        finally:
            await _logout(client)

    async def close(self) -> None:
        return None


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


async def _logout(client) -> None:
    try:
        await asyncio.wait_for(client.logout(), 10)
    except (TimeoutError, OSError, aioimaplib.Abort):
        pass
