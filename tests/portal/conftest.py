"""Portal fixtures: the store on SQLite and on PostgreSQL (every test that
uses ``portal_store`` runs on both), the real queue the portal's mail goes
through (``portal_spool``: a QueueStore and Dispatcher with the relay and
mailbox actions behind the guarded upstream courier; ``await
portal_spool.drain()`` attempts what is due), the web app on a real loopback
port, an HTTP client that keeps cookies and fills in CSRF tokens, and
helpers that deposit PHI mail through ``PortalAction.execute`` with a real
``QueueItem``."""
from __future__ import annotations

import email.policy
import re
import ssl
import time
from email.message import EmailMessage

import aiohttp
import aiosmtplib
import pytest
from cryptography.fernet import Fernet

from gateway.actions.mailbox import MailboxAction
from gateway.actions.portal import PortalAction
from gateway.actions.relay import RelayAction
from gateway.app import Gateway
from gateway.auth.users import UserDirectory
from gateway.config.models import Config, PortalConfig, UpstreamConfig
from gateway.delivery.guard import GuardedCourier
from gateway.delivery.smtp import UpstreamCourier
from gateway.model import Action, Decision, Envelope, Plan, Verdict
from gateway.portal.app import build_app, serve
from gateway.portal.store import open_store, sqlite_url
from gateway.queue.dispatcher import Dispatcher
from gateway.queue.item import QueueItem
from gateway.queue.store import QueueStore
from tests.peers.ports import free_port

PRACTICE = "Smile Dental"
HELP_PHONE = "555-0100"
SENDER = "frontdesk@smiledental.example"


@pytest.fixture(params=["sqlite", "postgres"])
def portal_store(request, tmp_path):
    if request.param == "sqlite":
        url = sqlite_url(tmp_path / "portal.db")
    else:
        url = request.getfixturevalue("postgres_url")
    store = open_store(url, totp_key=Fernet.generate_key())
    yield store
    store.close()


@pytest.fixture
def portal_port() -> int:
    return free_port()


@pytest.fixture
def portal_config(portal_port) -> PortalConfig:
    return PortalConfig(enabled=True, address=f"127.0.0.1:{portal_port}",
                        base_url=f"http://127.0.0.1:{portal_port}", practice_name=PRACTICE,
                        help_phone=HELP_PHONE, secure_cookies=False,
                        default_provider_address="dr.smith@smiledental.example",
                        notice_from="portal@smiledental.example")


@pytest.fixture
async def upstream_courier(upstream_sink):
    """The upstream courier as ``gateway.app`` builds it: behind the guard."""
    courier = GuardedCourier(UpstreamCourier(UpstreamConfig(
        host="127.0.0.1", port=upstream_sink.port, tls="none"), "gateway.test"))
    yield courier
    await courier.close()


@pytest.fixture
def portal_spool(tmp_path, portal_store, upstream_courier) -> Dispatcher:
    """The queue every portal mail goes through (nothing runs in the
    background: ``await portal_spool.drain()`` delivers what is due)."""
    dispatcher = Dispatcher(QueueStore(tmp_path / "spool"), hostname="gateway.test")
    dispatcher.handlers = {
        Action.RELAY: RelayAction(upstream_courier),
        Action.MAILBOX: MailboxAction({}, None, upstream_courier, portal_store)}
    return dispatcher


@pytest.fixture
def portal_action(portal_store, portal_config, portal_spool) -> PortalAction:
    return PortalAction(portal_store, portal_config, portal_spool)


@pytest.fixture
async def portal_web_app(portal_store, portal_config, portal_spool):
    """The aiohttp app ``portal_server`` serves; its mail goes to ``portal_spool``."""
    return build_app(portal_store, portal_config, b"k" * 32, spool=portal_spool)


@pytest.fixture
async def portal_server(portal_web_app, portal_config, portal_port):
    runner = await serve(portal_web_app, "127.0.0.1", portal_port)
    yield portal_config.base_url
    await runner.cleanup()


class PortalClient:
    """A browser stand-in: cookies kept, CSRF token taken from the last form."""

    def __init__(self, base: str):
        self.base = base
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.headers: dict[str, str] = {}     # e.g. X-Forwarded-For: another client address

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.base + path, allow_redirects=True,
                                    headers=self.headers) as r:
            text = await r.text(errors="replace")
            m = re.search(r'name="csrf" value="([0-9a-f]+)"', text)
            if m:
                self.csrf = m.group(1)
            self.last_headers = r.headers
            self.last_url = str(r.url)
            return r.status, text

    async def post(self, path: str, data: dict | aiohttp.FormData, *, csrf: bool = True,
                   follow: bool = True) -> tuple[int, str]:
        if isinstance(data, dict):
            data = {**data, **({"csrf": self.csrf} if csrf else {})}
        elif csrf:
            data.add_field("csrf", self.csrf)
        async with self.session.post(self.base + path, data=data, allow_redirects=follow,
                                     headers=self.headers) as r:
            self.last_url = str(r.url)
            return r.status, await r.text(errors="replace")

    async def login(self, email: str, password: str, code: str = "") -> tuple[int, str]:
        await self.get("/login")
        return await self.post("/login", {"email": email, "password": password, "code": code})

    async def register(self, link: str, password: str, birth_date: str) -> tuple[int, str]:
        """Open a registration link (its form must be there) and set the password."""
        status, page = await self.get(link)
        assert status == 200 and "Set your password" in page
        return await self.post(link, {"password": password, "password2": password,
                                      "birth_date": birth_date})

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture
async def client_factory(portal_server):
    clients = []

    def make() -> PortalClient:
        clients.append(PortalClient(portal_server))
        return clients[-1]

    yield make
    for c in clients:
        await c.close()


def phi_message(to: str, subject: str, text: str, html: str | None = None,
                attachment: tuple[str, bytes] | None = None) -> bytes:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "Dr Smith <dr.smith@smiledental.example>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<orig-1@smiledental.example>"
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        msg.add_attachment(attachment[1], maintype="application", subtype="pdf",
                           filename=attachment[0])
    return msg.as_bytes()


def portal_item(queue_id: str, recipients: list[str]) -> QueueItem:
    envelope = Envelope("dr.smith@smiledental.example", tuple(recipients), auth_user="frontdesk",
                        received_at=time.time())
    plan = Plan(Verdict(phi=True, reasons=("identifier+clinical in body",)),
                tuple(Decision(r, Action.PORTAL, "phi-to-patients") for r in recipients))
    return QueueItem.new(queue_id, envelope, plan)


def link_from(notice: bytes, kind: str = "register") -> str:
    """The one-time link's path (``/register/<token>``) in a notice."""
    body = email.message_from_bytes(notice, policy=email.policy.default).get_content()
    m = re.search(r"https?://[^/\s]+(/" + kind + r"/[A-Za-z0-9_-]+)", body)
    assert m, "no link in the notice"
    return m.group(1)


PORTAL_FOR_PHI = """\
rules:
  - name: phi-to-portal
    when: {phi: true}
    action: portal
default: {action: relay}
"""


@pytest.fixture
def gateway_portal_config(portal_config) -> PortalConfig:
    """The portal section ``gateway_with_portal`` runs with (a test module may
    add a provider mailbox)."""
    return portal_config


@pytest.fixture
async def gateway_with_portal(tmp_path, upstream_sink, portal_store, gateway_portal_config):
    """A whole Gateway as ``gateway.app`` wires it, with a policy sending PHI to
    the portal and the portal store of the test (its web app is served by
    the tests themselves with ``spool=gw.dispatcher``, so the gateway's own
    portal role stays off)."""
    users = tmp_path / "users.yaml"
    # the messages' header From is the doctor's (gateway.auth.senders binds it to the login)
    UserDirectory.load(users).add("frontdesk", "front desk password",
                                  [SENDER, "dr.smith@smiledental.example"])
    policy = tmp_path / "policy.yaml"
    policy.write_text(PORTAL_FOR_PHI)
    store_url = portal_store.engine.url.render_as_string(hide_password=False)
    portal = gateway_portal_config.model_copy(update={"enabled": False,
                                                      "database_url": store_url})
    config = Config.model_validate({
        "state_dir": str(tmp_path / "state"), "auth": {"users_file": str(users)},
        "policy": str(policy),
        "listen": {"submission": {"address": "127.0.0.1:0"}},
        "upstream": {"host": "127.0.0.1", "port": upstream_sink.port, "tls": "none"},
        "queue": {"dir": str(tmp_path / "spool")}, "metrics": {"address": None},
        "portal": portal.model_dump()})
    gw = Gateway(config)
    await gw.start()
    yield gw
    await gw.stop(grace=5)


async def submit(gw, raw: bytes, to: str) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE       # the daemon's self-signed test certificate
    host, port = gw.smtp.address
    async with aiosmtplib.SMTP(hostname=host, port=port, start_tls=True,
                               tls_context=context, timeout=30) as client:
        await client.login("frontdesk", "front desk password")
        await client.sendmail(SENDER, [to], raw)
