"""Split a message into the headers that stay outside S/MIME and the inner
MIME entity that gets signed/encrypted (RFC 8551 §3.1), byte for byte.

The inner entity is the message's ``Content-*`` header fields (as they were
folded) followed by CRLF and the body; every other header field (From, To,
Cc, Date, Message-ID, Subject, Received, …) stays on the outer message.
``MIME-Version`` is dropped from both and written again by the caller.
Line endings are made canonical CRLF first (bare LF or CR → CRLF).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from email.header import Header

_BARE_EOL = re.compile(rb"\r\n|\r|\n")


def canonical_crlf(data: bytes) -> bytes:
    """Every line ending as CRLF; already-canonical input is returned as is."""
    crlf = data.count(b"\r\n")
    if data.count(b"\n") == crlf and data.count(b"\r") == crlf:
        return data
    return _BARE_EOL.sub(b"\r\n", data)


@dataclass(frozen=True)
class Split:
    outer: tuple[bytes, ...]         # header fields with their folding and CRLF, in order
    inner: bytes                     # Content-* fields + CRLF + body

    def outer_with(self, *, subject: str | None = None) -> bytes:
        """The outer header block (no blank line), with Subject replaced when given."""
        fields = self.outer
        if subject is not None:
            text = subject if subject.isascii() else Header(subject, "utf-8").encode()
            line = b"Subject: " + text.encode("ascii") + b"\r\n"
            fields = tuple(line if field_name(f) == b"subject" else f for f in fields)
            if line not in fields:
                fields = (*fields, line)
        return b"".join(fields)

    def header(self, name: str) -> bytes | None:
        """The raw (folded) field ``name`` of the outer headers, or None."""
        wanted = name.lower().encode()
        return next((f for f in self.outer if field_name(f) == wanted), None)


def field_name(field: bytes) -> bytes:
    return field.split(b":", 1)[0].strip().lower()


def _fields(block: bytes) -> list[bytes]:
    fields: list[bytes] = []
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        elif line:
            fields.append(line + b"\r\n")
    return fields


def split_message(raw: bytes) -> Split:
    data = canonical_crlf(raw)
    if data.startswith(b"\r\n"):
        block, body = b"", data[2:]
    else:
        block, sep, body = data.partition(b"\r\n\r\n")
        if not sep:                  # headers only, no body
            block, body = data.removesuffix(b"\r\n"), b""
    outer, mime = [], []
    for f in _fields(block):
        name = field_name(f)
        if name.startswith(b"content-"):
            mime.append(f)
        elif name != b"mime-version":
            outer.append(f)
    return Split(tuple(outer), b"".join(mime) + b"\r\n" + body)
