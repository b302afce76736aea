"""Every configuration key with its default. The defaults are the embedded
set-up: SQLite/local spool under ``state_dir``, a self-signed certificate made
on first start, and delivery into a local outbox when no upstream is set.

Relative paths are resolved against the directory of the config file (or the
working directory when phigate runs without one) by ``Config.resolve_paths``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from gateway.config.types import Duration, HostPort, Size


def _port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be 1-65535")
    return value


Port = Annotated[int, AfterValidator(_port)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsFiles(Section):
    cert: Path                     # PEM certificate chain
    key: Path                      # PEM private key (mode 0600)


class ListenerConfig(Section):
    address: HostPort = "127.0.0.1:2587"
    tls: TlsFiles | None = None    # none: a self-signed certificate in state_dir/tls/
    implicit_tls: bool = False     # true: TLS from the first byte (port 465 style)


class ListenConfig(Section):
    submission: ListenerConfig = ListenerConfig()


class AuthThrottleConfig(Section):
    """SMTP AUTH guessing: failures counted per login and per client address
    in <state_dir>/auth-throttle.db (shared by every worker and connection)."""
    delay_base: Duration = 1.0            # delay before the 535 of the first failure; doubles
    delay_max: Duration = 30.0            # cap of that delay
    login_lockout_after: int = Field(10, ge=1)     # failures of one login → temporary lock
    address_lockout_after: int = Field(30, ge=1)   # failures from one client address (spraying)
    lockout_period: Duration = 900.0      # how long a lock lasts (answered 454, no password check)
    forget_after: Duration = 86400.0      # failures older than this (since the last one) forgotten


class AuthConfig(Section):
    users_file: Path = Path("users.yaml")
    trusted_networks: list[str] = []   # CIDRs that may submit without AUTH (off by default)
    shared_senders: list[str] = []     # header From/Sender any logged-in user may use (info@…)
    throttle: AuthThrottleConfig = AuthThrottleConfig()


class LimitsConfig(Section):
    max_message_size: Size = 25_000_000
    max_recipients: int = Field(100, ge=1, le=10000)
    max_line_length: int = Field(998, ge=78, le=100_000)   # octets, without CRLF
    max_connections: int = Field(200, ge=1)
    command_timeout: Duration = 300.0
    data_timeout: Duration = 600.0


class SmtpConfig(Section):
    hostname: str = ""             # EHLO/banner name; "" = the machine's FQDN
    # What to do with a bare CR or LF inside DATA (SMTP smuggling, CVE-2023-51766 class):
    #   reject    → 550 5.6.2, nothing queued (strict, RFC 5321 §2.3.8)
    #   normalize → rewrite to CRLF before queueing (what Postfix does by default)
    bare_line_endings: Literal["reject", "normalize"] = "normalize"


class UpstreamConfig(Section):
    host: str | None = None        # none: deliver into the local outbox directory
    port: Port = 587
    tls: Literal["none", "starttls", "implicit"] = "starttls"
    verify: bool = True            # verify the upstream certificate (leave on)
    ca_file: Path | None = None    # private CA bundle for the upstream
    username: str | None = None
    password_file: Path | None = None   # mode 0600, one line
    helo_name: str = ""
    timeout: Duration = 60.0
    pool_size: int = Field(8, ge=1, le=200)   # connections kept open to the upstream
    idle_timeout: Duration = 50.0


class RetryConfig(Section):
    min: Duration = 30.0
    max: Duration = 3600.0
    jitter: float = Field(0.2, ge=0, le=1)   # ± fraction of each delay


class QueueConfig(Section):
    dir: Path = Path("var/spool")
    give_up_after: Duration = 5 * 86400.0
    max_items: int = Field(20_000, ge=1)
    concurrency: int = Field(50, ge=1, le=10_000)   # items delivered at once
    retry: RetryConfig = RetryConfig()
    max_crashes: int = Field(3, ge=1)
    keep_failed: Duration = 7 * 86400.0   # failed items stay in failed/ this long; 0: removed at once


class LoggingConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    file: Path | None = None       # none: standard error (journald under systemd)


class MetricsConfig(Section):
    address: HostPort | None = "127.0.0.1:9587"   # /metrics and /health; null turns it off


class DsnConfig(Section):
    sender: str = ""               # From of bounces; "" = MAILER-DAEMON@<hostname>


class HeldNoticeConfig(Section):
    """The PHI-free notice to a sender whose message was held for some recipients."""
    enabled: bool = True
    template: Path | None = None   # none: the built-in text ($hostname, $queue_id, $held)


class AdminConfig(Section):
    """The administrator's daily digest (held, shunted, failed, expiring certificates)."""
    address: str = ""              # where the digest goes; "" turns it off
    digest_interval: Duration = 86400.0
    cert_warning: Duration = 30 * 86400.0   # list certificates expiring within this


class ClassifierConfig(Section):
    timeout: Duration = 5.0        # a classifier slower than this counts as PHI (fail closed)
    shadow: list[str] = []         # detector names recorded but not acted on


class PortalMailbox(Section):
    """A provider's IMAP mailbox where patients' messages land (implicit TLS, APPEND unread)."""
    host: str
    port: Port = 993
    user: str
    password_file: Path            # mode 0600, one line
    folder: str = "INBOX"
    ca_file: Path | None = None    # private CA bundle for the IMAP server
    verify: bool = True


class PortalConfig(Section):
    enabled: bool = False
    address: HostPort = "127.0.0.1:8443"   # the web app listens here (TLS by a reverse proxy)
    base_url: str = "https://portal.invalid"   # public address used in notices
    database_url: str | None = None    # none: sqlite:///<state_dir>/portal.db
    practice_name: str = "Your dental practice"
    help_phone: str = ""
    notice_from: str = ""          # sender of notices; "" = the original envelope sender
    notice_template: Path | None = None   # none: the built-in notice text
    retention: Duration = 90 * 86400.0     # messages are purged this long after deposit
    registration_link_ttl: Duration = 7 * 86400.0
    reset_link_ttl: Duration = 1800.0
    session_idle_timeout: Duration = 900.0
    session_absolute_timeout: Duration = 8 * 3600.0
    lockout_threshold: int = Field(10, ge=1)      # failed logins before the account locks
    lockout_base: Duration = 300.0                # first lock; doubles with each further lock
    max_upload_size: Size = 10_000_000
    secure_cookies: bool = True    # Secure flag on cookies (turn off only for plain-HTTP tests)
    provider_mailboxes: dict[str, PortalMailbox] = {}   # provider name → mailbox
    default_mailbox: PortalMailbox | None = None
    provider_addresses: dict[str, str] = {}   # provider name → e-mail (upstream when no IMAP)
    default_provider_address: str = ""
    read_notice: bool = False      # first opening: PHI-free "your message was read" to its sender
    lockout_max: Duration = 3600.0                # a lock never lasts longer (a reset link lifts it)
    login_client_limit: int = Field(5, ge=1)      # failed logins from one client address …
    login_client_window: Duration = 900.0         # … per this window, then that address waits
    identity_max_attempts: int = Field(5, ge=1)   # wrong dates of birth before a link is void
    identity_account_max_attempts: int = Field(10, ge=1)   # … across links: staff must re-issue
    upload_types: list[Literal["pdf", "png", "jpeg", "gif", "webp", "heic", "tiff", "txt",
                               "docx", "xlsx", "odt"]] = [
        "pdf", "png", "jpeg", "gif", "webp", "heic", "txt", "docx", "odt"]
    upload_max_expanded: Size = 50_000_000   # office files (zip inside): uncompressed total
    totp_key_file: Path | None = None   # none: <state_dir>/portal-totp.key (made 0600 on first use)
    # Cluster (docs/cluster.md): the HMAC secret of forms and rate-limit keys, the
    # same 0600 file on every node; none: <state_dir>/portal-secret, made per node.
    secret_file: Path | None = None
    previous_secret_files: list[Path] = []   # old secrets still accepted on forms (rotation)
    node_name: str = ""                      # this node in `phigate cluster status`; "": host name
    heartbeat: Duration = 30.0               # how often the node reports itself to the database


class SmimeConfig(Section):
    """S/MIME: the certificate store and how outgoing mail is signed and encrypted."""
    store_dir: Path | None = None  # none: <state_dir>/certs (keys inside are 0600)
    cipher: Literal["aes256", "aes128"] = "aes256"   # content encryption (AES-CBC)
    encrypt_to_self: bool = True   # add the practice's own certificate as a recipient
    require_signature: bool = True   # no signing identity for the sender: refuse, not unsigned
    strip_subject: bool = False    # always replace the outer Subject (policy may ask per rule)
    neutral_subject: str = "Secure message"   # the outer Subject when it is replaced
    require_email_protection: bool = False   # certificates must carry EKU emailProtection
    crl: Literal["soft", "hard"] = "soft"    # inbound: missing/unreachable CRL fails (hard) or not
    crl_cache_dir: Path | None = None   # none: <state_dir>/crl (CRLs kept until nextUpdate)


class DirectResolverConfig(Section):
    """The DNS resolver every Direct lookup goes through (CERT, SRV, and the
    addresses of LDAP, CRL and AIA hosts): never the system's getaddrinfo."""
    nameservers: list[HostPort] = []   # "HOST:PORT" list; [] = the system's resolvers (resolv.conf)
    timeout: Duration = 5.0            # per lookup, per LDAP operation and per HTTP fetch


def _domain(value: str) -> str:
    text = str(value).strip().rstrip(".").lower()
    if "@" in text or not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", text):
        raise ValueError("must be a domain name such as direct.smiledental.example")
    return text


class DirectConfig(Section):
    """Direct messaging: the practice's Direct domains, trust anchors and resolver."""
    domains: list[Annotated[str, AfterValidator(_domain)]] = []   # the MX listener accepts only these
    anchors: list[Path] = []           # PEM files (one or more certificates each): Direct trust anchors
    resolver: DirectResolverConfig = DirectResolverConfig()
    listen: HostPort | None = None     # "HOST:PORT" of the Direct MX listener; null = off
    mdn_timeout: Duration = 3600.0     # no processed/dispatched MDN by then: failure DSN to the sender
    relay: HostPort | None = None      # "HOST:PORT" outbound Direct messages go to; null = the upstream
    relay_tls: Literal["none", "starttls"] = "starttls"   # to the relay (verified like upstream)
    request_mdn: bool = True           # ask for MDNs (Disposition-Notification-To) and track them
    final_delivery: bool = False       # also ask for "dispatched" (X-DIRECT-FINAL-DESTINATION-DELIVERY)


def _mailbox_name(value: str) -> str:
    if not value or not all(c.isalnum() or c in "-_." for c in value) or value[0] == ".":
        raise ValueError("must be letters, digits, '-', '_' or '.' (it names state files), "
                         "e.g. frontdesk")
    return value


class InboundMailbox(Section):
    """A practice mailbox at its provider that phigate watches over IMAP:
    S/MIME and Direct mail arriving there is opened and put back readable."""
    name: Annotated[str, AfterValidator(_mailbox_name)]
    host: str
    port: Port = 993
    tls: Literal["implicit", "starttls"] = "implicit"   # the certificate is always verified
    ca_file: Path | None = None    # private CA bundle for the IMAP server
    user: str
    password_file: Path            # mode 0600, one line
    folders: list[str] = Field(default_factory=lambda: ["INBOX"], min_length=1)
    archive_folder: str = "Encrypted originals"   # originals move here (created if missing)
    poll_interval: Duration = 60.0   # servers without IDLE are polled this often
    idle_refresh: Duration = 240.0   # IDLE is renewed (and the connection proven) this often
    timeout: Duration = 60.0         # any single IMAP command


class InboundConfig(Section):
    mailboxes: list[InboundMailbox] = []
    reconnect_min: Duration = 1.0    # backoff after a dropped connection doubles from here
    reconnect_max: Duration = 60.0   # … up to this bound


def _workers(value):
    if value == "auto":
        return max(1, min(os.cpu_count() or 1, 8))
    return value


class Config(Section):
    state_dir: Path = Path("var")
    # Worker processes sharing the listener and the spool ("auto" = one per CPU, at most 8).
    workers: Annotated[int, BeforeValidator(_workers), Field(ge=1, le=64)] = 1
    outbox_dir: Path | None = None     # none: <state_dir>/outbox (used when upstream.host is unset)
    policy: Path | None = None         # policy YAML; none: the shipped policies/default.yaml
    listen: ListenConfig = ListenConfig()
    auth: AuthConfig = AuthConfig()
    limits: LimitsConfig = LimitsConfig()
    smtp: SmtpConfig = SmtpConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    queue: QueueConfig = QueueConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    dsn: DsnConfig = DsnConfig()
    held_notice: HeldNoticeConfig = HeldNoticeConfig()
    admin: AdminConfig = AdminConfig()
    portal: PortalConfig = PortalConfig()
    smime: SmimeConfig = SmimeConfig()
    direct: DirectConfig = DirectConfig()
    inbound: InboundConfig = InboundConfig()

    @property
    def effective_outbox(self) -> Path:
        return self.outbox_dir or self.state_dir / "outbox"

    @property
    def effective_cert_store(self) -> Path:
        return self.smime.store_dir or self.state_dir / "certs"

    @property
    def effective_crl_cache(self) -> Path:
        return self.smime.crl_cache_dir or self.state_dir / "crl"
