"""``parsing.parse`` against the stdlib's full feed parser.

``parse`` hands the feed parser only the header section of a message that is not
multipart/* or message/* and appends the body itself (``parsing`` module docstring).
These tests hold it to ``email.feedparser.BytesFeedParser`` fed the whole message, part
by part: structure, content types, raw and parsed headers, payload as stored, as
returned and decoded, defects, preamble, epilogue, charset, the serialized message;
under both policies the gateway parses with (compat32 for the classifier,
``policy.default`` for the policy conditions). The messages: the test corpus, the shared
development corpus, the generated and malformed messages of ``tests/mimegen.py``, and
seeded random messages made of the pieces parsers trip over (line ends, missing
separator, continuation and "From " lines, 8-bit bytes, NUL, empty bodies, no headers,
Content-Type variants including malformed ones, multipart without boundary,
message/*). The classifier's verdict on every corpus message is compared too, with the
full feed parser put back in ``extract``."""
from __future__ import annotations

import email.feedparser
import email.policy
import random
from pathlib import Path

from gateway.policy.classifiers import build_classifier, extract, parsing
from tests import mimegen

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT.parent / "shared" / "corpus" / "phi-dev"
POLICIES = [email.policy.compat32, email.policy.default]

HEADERS = [
    b"Subject: a", b"Subject:b", b"subject : c", b"From a@b Mon", b"From: x@y", b"To: <b@c.test>",
    b" folded", b"\tfolded", b": no name", b"X-A:", b"no colon here", b"\xe9t\xe9: 8bit",
    b"X-Nul: a\x00b", b"Subject: =?utf-8?b?w6k=?=", b"\x0bX: v", b"MIME-Version: 1.0",
    b"Content-Type: text/plain", b"Content-Type: text/plain; charset=utf-8",
    b"Content-Type: text/plain; charset=iso-8859-1", b"Content-Type: text/plain; charset=x-bogus",
    b"Content-Type: TEXT/HTML", b"Content-Type: text/plain; name=a.pdf",
    b"Content-Type: multipart/mixed; boundary=q",
    b"Content-Type: multipart/alternative; boundary=\"q\"",
    b"Content-Type: multipart/mixed", b"Content-Type: multipart/digest; boundary=q",
    b"Content-Type: multipart", b"Content-Type: Multipart/Mixed;\r\n boundary=q",
    b"Content-Type: multipart/mixed; boundary=\"\"",
    b"Content-Type: (c) multipart/mixed; boundary=q",
    b"Content-Type: \"multipart/mixed\"; boundary=q", b"Content-Type: =?utf-8?q?multipart/mixed?=",
    b"content-type : multipart/mixed; boundary=q", b"Content-Type: message/rfc822",
    b"Content-Type: message/delivery-status", b"Content-Type: message/partial; id=x",
    b"Content-Type: MESSAGE/RFC822", b"Content-Type: message", b"Content-Type: bogus",
    b"Content-Type: a/b/c", b"Content-Type: ;", b"Content-Type:", b"Content-Type: /plain",
    b"Content-Type: text/", b"Content-Type: text/plain;;;charset=", b"Content-Type: (((;;;",
    b"Content-Type: \xff/\xfe", b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable", b"Content-Transfer-Encoding: 8bit",
    b"Content-Transfer-Encoding: x-uuencode", b"Content-Transfer-Encoding: bogus",
    b"Content-Disposition: attachment; filename=a.pdf",
]
BODY = [
    b"", b"text", b"--q", b"--q--", b"--q  ", b"From me", b"From: x", b">From me", b"\xff\xfe 8bit",
    b"a\x00b", b"SGVsbG8gd29ybGQ=", b"SGVsbG8", b"!!", b"=E9t=E9=", b"Subject: inner",
    b"Content-Type: text/plain", b" continuation", b"> quoted", b"begin 644 x", b"M86)C", b"end",
    b"\x0c", b"\xc3\xa9t\xc3\xa9",
]
ENDS = [b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r"]


def random_message(rng: random.Random) -> bytes:
    end = rng.choice(ENDS)  # mostly one line end per message, sometimes any

    def eol() -> bytes:
        return end if rng.random() < 0.8 else rng.choice(ENDS)

    head = b"".join(rng.choice(HEADERS) + eol() for _ in range(rng.randint(0, 8)))
    separator = rng.choice([b"", eol(), eol(), eol(), b"From me" + eol(), b"body" + eol()])
    lines = [rng.choice(BODY) + eol() for _ in range(rng.randint(0, 12))]
    tail = rng.choice([b"", b"", b"no line end", b"\r", b"\n", b"--q--"])
    return head + separator + b"".join(lines) + tail


def edge_cases() -> list[bytes]:
    """Empty and header-only messages, a CR and LF split across the 64 KiB feed pieces, a
    header section longer than one piece, a large single part."""
    chunk = parsing.PARSE_CHUNK
    head = b"From: a@b.test\r\nSubject: s\r\n"
    cases = [b"", b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"body only", b"body only\r\nmore",
             b"Subject: s", b"Subject: s\r\n", b"Subject: s\r", b"From me\r\n", b"From me\r\n\r\nx",
             b"Subject: s\r\nFrom me\r\n\r\nbody", b"Subject: s\r\nFrom me\r\nbody",
             b"From me\r\nSubject: s\r\nFrom you\r\n\r\nbody", b" cont\r\nSubject: s\r\n\r\nx",
             head + b"\r\n", head + b"\r\n\r\n\r\n", head + b"\r", head + b"\r\r", head + b"\rbody"]
    for at in (chunk - 1, chunk, chunk + 1):
        pad = b"X-Pad: " + b"p" * (at - len(head) - 9) + b"\r\n"
        cases.append(head + pad + b"\r\nbody\r\n")  # the separator around a piece boundary
        body = b"x" * (at - len(head) - 3)
        cases.append(head + b"\r\n" + body + b"\r\nnext\r\n")  # CR|LF across pieces
    many = b"".join(b"X-F%d: v\r\n" % i for i in range(9000))  # header section > 64 KiB
    cases += [head + many + b"\r\nbody\r\n", head + many, head + many + b"\r\n"]
    lines = b"".join(b"%d" % i + b"X" * 76 + b"\r\n" for i in range(13_400))
    cases += [head + b"\r\n" + lines, head + b"Content-Transfer-Encoding: base64\r\n\r\n" + lines]
    return cases


def generated() -> list[bytes]:
    rng = random.Random(20261205)
    out = [raw for _, raw, _ in mimegen.malformed(rng)]
    out += [mimegen.wrapped(where, mimegen.phi_sentence(rng), rng) for where in mimegen.PLACES]
    return out


def corpus() -> list[bytes]:
    paths = sorted((ROOT / "tests" / "corpus").rglob("*.eml"))
    paths += sorted(DEV.glob("*.eml")) if DEV.is_dir() else []
    return [p.read_bytes() for p in paths]


def full_parse(raw: bytes, policy=email.policy.compat32):
    """The stdlib's feed parser, fed the whole message at once."""
    parser = email.feedparser.BytesFeedParser(policy=policy)
    parser.feed(raw)
    return parser.close()


def outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 — an exception is an outcome to compare too
        return ("raised", type(exc).__name__)


def shape(msg) -> dict:
    """Everything the classifier and the conditions can read of one part, and its parts."""
    defects = [(type(d).__name__, d.args) for d in msg.defects]
    out = {
        "class": type(msg).__name__,
        "multipart": msg.is_multipart(),
        "type": outcome(msg.get_content_type),
        "default_type": msg.get_default_type(),
        "raw_headers": list(msg._headers),
        "items": outcome(lambda: [(k, type(v).__name__, str(v)) for k, v in msg.items()]),
        "unixfrom": msg.get_unixfrom(),
        "preamble": msg.preamble,
        "epilogue": msg.epilogue,
        "charset": (str(msg.get_charset()), outcome(msg.get_content_charset)),
        "stored": None if msg.is_multipart() else msg._payload,
        "payload": None if msg.is_multipart() else outcome(msg.get_payload),
        "decoded": outcome(lambda: msg.get_payload(decode=True)),
        "defects": defects,
        "defects_after_decode": [type(d).__name__ for d in msg.defects],
    }
    if msg.is_multipart():
        out["parts"] = [shape(p) for p in msg.get_payload()]
    return out


def assert_same_tree(raw: bytes) -> None:
    for policy in POLICIES:
        expected = outcome(full_parse, raw, policy)
        ours = outcome(parsing.parse, raw, policy)
        if isinstance(expected, tuple):
            assert ours == expected, raw[:200]
            continue
        assert shape(ours) == shape(expected), (policy, raw[:200])
        assert outcome(ours.as_bytes) == outcome(expected.as_bytes), (policy, raw[:200])
        if sum(1 for _ in expected.walk()) > 100:
            break  # thousands of parts: the header objects of policy.default take seconds


def test_random_messages_give_the_feed_parsers_tree():
    rng = random.Random(5122026)
    fast = 0
    for _ in range(3000):
        raw = random_message(rng)
        assert_same_tree(raw)
        fast += parsing._header_end(raw) is not None
    assert fast > 2000  # most of them reach the header-section parse


def test_edge_cases_give_the_feed_parsers_tree():
    for raw in edge_cases():
        assert_same_tree(raw)


def test_corpus_and_generated_messages_give_the_feed_parsers_tree():
    messages = corpus() + generated()
    assert len(messages) > 450
    for raw in messages:
        assert_same_tree(raw)


def test_the_same_verdicts_as_with_the_full_parser(monkeypatch):
    """Every corpus and generated message, and large single parts with PHI at the end,
    classified with ``parse`` and again with the full feed parser in its place."""
    big = b"".join(b"%d" % i + b"X" * 76 + b"\r\n" for i in range(13_400))
    phi = mimegen.phi_sentence(random.Random(7)).text.encode()
    large = [mimegen.headers() + b"\r\n" + big + phi + b"\r\n",
             mimegen.headers() + b"Content-Type: text/html\r\n\r\n<p>" + big + phi + b"</p>",
             mimegen.headers() + b"Content-Transfer-Encoding: quoted-printable\r\n" + big + phi]
    messages = corpus() + generated() + large
    classifier = build_classifier()
    ours = [classifier.classify(raw) for raw in messages]
    monkeypatch.setattr(extract, "parse", lambda raw: full_parse(raw))
    for raw, verdict in zip(messages, ours, strict=True):
        expected = classifier.classify(raw)
        assert verdict == expected, raw[:200]
    assert sum(v.phi for v in ours) > 100  # the comparison covers PHI findings, not only "no PHI"
