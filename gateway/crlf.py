"""Line ends in message data: finding a bare CR or LF (one not in a CRLF pair)
and turning each into CRLF. Used by the SMTP edges (refuse or normalise what a
client sent) and by the upstream courier (aiosmtplib's own normalisation)."""
from __future__ import annotations

import re

BARE_EOL = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")


def has_bare_eol(raw: bytes) -> bool:
    """A CR not followed by LF or an LF not preceded by CR? When there are as many
    CRs as LFs and every CR is followed by an LF, every LF follows a CR: so there is
    none exactly when the counts agree and no CR stands alone. (Single-byte counts
    and a search that stops only at CRs run at memory speed: ~1.5 ms per MiB here,
    against ~2.1 ms when counting CRLF pairs too and ~95 µs per 5 KB for
    ``BARE_EOL.search``, whose lookbehind runs at each LF.)"""
    return raw.count(b"\r") != raw.count(b"\n") or _BARE_CR.search(raw) is not None


def to_crlf(raw: bytes) -> bytes:
    """``raw`` with every bare CR and LF made a CRLF (the same bytes when there is none)."""
    return BARE_EOL.sub(b"\r\n", raw) if has_bare_eol(raw) else raw
