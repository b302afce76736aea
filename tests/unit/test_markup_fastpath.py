"""HTML and Office XML markup is taken apart with the standard library's regular
expressions where they are linear (``attachments``): the same text as one RE2
pass per pattern, the plain definition kept here, on markup of every shape; and
no input makes them backtrack."""
from __future__ import annotations

import html
import random
import re

import pytest
import re2

from gateway.policy.classifiers import attachments
from gateway.policy.classifiers.attachments import html_to_text, xml_to_text

# What the markup of real mail is made of, and its broken forms. RE2 reads bytes as
# UTF-8 (an invalid sequence ends a [^<>] run; (?i) also folds "ſ" and the Kelvin
# sign): the pieces are valid UTF-8 without those two (see the Latin-1 test below).
PIECES = [
    "<", ">", "=", '"', "'", " ", "\t", "\n", "\r\n", "\x0b", "\x0c", "/", "-", "x", "é",
    "\u00a0", "\u4e2d", "&amp;", "&nbsp;", "&#233;", "&bogus", "alt", "TITLE", "Value",
    "content", "aria-label", "data-tooltip", "br", "BR", "/p", "/h2", "/td", "/title",
    "p", "div", "<br>", "<br/>", "</p>", "<p class=x>", "<img alt='a b'>", '<a title="t">',
    "<input value=v>", "<meta content=\"m\">", "<style>", "</style>", "</style >",
    "<!--", "-->", "<![CDATA[", "]]>", "<w:p>", "</w:p>", "<w:br/>", "<w:tab/>", "<c r=1>",
    "<c>", "</si>", "</row>", "<text:p>", "</text:p>", "</table:table-row>", "c ", "w:t",
]


def _documents(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 80))).encode()
            for _ in range(count)]


def _re2_tags_to_text(data: bytes) -> bytes:
    """One RE2 pass of TAG, each tag replaced by its visible attribute values."""
    visible = re2.compile(attachments.VISIBLE_ATTR)

    def replace(match) -> bytes:
        values = [next(v for v in m.groups() if v is not None)
                  for m in visible.finditer(match.group())]
        return b" " + b" ".join(values) + b" " if values else b" "

    return re2.compile(attachments.TAG).sub(replace, data)


def _re2_html_markup(data: bytes) -> bytes:
    data = attachments._HTML_DROP.sub(b" ", data)
    data = re2.compile(attachments.HTML_COMMENT).sub(b" ", data)
    data = re2.compile(attachments.HTML_BREAK).sub(b"\n", data)
    return _re2_tags_to_text(data)


def _finish(data: bytes) -> bytes:
    text = html.unescape(data.decode("utf-8", "replace")).replace("\xa0", " ")
    return attachments._SPACES.sub(b" ", text.encode())


@pytest.mark.parametrize("seed", range(4))
def test_html_text_is_one_re2_pass_per_pattern(seed):
    for doc in _documents(1500, seed):
        assert html_to_text(doc) == _finish(_re2_html_markup(doc)), doc


@pytest.mark.parametrize("seed", range(2))
def test_office_xml_text_is_one_re2_pass_per_pattern(seed):
    for doc in _documents(1500, 100 + seed):
        expected = re2.compile(attachments.TAG).sub(
            b" ", re2.compile(attachments.XML_BREAK).sub(b"\n", doc))
        expected = attachments._SPACES.sub(
            b" ", html.unescape(expected.decode("utf-8", "replace")).encode())
        assert xml_to_text(doc) == expected, doc


def test_each_pattern_matches_the_same_spans_in_both_engines():
    for doc in _documents(3000, 7):
        for pattern in (attachments.TAG, attachments.HTML_COMMENT, attachments.HTML_BREAK,
                        attachments.XML_BREAK, attachments.VISIBLE_ATTR):
            ours = [m.span() for m in re.compile(pattern).finditer(doc)]
            theirs = [m.span() for m in re2.compile(pattern).finditer(doc)]
            assert ours == theirs, (pattern, doc)


def test_a_tag_is_a_tag_whatever_bytes_it_holds():
    """A Latin-1 attachment's tag loses its markup and keeps its visible values like any
    other (RE2 in UTF-8 mode used to leave such a tag in the text whole)."""
    text = html_to_text(b"<p class='caf\xe9'>Hello</p><img src=x alt='Ren\xe9e'>")
    assert text == " Hello\n Ren\ufffde ".encode()


@pytest.mark.parametrize("shape", [
    b"<a" + b" alt=" * 40_000,                     # a tag full of attribute names, never closed
    b"<a" + b" alt='" * 40_000 + b">",
    b"<a" + b' title="' * 40_000 + b">",
    b"<a" + b" \t" * 100_000 + b">",
    b"<br" * 60_000,
    b"<" + b"x" * 200_000,
    b"<w:br" + b" c " * 60_000,
    b"<style>" * 30_000,
])
def test_hostile_markup_is_read_in_one_pass(shape):
    """Each of these would take minutes where a pattern backtracks (no timing is
    asserted: a slow pass shows as a test that does not end)."""
    assert isinstance(html_to_text(shape), bytes)
    assert isinstance(xml_to_text(shape), bytes)
