"""Generated MIME messages for the classifier's coverage and hostile-input tests.

Nothing here comes from a corpus: a PHI sentence is put together from generic
parts (a patient label, an invented name, a date of birth, a chart number, a
clinical detail), and ``place(where, phi, rng)`` hides it in one of the places a
person or a mail client can see it — a plain or HTML body, an HTML comment or
attribute, a file name (``filename``, ``name``, RFC 2231 ``filename*``, a name
inside a zip), an attached message sent base64 (nested too), a calendar invite,
vCard, CSV, RTF, a quoted reply — or inside a MIME tree a parser cannot follow
(a boundary that matches no delimiter, declared twice, reused by a nested part,
``multipart`` without subtype…). ``hostile(rng)`` adds bombs and odd encodings.

Every message carries ``Phi.marker`` (the chart number) so a test can check the
sentence never arrives anywhere in plaintext.
"""

from __future__ import annotations

import base64
import gzip
import io
import quopri
import random
import urllib.parse
import zipfile
import zlib
from dataclasses import dataclass

FIRST = ["Odalys", "Teodor", "Marisol", "Kwabena", "Ines", "Radek", "Sunniva", "Thiago",
         "Yevgenia", "Caetano", "Lioba", "Ambrose"]
LAST = ["Vasquez-Orr", "Lindqvist", "Okonkwo", "Brandtner", "Castellanos", "Mirzoyan",
        "Haverkamp", "Quintero", "Abernathy", "Szczepanski"]
CLINICAL = [
    "needs extraction of tooth #{tooth} next week",
    "crown prep on #{tooth} (D2740) is scheduled",
    "root canal on tooth #{tooth}, start amoxicillin 500mg",
    "periodontal pockets of 6mm on #{tooth}, scaling and root planing advised",
    "fractured cusp on #{tooth}, pain since Friday",
]
FILLER = ["Thanks,", "See below.", "Let me know.", "Please advise.", "Best regards"]
STAFF = "Front Desk <desk@smiledental.example>"
OUTSIDE = "Records <records@partnerclinic.example>"


@dataclass(frozen=True)
class Phi:
    text: str
    marker: str  # the chart number: unique to this message, never in benign text


def phi_sentence(rng: random.Random) -> Phi:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    dob = f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(1935, 2015)}"
    chart = str(rng.randrange(10**6, 10**7))
    clinical = rng.choice(CLINICAL).format(tooth=rng.randint(1, 32))
    return Phi(f"Patient: {first} {last}, DOB: {dob}, chart #{chart} - {clinical}.", chart)


# ------------------------------------------------------------------ building blocks


def headers(subject: str = "Follow-up", extra: str = "", to: str = OUTSIDE) -> bytes:
    return (
        f"From: {STAFF}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <gen@smiledental.example>\r\n"
        f"MIME-Version: 1.0\r\n{extra}"
    ).encode()


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def leaf(ctype: str, data: bytes, cte: str = "base64", extra: str = "") -> bytes:
    body = {"base64": b64, "quoted-printable": lambda d: quopri.encodestring(d),
            "8bit": lambda d: d}[cte](data)
    return f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n{extra}\r\n".encode() + body


def multipart(subtype: str, parts: list[bytes], boundary: str, delimiter: str | None = None,
              params: str = "") -> bytes:
    """A multipart entity; ``delimiter`` (default: the boundary) is what the body uses."""
    delimiter = boundary if delimiter is None else delimiter
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"{params}\r\n\r\n'.encode()
    body = b"".join(b"--" + delimiter.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    return head + b"This is a multi-part message.\r\n" + body + b"--" + delimiter.encode() + b"--\r\n"


def message(entity: bytes, subject: str = "Follow-up", to: str = OUTSIDE) -> bytes:
    """Top-level headers in front of an entity (its own Content-* headers included)."""
    return headers(subject, to=to) + entity


def text(body: str, cte: str = "quoted-printable", charset: str = "utf-8") -> bytes:
    return leaf(f"text/plain; charset={charset}", body.encode(charset), cte)


def html(body: str) -> bytes:
    return leaf("text/html; charset=utf-8", body.encode(), "quoted-printable")


def attachment(ctype: str, filename: str, data: bytes) -> bytes:
    return leaf(ctype, data, "base64", f'Content-Disposition: attachment; filename="{filename}"\r\n')


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def pdf_of(stream: bytes, compressed: bool = True) -> bytes:
    """A one-page PDF whose content stream is ``stream`` (Flate-compressed by default)."""
    data = zlib.compress(stream, 1) if compressed else stream
    flt = " /Filter /FlateDecode" if compressed else ""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
         b"/Resources << /Font << /F1 5 0 R >> >> >>"),
        f"<< /Length {len(data)}{flt} >>\nstream\n".encode() + data + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def pdf_text(line: str) -> bytes:
    return f"BT /F1 11 Tf 50 750 Td ({line}) Tj ET".encode("latin-1")


def rfc822(inner: bytes, cte: str = "base64") -> bytes:
    return leaf("message/rfc822", inner, cte, 'Content-Disposition: attachment; filename="fwd.eml"\r\n')


def rtf(sentence: str) -> bytes:
    return (b"{\\rtf1\\ansi{\\fonttbl{\\f0 Arial;}}{\\colortbl;\\red0\\green0\\blue0;}\\f0 "
            + sentence.encode().replace(b"#", b"\\'23") + b"\\par }")


# ------------------------------------------------------------------ places

HTML_ATTRS = ("alt", "title", "value", "content", "aria-label", "placeholder")


def _rfc2231(filename: str) -> bytes:
    quoted = urllib.parse.quote(filename, safe="")
    return leaf("application/pdf", pdf_of(pdf_text("Invoice")), "base64",
                f"Content-Disposition: attachment; filename*=utf-8''{quoted}\r\n")


def place(where: str, phi: Phi, rng: random.Random) -> bytes:
    """A whole message with ``phi.text`` at ``where`` (see ``PLACES``)."""
    s, bland = phi.text, rng.choice(FILLER)
    b1, b2 = f"b1_{rng.randrange(10**9)}", f"b2_{rng.randrange(10**9)}"
    cte = rng.choice(["quoted-printable", "base64", "8bit"])
    if where == "body":
        return message(text(f"{bland}\r\n\r\n{s}\r\n", cte))
    if where == "html_text":
        return message(multipart("alternative", [text(bland), html(f"<p>{s}</p>")], b1))
    if where == "html_comment":
        return message(html(f"<p>{bland}</p><!-- {s} --><p>Thanks</p>"))
    if where == "html_attribute":
        attr = rng.choice(HTML_ATTRS)
        tag = rng.choice([f'<img src="cid:x" {attr}="{s}">', f'<input {attr}="{s}">',
                          f'<meta name="note" {attr}="{s}">', f'<span {attr}="{s}">info</span>'])
        return message(html(f"<html><head>{tag if 'meta' in tag else ''}</head><body><p>{bland}"
                            f"</p>{'' if 'meta' in tag else tag}</body></html>"))
    if where == "filename":
        pdf = attachment("application/pdf", f"{s}.pdf".replace('"', ""), pdf_of(pdf_text("Invoice")))
        return message(multipart("mixed", [text(bland), pdf], b1))
    if where == "name_param":
        part = leaf(f'application/octet-stream; name="{s}.dat"', b"\x00\x01", "base64")
        return message(multipart("mixed", [text(bland), part], b1))
    if where == "rfc2231_filename":
        return message(multipart("mixed", [text(bland), _rfc2231(s + ".pdf")], b1))
    if where == "zip_member_name":
        data = zip_of({f"{s}.txt".replace("/", "-"): b"see chart"})
        return message(multipart("mixed", [text(bland), attachment("application/zip", "docs.zip", data)], b1))
    if where == "zip_member":
        data = zip_of({"notes.txt": s.encode()})
        return message(multipart("mixed", [text(bland), attachment("application/zip", "docs.zip", data)], b1))
    if where == "rfc822_base64":
        inner = headers("Fwd") + text(s)
        for _ in range(rng.randint(0, 2)):  # nested attached messages, each base64 again
            inner = headers("Fwd") + multipart("mixed", [text(bland), rfc822(inner)], f"n{rng.randrange(10**9)}")
        return message(multipart("mixed", [text(bland), rfc822(inner, rng.choice(["base64", "quoted-printable"]))], b1))
    if where == "calendar":
        ics = (f"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Consult\r\nDESCRIPTION:{s[:40]}\r\n"
               f" {s[40:]}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n").replace(",", "\\,")
        return message(multipart("mixed", [text(bland), leaf("text/calendar; method=REQUEST", ics.encode())], b1))
    if where == "vcard":
        vcf = f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Contact\r\nNOTE:{s}\r\nEND:VCARD\r\n".replace(",", "\\,")
        return message(multipart("mixed", [text(bland), attachment("text/vcard", "contact.vcf", vcf.encode())], b1))
    if where == "csv":
        data = f"note,owner\r\n\"{s}\",desk\r\n".encode()
        return message(multipart("mixed", [text(bland), attachment("text/csv", "list.csv", data)], b1))
    if where == "rtf":
        return message(multipart("mixed", [text(bland), attachment("application/rtf", "letter.rtf", rtf(s))], b1))
    if where == "quoted_reply":
        body = (f"Sounds good, thanks!\r\n\r\n-- \r\nFront Desk\r\nSmile Dental\r\n\r\n"
                f"On Tue, Dec 1, 2026 at 9:14 AM Records wrote:\r\n> Hello,\r\n> {s}\r\n> Thanks\r\n")
        return message(text(body, cte))
    if where == "broken_boundary":
        parts = [text(bland, "base64"), text(s, "base64")]
        return message(multipart("mixed", parts, b1, delimiter=b2))
    if where == "boundary_twice":
        parts = [text(bland, "base64"), text(s, "base64")]
        return message(multipart("mixed", parts, b2, params=f'; boundary="{b1}"'))
    if where == "boundary_reused":
        inner = multipart("alternative", [text(bland), text(s, "base64")], b1)
        return message(multipart("mixed", [text(bland), inner], b1))
    if where == "multipart_no_subtype":
        entity = multipart("mixed", [text(bland, "base64"), text(s, "base64")], b1)
        return message(entity.replace(b"multipart/mixed", b"multipart", 1))
    raise ValueError(where)


PLACES = ("body", "html_text", "html_comment", "html_attribute", "filename", "name_param",
          "rfc2231_filename", "zip_member_name", "zip_member", "rfc822_base64", "calendar",
          "vcard", "csv", "rtf", "quoted_reply", "broken_boundary", "boundary_twice",
          "boundary_reused", "multipart_no_subtype")
BROKEN = ("broken_boundary", "boundary_twice", "boundary_reused", "multipart_no_subtype")


def wrapped(where: str, phi: Phi, rng: random.Random) -> bytes:
    """``place`` with the entity optionally wrapped in one more multipart/mixed level."""
    raw = place(where, phi, rng)
    if where in BROKEN or rng.random() < 0.5:
        return raw
    head, _, entity = raw.partition(b"MIME-Version: 1.0\r\n")
    return head + b"MIME-Version: 1.0\r\n" + multipart(
        "mixed", [text(rng.choice(FILLER)), entity], f"w{rng.randrange(10**9)}")


# ------------------------------------------------------------------ hostile input


def hostile(rng: random.Random) -> list[tuple[str, bytes, str]]:
    """(name, message, marker): every place, malformed MIME, odd encodings, bombs and 20 MB
    attachments; each message carries PHI."""
    return malformed(rng) + bombs(rng)


def malformed(rng: random.Random) -> list[tuple[str, bytes, str]]:
    """(name, message, marker) for every place, malformed MIME and odd encodings (small)."""
    out: list[tuple[str, bytes, str]] = []

    def add(name: str, build) -> None:
        phi = phi_sentence(rng)
        out.append((name, build(phi), phi.marker))

    for where in PLACES:
        add(where, lambda phi, w=where: place(w, phi, rng))
    b = "hostile_boundary"
    add("no_boundary_param", lambda p: message(
        multipart("mixed", [text(p.text, "base64")], b).replace(f'; boundary="{b}"'.encode(), b"", 1)))
    add("unclosed_multipart", lambda p: message(
        multipart("mixed", [text("hi"), text(p.text, "base64")], b).rsplit(b"--" + b.encode() + b"--", 1)[0]))
    add("no_header_separator", lambda p: headers() + b"Content-Type: text/plain\r\n" + p.text.encode()
        + b"\r\n")
    add("unknown_cte", lambda p: message(leaf("text/plain", b"", "8bit").replace(b"8bit", b"x-rot13")
                                         + p.text.encode()))
    add("bad_base64", lambda p: message(leaf("text/plain", b"", "base64") + b"!!" + b64(p.text.encode())))
    add("duplicate_content_type", lambda p: headers(extra="Content-Type: text/plain\r\n")
        + multipart("mixed", [text(p.text, "base64")], b))
    add("message_partial", lambda p: message(
        b"Content-Type: message/partial; id=\"x@y\"; number=1; total=2\r\n\r\n" + headers() + text(p.text)))
    add("garbage_content_type", lambda p: message(leaf("(((;;;", p.text.encode(), "base64")))
    add("utf16_body", lambda p: message(leaf("text/plain; charset=utf-16", p.text.encode("utf-16"))))
    add("iso2022_body", lambda p: message(leaf("text/plain; charset=iso-2022-jp",
                                               ("\u3053\u3093\u306b\u3061\u306f " + p.text).encode("iso-2022-jp"))))
    add("unknown_charset", lambda p: message(leaf("text/plain; charset=x-klingon", p.text.encode())))
    add("encoded_subject_broken", lambda p: message(
        text(p.text), subject="=?x-unknown?q?" + p.text.replace(" ", "_")[:60] + "?="))
    add("nul_bytes", lambda p: message(leaf("text/plain", p.text.encode().replace(b" ", b" \x00"), "8bit")))
    # lines over SMTP's 998 octets: the daemon answers 500 and stores nothing
    add("long_line", lambda p: message(leaf("text/plain", b"x" * 2_000_000 + p.text.encode(), "8bit")))
    add("deep_multipart", lambda p: message(_deep(p.text, 300)))
    add("many_parts", lambda p: message(multipart("mixed", [text("hi")] * 3000 + [text(p.text)], b)))
    add("html_unclosed_tags", lambda p: message(leaf(
        "text/html; charset=utf-8", ("<" * 300_000 + "<!--" * 100_000 + p.text).encode())))
    return out


def bombs(rng: random.Random) -> list[tuple[str, bytes, str]]:
    """(name, message, marker) for zip/gzip/PDF/XML bombs and 20 MB attachments."""
    out: list[tuple[str, bytes, str]] = []
    b = "hostile_boundary"

    def add(name: str, build) -> None:
        phi = phi_sentence(rng)
        out.append((name, build(phi), phi.marker))

    add("zip_bomb", lambda p: message(multipart("mixed", [text(p.text), attachment(
        "application/zip", "photos.zip", zip_of({"zeros.txt": bytes(200 << 20)}))], b)))
    add("nested_zip_bomb", lambda p: message(multipart("mixed", [text(p.text), attachment(
        "application/zip", "n.zip", zip_of({f"z{i}.zip": zip_of({"z.txt": bytes(40 << 20)})
                                           for i in range(5)}))], b)))
    add("gzip_bomb", lambda p: message(multipart("mixed", [text(p.text), attachment(
        "application/gzip", "log.gz", gzip.compress(bytes(200 << 20), 1))], b)))
    add("pdf_bomb", lambda p: message(multipart("mixed", [text("Attached."), attachment(
        "application/pdf", f"{p.text}.pdf", pdf_of(b" " * (200 << 20)))], b)))
    add("xml_bomb_docx", lambda p: message(multipart("mixed", [text(p.text), attachment(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "letter.docx",
        zip_of({"word/document.xml": _billion_laughs() + b"<w:t>x</w:t>" * (5 << 20)}))], b)))
    add("attachment_20mb_random", lambda p: message(multipart("mixed", [text(p.text), attachment(
        "application/octet-stream", "scan.bin", rng.randbytes(20 << 20))], b)))
    add("attachment_20mb_text", lambda p: message(multipart("mixed", [text("See file."), attachment(
        "text/plain", "export.txt", b"row of data\r\n" * ((20 << 20) // 13) + p.text.encode())], b)))
    return out


def _deep(sentence: str, levels: int) -> bytes:
    entity = text(sentence, "base64")
    for level in range(levels):
        entity = multipart("mixed", [entity], f"d{level}")
    return entity


def _billion_laughs() -> bytes:
    lines = [b'<?xml version="1.0"?>', b'<!DOCTYPE lolz [<!ENTITY lol "lol">']
    for i in range(1, 10):
        prev = b"&lol;" if i == 1 else b"&lol%d;" % (i - 1)
        lines.append(b'<!ENTITY lol%d "%s">' % (i, prev * 10))
    lines.append(b"]><lolz>&lol9;</lolz>")
    return b"\n".join(lines)
