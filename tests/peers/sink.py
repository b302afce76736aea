"""An upstream SMTP server for tests: aiosmtpd on loopback that records every
transaction and can refuse per recipient, at MAIL or at DATA.

    upstream_sink.fail_rcpt["x@partner.example"] = "550 5.1.1 No such user"
    await upstream_sink.wait_for(3, timeout=30)
    await upstream_sink.stop(); await upstream_sink.start()   # same port: an outage

With ``tls=True`` it offers STARTTLS with a certificate from a throwaway CA
(``sink.ca_file`` for the client); with ``auth`` it requires AUTH. aiosmtpd
reads pipelined commands but does not say so; ``pipelining=True`` adds
PIPELINING to the EHLO reply. ``sloppy_rcpt = True`` keeps refused recipients
in the envelope, so DATA gets a 354 with none accepted (a broken server).
"""
from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    auth_user: str | None


@dataclass
class SinkTls:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls(directory: Path, hostname: str = "localhost") -> SinkTls:
    """A CA and a server certificate for ``hostname`` and 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phigate test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    tls = SinkTls(directory / "sink-ca.pem", directory / "sink-cert.pem", directory / "sink-key.pem")
    tls.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return tls


class _Handler:
    def __init__(self, sink: UpstreamSink):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.sink.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):
        if self.sink.fail_mail:
            return self.sink.fail_mail
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        reply = self.sink.fail_rcpt.get(address)
        if reply:
            if self.sink.sloppy_rcpt:
                envelope.rcpt_tos.append(address)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.fail_data:
            return self.sink.fail_data
        login = getattr(session.auth_data, "login", None)
        self.sink.record(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content, session.ssl is not None,
                                  login.decode() if login else None))
        return "250 2.0.0 OK"


class UpstreamSink:
    def __init__(self, port: int = 0, tls: SinkTls | None = None,
                 auth: tuple[str, str] | None = None, pipelining: bool = False):
        self.port = port
        self.tls = tls
        self.auth = auth
        self.pipelining = pipelining
        self.messages: list[Received] = []
        self.connections = 0
        self.fail_rcpt: dict[str, str] = {}
        self.fail_mail: str | None = None
        self.fail_data: str | None = None
        self.sloppy_rcpt = False
        self._server: asyncio.base_events.Server | None = None
        self._sessions: list[SMTP] = []
        self._arrived = asyncio.Condition()

    @property
    def ca_file(self) -> Path | None:
        return self.tls.ca_file if self.tls else None

    def record(self, message: Received) -> None:
        self.messages.append(message)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._arrived:
            self._arrived.notify_all()

    async def wait_for(self, count: int, timeout: float) -> None:
        """Until at least ``count`` messages arrived (bounded by ``timeout``)."""
        async with asyncio.timeout(timeout):
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.messages) >= count)

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login.decode(), auth_data.password.decode()) == self.auth
        return AuthResult(success=ok, handled=False)

    def _protocol(self):
        self.connections += 1
        self._sessions = [p for p in self._sessions if p.transport is not None]
        context = None
        if self.tls:
            import ssl
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.tls.cert_file, self.tls.key_file)
        session = SMTP(_Handler(self), hostname="sink.partner.example", tls_context=context,
                       require_starttls=False, auth_required=self.auth is not None,
                       auth_require_tls=self.tls is not None,
                       authenticator=self._authenticator if self.auth else None,
                       enable_SMTPUTF8=True)
        self._sessions.append(session)
        return session

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, "127.0.0.1", self.port,
                                                reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop open sessions (an outage, as clients see it)."""
        if self._server is not None:
            self._server.close()
            for session in self._sessions:
                if session.transport is not None:
                    session.transport.close()
            self._sessions.clear()
            await self._server.wait_closed()
            self._server = None


@pytest.fixture
async def sink_factory(tmp_path):
    sinks: list[UpstreamSink] = []

    async def make(tls: bool = False, auth: tuple[str, str] | None = None,
                   pipelining: bool = False) -> UpstreamSink:
        sink = UpstreamSink(tls=make_tls(tmp_path / f"sink{len(sinks)}") if tls else None,
                            auth=auth, pipelining=pipelining)
        await sink.start()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.stop()


@pytest.fixture
async def upstream_sink(sink_factory):
    return await sink_factory()
