"""Read the S/MIME layers of an inbound MIME entity, as bytes.

Signatures cover exact bytes, so nothing here re-serialises with the
``email`` package: a ``Part`` is its header fields (raw, folding kept) and
its body; ``email`` only reads the parameters of one Content-Type value.
``split_signed`` cuts a multipart/signed into the exact signed bytes and the
signature part; ``Part.decoded_body`` undoes base64 for a ``.p7m``/``.p7s``.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from email.message import Message

from gateway.crypto.smime_entity import field_name

_UNFOLD = re.compile(rb"\r\n([ \t])")


class PartError(ValueError):
    """Bytes that are not a usable MIME part (truncated, no boundary, bad base64)."""


@dataclass(frozen=True)
class Part:
    fields: tuple[bytes, ...]        # each one raw header field ending in CRLF
    body: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Part:
        """``raw`` must have CRLF line ends (``smime_entity.canonical_crlf``)."""
        if raw.startswith(b"\r\n"):
            return cls((), raw[2:])
        head, sep, body = raw.partition(b"\r\n\r\n")
        fields: list[bytes] = []
        for line in (head + b"\r\n").split(b"\r\n")[:-1]:
            if fields and line[:1] in (b" ", b"\t"):
                fields[-1] += line + b"\r\n"
            else:
                fields.append(line + b"\r\n")
        return cls(tuple(fields), body if sep else b"")

    def value(self, name: str) -> str | None:
        """The unfolded value of the first field called ``name``, or None."""
        wanted = name.lower().encode()
        for f in self.fields:
            if field_name(f) == wanted:
                return _UNFOLD.sub(rb"\1", f.split(b":", 1)[1]).strip().decode("utf-8", "replace")
        return None

    def content_type(self) -> tuple[str, dict[str, str]]:
        """(lower-case type/subtype, parameters with lower-case names); text/plain if absent."""
        msg = Message()
        msg["Content-Type"] = self.value("content-type") or "text/plain"
        params = {k.lower(): str(v) for k, v in (msg.get_params() or [])[1:]}
        return msg.get_content_type(), params

    def decoded_body(self) -> bytes:
        """The body with its Content-Transfer-Encoding (base64 or none) undone."""
        cte = (self.value("content-transfer-encoding") or "7bit").lower()
        if cte == "base64":
            try:
                return base64.b64decode(b"".join(self.body.split()), validate=True)
            except binascii.Error as exc:
                raise PartError("bad base64") from exc
        if cte in ("7bit", "8bit", "binary"):
            return self.body
        raise PartError("unexpected transfer encoding")


def split_signed(part: Part) -> tuple[bytes, Part]:
    """multipart/signed → (the signed part's exact bytes, the signature part).

    The CRLF before each delimiter belongs to the delimiter (RFC 2046 §5.1.1),
    so the first part is exactly what the signer canonicalised and hashed.
    """
    boundary = part.content_type()[1].get("boundary")
    if not boundary:
        raise PartError("multipart/signed without boundary")
    parts = _body_parts(b"\r\n" + part.body, b"\r\n--" + boundary.encode("utf-8", "replace"))
    if len(parts) != 2:
        raise PartError(f"multipart/signed with {len(parts)} parts")
    return parts[0], Part.parse(parts[1])


def _body_parts(body: bytes, delimiter: bytes) -> list[bytes]:
    """The parts between delimiter lines; raises when the close delimiter is missing."""
    parts: list[bytes] = []
    start = None
    pos = 0
    while True:
        at = body.find(delimiter, pos)
        if at < 0:
            raise PartError("multipart without close delimiter (truncated?)")
        after = at + len(delimiter)
        line_end = body.find(b"\r\n", after)
        rest = body[after:] if line_end < 0 else body[after:line_end]
        closing = rest.startswith(b"--")
        if not closing and rest.strip(b" \t"):
            pos = after                  # "--boundaryXYZ" is not our delimiter
            continue
        if start is not None:
            parts.append(body[start:at])
        if closing:
            return parts
        if line_end < 0:
            raise PartError("multipart truncated after a delimiter")
        start = pos = line_end + 2
