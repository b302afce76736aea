"""Which addresses a login may use: in MAIL FROM and in the header From:
and Sender: fields of what it submits.

An allowed entry is an exact address or ``@domain``. The domain is compared
without regard to case (DNS names are case-insensitive); the local part is
compared exactly, as RFC 5321 §2.4 says it must be treated: ``FrontDesk@``
and ``frontdesk@`` may be different mailboxes, so permission for one is not
permission for the other. A user who needs several spellings lists each.
This is an authorisation (may this login speak for that mailbox?) and fails
closed; looking an address up in a policy list or a certificate store is a
different question and may ignore case in both parts.
"""
from __future__ import annotations

from collections.abc import Iterable
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

SENDER_FIELDS = ("From", "Sender")


def _split(address: str) -> tuple[str, str]:
    local, _, domain = address.strip().rpartition("@")
    return local, domain.lower()


def address_allowed(allowed: Iterable[str], address: str) -> bool:
    local, domain = _split(address)
    if not local or not domain:
        return False
    for entry in allowed:
        entry = entry.strip()
        if entry.startswith("@"):
            if entry[1:].lower() == domain:
                return True
        elif _split(entry) == (local, domain):
            return True
    return False


def header_senders(raw: bytes) -> list[tuple[str, str]]:
    """(field, address) for every address in the header From: and Sender:
    fields; an address that cannot be read comes back as "" (refuse it)."""
    end = raw.find(b"\r\n\r\n")
    head = raw if end < 0 else raw[:end + 2]
    headers = BytesHeaderParser(policy=compat32).parsebytes(head)
    found = []
    for field in SENDER_FIELDS:
        values = [str(v) for v in headers.get_all(field, [])]
        if not values:
            continue
        pairs = getaddresses(values)
        if not pairs:
            found.append((field, ""))
        found.extend((field, addr if "@" in addr else "") for _name, addr in pairs)
    return found
