"""conditions.raw_header_items / plain_single_part against the stdlib's header parser.

The policy conditions read the Subject and the attachment types of a single-part
message from a split of the header section that avoids building a message; these
tests hold it to what ``email``'s feed parser stores (``raw_items``) and reads
(``get_content_maintype``, ``get_content_disposition``, ``get_filename``), on the
test corpus and on random header sections made of the pieces parsers trip over."""
from __future__ import annotations

import email.policy
import random
from email.parser import BytesParser
from pathlib import Path

from gateway.policy.conditions import header_section, plain_single_part, raw_header_items

ROOT = Path(__file__).resolve().parents[2]
PARSERS = [BytesParser(policy=email.policy.compat32), BytesParser(policy=email.policy.default)]

PIECES = [b"Subject: a", b"Subject:b", b"subject : c", b"From a@b Mon", b"From: x@y",
          b" folded", b"\tfolded", b": no name", b"X-A:", b"Content-Type: text/plain",
          b"Content-Type: multipart/mixed; boundary=q", b"Content-Type: message/rfc822",
          b"Content-Type: (c) multipart/mixed", b"Content-Type: text/plain; name=a.pdf",
          b"Content-Type: TEXT/HTML;\r\n charset=\"utf-8\"", b"Content-Type: application/pdf",
          b"Content-Type: text/plain; charset==?utf-8?q?x?=", b"Content-Type: bogus",
          b"Content-Disposition: attachment; filename=a.pdf", b"Content-Disposition: inline",
          b"no colon here", b"\xe9t\xe9: 8bit", b"Subject: =?utf-8?b?w6k=?=", b"\x0bX: v",
          b"Subject: a\x0cb", b"  ", b""]
ENDS = [b"\r\n", b"\n", b"\r"]


def random_section(rng: random.Random) -> bytes:
    lines = [rng.choice(PIECES) + rng.choice(ENDS) for _ in range(rng.randint(0, 7))]
    tail = rng.choice([b"", b"\r\n", b"body\r\n", b"From me\r\n"])
    return b"".join(lines) + tail


def samples() -> list[bytes]:
    rng = random.Random(20261205)
    corpus = [p.read_bytes() for p in sorted((ROOT / "tests" / "corpus").rglob("*.eml"))]
    return [header_section(raw) for raw in corpus] + [random_section(rng) for _ in range(4000)]


def test_the_same_fields_and_values_as_the_feed_parser():
    for section in samples():
        ours = raw_header_items(section)
        for parser in PARSERS:
            assert ours == list(parser.parsebytes(section, headersonly=True).raw_items()), section


def test_single_part_answer_agrees_with_the_parsed_message():
    decided = 0
    for section in samples():
        answer = plain_single_part(raw_header_items(section))
        if answer is None:
            continue
        decided += 1
        message = PARSERS[1].parsebytes(section, headersonly=True)
        single = message.get_content_maintype() not in ("multipart", "message")
        assert answer == single, section
        if answer:
            assert message.get_content_disposition() is None, section
            assert message.get_filename() is None, section
    assert decided > 1000
