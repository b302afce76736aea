"""A scripted SMTP client for protocol edge cases: raw lines over asyncio
streams, so a test controls every byte (bare LF, pipelining, a hang-up in the
middle of DATA) and reads every reply, each read bounded by a timeout.

    d = await Dialog.open(host, port)
    await d.session(USER, PASSWORD)          # banner, EHLO, STARTTLS, EHLO, AUTH PLAIN
    code, text = await d.cmd("MAIL FROM:<a@b.example>")
"""
from __future__ import annotations

import asyncio
import base64
import ssl


class Dialog:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float):
        self.reader, self.writer, self.timeout = reader, writer, timeout
        self.banner: tuple[int, str] | None = None

    @classmethod
    async def open(cls, host: str, port: int, timeout: float = 30) -> Dialog:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        return cls(reader, writer, timeout)

    async def reply(self) -> tuple[int, str]:
        """One complete (possibly multi-line) reply: (code, lines joined by \\n)."""
        lines = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), self.timeout)
            if not raw:
                raise ConnectionError(f"server closed the connection after {lines!r}")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), "\n".join(lines)

    async def send(self, data: bytes | str) -> None:
        self.writer.write(data.encode() if isinstance(data, str) else data)
        await asyncio.wait_for(self.writer.drain(), self.timeout)

    async def cmd(self, line: bytes | str) -> tuple[int, str]:
        await self.send(line + ("\r\n" if isinstance(line, str) else b"\r\n"))
        return await self.reply()

    async def greet(self, name: str = "client.smiledental.example") -> tuple[int, str]:
        self.banner = await self.reply()
        return await self.cmd(f"EHLO {name}")

    async def starttls(self, name: str = "client.smiledental.example") -> tuple[int, str]:
        code, text = await self.cmd("STARTTLS")
        assert code == 220, (code, text)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE      # the gateway's self-signed test certificate
        await asyncio.wait_for(self.writer.start_tls(context), self.timeout)
        return await self.cmd(f"EHLO {name}")

    async def auth_plain(self, user: str, password: str) -> tuple[int, str]:
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return await self.cmd(f"AUTH PLAIN {blob}")

    async def session(self, user: str, password: str) -> tuple[int, str]:
        """Banner, EHLO, STARTTLS, EHLO, AUTH; returns the post-TLS EHLO reply."""
        await self.greet()
        ehlo = await self.starttls()
        code, text = await self.auth_plain(user, password)
        assert code == 235, (code, text)
        return ehlo

    async def data(self, body: bytes) -> tuple[int, str]:
        """DATA, the body as given (no dot-stuffing, no line-end fixing), then
        the terminator; returns the reply to the end of data."""
        code, text = await self.cmd("DATA")
        assert code == 354, (code, text)
        await self.send(body + b"\r\n.\r\n")
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), self.timeout)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass
