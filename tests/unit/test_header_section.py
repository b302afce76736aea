"""``header_section`` hands a headers-only parse exactly what it would read:
the same headers as parsing the whole message, for every line-break style."""
from __future__ import annotations

import email.policy
import random
from email.parser import BytesParser

import pytest

from gateway.policy.conditions import header_section

PIECES = [b"Subject: a", b"Subject: =?utf-8?q?b?=", b"From: x@y", b" folded", b"\tfolded",
          b"X-Long: " + b"v" * 50, b"", b"body line", b"Subject: late", b":", b"no colon"]
BREAKS = [b"\r\n", b"\n", b"\r"]


def messages(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        lines = [rng.choice(PIECES) for _ in range(rng.randrange(0, 12))]
        yield b"".join(line + rng.choice(BREAKS) for line in lines) + rng.choice([b"", b"tail"])


@pytest.mark.parametrize("policy", [email.policy.default, email.policy.compat32])
def test_same_headers_as_a_whole_message_parse(policy):
    parser = BytesParser(policy=policy)
    for raw in messages(7, 3000):
        whole = parser.parsebytes(raw, headersonly=True)
        head = parser.parsebytes(header_section(raw), headersonly=True)
        assert [(k, str(v)) for k, v in head.items()] == [(k, str(v)) for k, v in whole.items()], raw
        assert len(head.defects) == len(whole.defects), raw
