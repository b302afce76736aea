"""Line ends in message data: finding a bare CR or LF (one not in a CRLF pair)
and turning each into CRLF. Used by the SMTP edges (refuse or normalise what a
client sent) and by the upstream courier (aiosmtplib's own normalisation)."""
from __future__ import annotations

import re

BARE_EOL = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def has_bare_eol(raw: bytes) -> bool:
    """A CR not followed by LF or an LF not preceded by CR? Every CRLF pair holds
    one CR and one LF and pairs never overlap, so there is none exactly when the
    three counts agree. (bytes.count runs at memory speed: ~8 µs for 5 KB,
    against ~95 µs for ``BARE_EOL.search``, whose lookbehind runs at each LF.)"""
    crlf = raw.count(b"\r\n")
    return raw.count(b"\r") != crlf or raw.count(b"\n") != crlf


def to_crlf(raw: bytes) -> bytes:
    """``raw`` with every bare CR and LF made a CRLF (the same bytes when there is none)."""
    return BARE_EOL.sub(b"\r\n", raw) if has_bare_eol(raw) else raw
