"""The one rewrite a policy may ask of an outgoing message: remove the subject
keyword that triggered a rule (``strip_subject_keyword: true``, e.g. staff
typing ``[secure]``), so the recipient never sees the gateway's mechanics.

Only the Subject header changes; every other byte of the message is kept.
Recipients of one item may differ (one matched the keyword rule, another
an earlier rule), so ``by_subject_variant`` groups them by the bytes each
should receive.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from email.header import Header, decode_header, make_header

_SUBJECT = re.compile(rb"^subject:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*\r?\n", re.IGNORECASE | re.MULTILINE)


def keyword_to_strip(recipient) -> str | None:
    return recipient.option("strip_subject_keyword") or None


def strip_subject_keyword(raw: bytes, keyword: str) -> bytes:
    """``raw`` with ``keyword`` (any case) removed from its Subject."""
    end = _header_end(raw)
    match = _SUBJECT.search(raw, 0, end)
    if match is None:
        return raw
    line = match.group(0)
    newline = b"\r\n" if line.endswith(b"\r\n") else b"\n"
    value = line.split(b":", 1)[1].decode("ascii", "surrogateescape")
    value = re.sub(r"\r?\n[ \t]", " ", value).strip()
    try:
        decoded = str(make_header(decode_header(value)))
    except (UnicodeError, LookupError, ValueError):
        return raw                     # an undecodable subject is left as it is
    stripped = " ".join(re.sub(re.escape(keyword), " ", decoded, flags=re.IGNORECASE).split())
    if stripped.isascii():
        encoded = stripped
    else:
        encoded = Header(stripped, "utf-8").encode(linesep=newline.decode())
    header = b"Subject: " + encoded.encode("ascii") + newline
    return raw[:match.start()] + header + raw[match.end():]


def _header_end(raw: bytes) -> int:
    for separator in (b"\r\n\r\n", b"\n\n"):
        at = raw.find(separator)
        if at != -1:
            return at + len(separator) // 2
    return len(raw)


def by_subject_variant(raw: bytes, recipients: Iterable) -> list[tuple[bytes, list]]:
    """[(message bytes, recipient states)] — one group per distinct keyword to strip."""
    groups: dict[str | None, list] = {}
    for r in recipients:
        groups.setdefault(keyword_to_strip(r), []).append(r)
    return [(strip_subject_keyword(raw, k) if k else raw, members)
            for k, members in groups.items()]
