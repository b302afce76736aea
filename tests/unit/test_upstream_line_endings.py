"""The courier's line-end normalisation of DATA gives the same bytes as
aiosmtplib's own, on every mix of CR and LF."""
from __future__ import annotations

import random
import re

import aiosmtplib.protocol

from gateway.delivery.smtp_wire import normalize_line_endings

ORIGINAL = re.compile(rb"(?:\r\n|\n|\r(?!\n))")   # aiosmtplib 5.x: protocol.LINE_ENDINGS_REGEX


def aiosmtplib_own(message: bytes) -> bytes:
    message = ORIGINAL.sub(b"\r\n", message)
    return message if message.endswith(b"\r\n") else message + b"\r\n"


def test_equivalent():
    assert aiosmtplib.protocol.LINE_ENDINGS_REGEX.pattern == ORIGINAL.pattern
    rng = random.Random(5)
    alphabet = [b"\r", b"\n", b"\r\n", b"a", b".", b"\r\r", b"\n\n", b"\n\r", b"\r\n" * 3]
    for _ in range(5000):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        assert normalize_line_endings(data) == aiosmtplib_own(data), data
