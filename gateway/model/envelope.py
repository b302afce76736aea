"""The SMTP envelope of one accepted message."""
from __future__ import annotations

from dataclasses import dataclass, field


def address_key(address: str) -> str:
    """An address as phigate looks it up (policy lists, certificate bindings):
    surrounding space removed,
    case ignored in both parts, as Postfix lookup tables do (admins write
    Billing@ and billing@ for the same mailbox). Mail is still sent to the
    address as given. Whether a login may send as an address is a stricter
    question, answered by ``gateway.auth.senders``."""
    return address.strip().lower()


def domain_of(address: str) -> str:
    """The domain part of ``address_key(address)`` ("" for the null sender)."""
    key = address_key(address)
    return key.rpartition("@")[2] if "@" in key else ""


@dataclass(frozen=True, slots=True)
class Envelope:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    auth_user: str | None = None
    peer: str = ""
    received_at: float = 0.0
    source: str = "smtp"   # smtp | imap | portal | notice | dsn | digest | local (policy test)
    helo: str = ""
    mail_options: tuple[str, ...] = field(default=())
    # the message as accepted has CRLF line ends only and no line starting with
    # "." (the SMTP edge knows both for free): the upstream courier sends it as is
    wire_ready: bool = False

    def to_json(self) -> dict:
        return {
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "auth_user": self.auth_user,
            "peer": self.peer,
            "received_at": self.received_at,
            "source": self.source,
            "helo": self.helo,
            "mail_options": list(self.mail_options),
            "wire_ready": self.wire_ready,
        }

    @classmethod
    def from_json(cls, data: dict) -> Envelope:
        return cls(
            mail_from=data["mail_from"],
            rcpt_tos=tuple(data["rcpt_tos"]),
            auth_user=data.get("auth_user"),
            peer=data.get("peer", ""),
            received_at=data.get("received_at", 0.0),
            source=data.get("source", "smtp"),
            helo=data.get("helo", ""),
            mail_options=tuple(data.get("mail_options", ())),
            wire_ready=data.get("wire_ready", False),
        )
