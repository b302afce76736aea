"""The text extractors one by one: HTML (text, comments, visible attributes, no CSS), RTF,
iCalendar/vCard folding, CSV/TSV (UTF-16 too), file names as words, printable runs of
binaries (ASCII and UTF-16), and quoted replies split from the reply above them."""

from __future__ import annotations

from gateway.policy.classifiers.attachments import (
    binary_text,
    csv_to_text,
    directory_to_text,
    html_to_text,
    name_text,
    rtf_to_text,
)
from gateway.policy.classifiers.extract import split_quoted


def test_html_keeps_text_comments_and_visible_attributes_but_not_css():
    page = (b"<html><head><title>Chart review</title><meta name=x content='meta words'>"
            b"<style>p { color: red }</style></head><body><p>Hello<br>there</p>"
            b"<!-- hidden note --><img src='cid:1' alt=\"alt words\">"
            b"<input value=field-value placeholder='type here'>"
            b"<span aria-label=\"aria words\" title='tip words' class='not-read'>x</span>"
            b"</body></html>")
    text = html_to_text(page).decode()
    for words in ("Chart review", "meta words", "Hello", "there", "hidden note", "alt words",
                  "field-value", "type here", "aria words", "tip words"):
        assert words in text, words
    assert "color" not in text and "not-read" not in text and "cid:1" not in text


def test_html_entities_and_unclosed_markup_are_linear_and_decoded():
    text = html_to_text(b"<" * 200_000 + b"<!--" * 50_000 + b"caf&eacute; &amp; more")
    assert text.endswith("café & more".encode())


def test_rtf_text_without_tables_and_with_escapes():
    doc = (rb"{\rtf1\ansi{\fonttbl{\f0 Arial;}}{\colortbl;\red0\green0\blue0;}"
           rb"{\*\generator Word;}\f0 Tooth \'2314 needs a crown\par Caf\'e9 \u8364?\par}")
    text = rtf_to_text(doc).decode()
    assert "Tooth #14 needs a crown" in text and "Café" in text and "€" in text
    assert "Arial" not in text and "Word" not in text and "red0" not in text


def test_calendar_and_vcard_lines_are_unfolded_and_unescaped():
    ics = (b"BEGIN:VEVENT\r\nSUMMARY;LANGUAGE=en:Crown seat\\, upper\r\n"
           b"DESCRIPTION:first half\r\n  second half\\nnext line\r\nEND:VEVENT\r\n")
    text = directory_to_text(ics).decode()
    assert "SUMMARY: Crown seat, upper" in text
    assert "DESCRIPTION: first half second half\nnext line" in text
    vcf = b"BEGIN:VCARD\r\nN:Doe;Jan;;;\r\nNOTE;ENCODING=QUOTED-PRINTABLE:caf=C3=A9\r\nEND:VCARD"
    text = directory_to_text(vcf).decode()
    assert "N: Doe Jan" in text and "NOTE: café" in text


def test_csv_and_tsv_label_values_with_their_column_also_in_utf16():
    assert b"DOB: 01/02/1990" in csv_to_text(b"Name,DOB\r\nA B,01/02/1990\r\n")
    assert b"DOB: 01/02/1990" in csv_to_text(b"Name\tDOB\r\nA B\t01/02/1990\r\n")
    utf16 = "Name\tDOB\r\nA B\t01/02/1990\r\n".encode("utf-16")
    assert b"DOB: 01/02/1990" in csv_to_text(utf16)


def test_file_names_become_words_and_keep_dates():
    assert name_text("JaneRoe_perio-chart_DOB_03-14-1962.pdf") == (
        b"Jane Roe perio chart DOB 03-14-1962.pdf")


def test_binary_runs_in_ascii_and_utf16():
    blob = b"\x00\x01\x02" + b"ascii words here" + b"\xff\xfe" + "wide words".encode("utf-16-le")
    text = binary_text(blob)
    assert b"ascii words here" in text and b"wide words" in text


def test_quoted_reply_is_its_own_segment_without_prefixes():
    body = (b"Thanks!\n-- \nDesk\n\nOn Mon, Dec 1, 2026 at 9:00 AM Records wrote:\n"
            b"> first line\n> > second line\n")
    reply, quoted = split_quoted(body)
    assert reply.startswith(b"Thanks!") and b"first line" not in reply
    assert b"first line\nsecond line" in quoted and b">" not in quoted.split(b"\n", 1)[1]
    outlook = b"Ok.\n\n-----Original Message-----\nFrom: A\nSent: Monday\nSubject: x\n\nold text"
    assert split_quoted(outlook)[-1].endswith(b"old text") and len(split_quoted(outlook)) >= 2
    assert split_quoted(b"no quote here") == [b"no quote here"]
