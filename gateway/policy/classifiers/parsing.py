"""Reading a message's structure and header words: the two things the policy
conditions need from the classifier's reader, kept apart from it so the daemon
(which classifies in child processes) does not load the classifier's patterns
and word lists to evaluate a rule.

``parse`` builds the MIME tree the classifier walks; ``decode_header_checked``
decodes RFC 2047 words and says whether every word decoded.

A message that is not multipart/* or message/* is one part whose payload is the
rest of the message as text. The feed parser reads that rest line by line
(~13,000 lines a MiB, most of a large message's parse time), so ``parse`` gives
the feed parser only the header section and the line that ends it, asks the
parsed header section for its content type, and, for such a part, appends the
rest of the message, decoded as the feed parser decodes it; every other message
is parsed whole. ``tests/unit/test_parse_fastpath.py`` holds the two to the same tree.
"""
from __future__ import annotations

import binascii
import email.errors
import email.feedparser
import email.header
import email.message
import email.policy
import re

PARSE_CHUNK = 64 << 10
_B_WORD = re.compile(r"=\?[^?\s]+\?[bB]\?([^?\s]*)\?=")
# A line as the feed parser splits its input (StringIO(newline="")): up to and
# with CRLF, CR or LF; a CR is a line end of its own only when no LF follows it.
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)")
_NESTED = ("multipart", "message")  # the main types whose body the feed parser reads as parts


def parse(raw: bytes, policy=email.policy.compat32) -> email.message.Message:
    """``email.message_from_bytes(raw, policy=policy)``, without the whole-message str and
    StringIO copies (fed in 64 KiB pieces: a 27 MB message needs 22 MiB instead of 82)
    and, for a message that is not multipart/* or message/*, without the line-by-line
    read of its body (see the module docstring; a 27 MB single part then peaks at 26 MiB
    of Python allocations instead of 70)."""
    cut = _header_end(raw)
    if cut is not None:
        head = _feed(raw[:cut], policy)
        if head.get_content_maintype() not in _NESTED:
            # What the feed parser sets: the lines it pushed back (a body line that
            # ended the headers, a trailing "From " line), then every line after them.
            body = str(memoryview(raw)[cut:], "ascii", "surrogateescape")  # no bytes copy
            head.set_payload(head._payload + body)
            return head
    return _feed(raw, policy)


def _header_end(raw: bytes) -> int | None:
    """Where the first line that cannot be a header line (the feed parser's ``headerRE``:
    a field, a continuation or a "From " line) ends, or None when no such line ends
    before the end of the message. The feed parser's header section ends at or before that line, and every
    decision it makes before the body (fields, defects, the content type) depends only on
    the lines up to it."""
    pos = 0
    while True:
        line = _LINE.match(raw, pos)
        if line is None:
            return None
        pos = line.end()
        if not email.feedparser.headerRE.match(line.group().decode("ascii", "surrogateescape")):
            return pos


def _feed(raw: bytes, policy) -> email.message.Message:
    parser = email.feedparser.BytesFeedParser(policy=policy)
    view = memoryview(raw)
    for start in range(0, len(raw), PARSE_CHUNK):
        parser.feed(bytes(view[start : start + PARSE_CHUNK]))
    return parser.close()


def decode_header(value: str | None) -> str:
    return decode_header_checked(value)[0]


def decode_header_checked(value: str | None) -> tuple[str, bool]:
    """(text, fully decoded). Undecodable encoded words (unknown charset, bytes the charset
    rejects, invalid base64 the stdlib would silently drop) make it False; the text is then
    decoded word by word, best-effort."""
    if not value:
        return "", True
    if isinstance(value, str) and "=?" not in value:
        return value, True  # no encoded word: what the decoding below returns, at no cost
    try:
        text = str(email.header.make_header(email.header.decode_header(value)))
        if all(_valid_b64(word) for word in _B_WORD.findall(value)):
            return text, True
    except (ValueError, LookupError, email.errors.HeaderParseError, AssertionError):
        pass
    words = []
    for chunk, charset in _safe_decode_header(value):
        if isinstance(chunk, bytes):
            try:
                chunk = chunk.decode(charset or "utf-8", "replace")
            except LookupError:
                chunk = chunk.decode("latin-1")
        words.append(chunk)
    return " ".join(words) or value, False


def _valid_b64(word: str) -> bool:
    try:
        binascii.a2b_base64(word + "=" * (-len(word) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _safe_decode_header(value: str) -> list[tuple[bytes | str, str | None]]:
    try:
        return email.header.decode_header(value)
    except (ValueError, email.errors.HeaderParseError, AssertionError):
        return [(value, None)]
