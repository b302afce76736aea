"""Turn one attachment into scannable text or a direct finding.

Judged by content first (magic bytes), then by declared type and name: DICOM
("DICM" at offset 128), PDF (pypdf text), ZIP (office documents have their XML
read; other archives are opened member by member), images (a radiograph or
intraoral photo by file name), text-like files (CSV, TXT, ICS, vCard, HTML), and
for other binaries the printable runs (old .doc/.xls keep their text that way).

Everything is bounded by a shared ``Budget`` (bytes extracted, archive depth,
members); crossing it raises ``Unscannable``, which the classifier reports as
content it could not inspect, i.e. PHI (fail closed). Same for encrypted files.
"""

from __future__ import annotations

import csv
import html
import io
import re
import zipfile
from dataclasses import dataclass, field

from gateway.policy.classifiers import lexicons

DICOM_MAGIC_OFFSET = 128


class Unscannable(Exception):
    """Content that cannot be inspected within the limits (too big, too deep, encrypted)."""


@dataclass
class Budget:
    max_bytes: int = 32 << 20  # text + decompressed bytes over the whole message
    max_depth: int = 3  # nesting of archives / attached messages
    max_members: int = 500  # archive members over the whole message
    max_pdf_pages: int = 100
    used_bytes: int = 0
    used_members: int = 0

    def spend(self, n: int) -> None:
        self.used_bytes += n
        if self.used_bytes > self.max_bytes:
            raise Unscannable("size limit")

    def member(self) -> None:
        self.used_members += 1
        if self.used_members > self.max_members:
            raise Unscannable("member limit")


@dataclass
class AttachmentResult:
    texts: list[bytes] = field(default_factory=list)  # UTF-8 text to scan
    marks: list[str] = field(default_factory=list)  # "dicom", "radiograph"


TEXT_EXTENSIONS = (
    ".txt",
    ".csv",
    ".tsv",
    ".ics",
    ".vcs",
    ".vcf",
    ".xml",
    ".json",
    ".md",
    ".html",
    ".htm",
    ".rtf",
    ".log",
    ".eml",
    ".hl7",
)
_OFFICE_PARTS = re.compile(
    r"^(?:word/(?:document|header\d*|footer\d*|footnotes|endnotes|comments)\.xml"
    r"|xl/(?:sharedStrings|worksheets/sheet\d+|comments\d*)\.xml"
    r"|ppt/(?:slides/slide\d+|notesSlides/notesSlide\d+)\.xml|content\.xml|docProps/core\.xml)$"
)
_XML_BREAK = re.compile(
    rb"</(?:w:p|a:p|text:p|text:h|row|si|table:table-row)>|<(?:w:br|w:tab|c |c>)[^>]*>"
)
_TAG = re.compile(rb"<[^>]*>")
_HTML_DROP = re.compile(rb"(?is)<(script|style|head)\b.*?</\1\s*>")
_HTML_BREAK = re.compile(rb"(?i)<(?:br|/p|/div|/tr|/li|/h\d|/td|/th)\b[^>]*>")
_PRINTABLE_RUNS = re.compile(rb"[\x20-\x7e\t\r\n]{4,}")
_SPACES = re.compile(rb"[ \t\xa0]+")


def xml_to_text(data: bytes) -> bytes:
    data = _XML_BREAK.sub(b"\n", data)
    data = _TAG.sub(b" ", data)
    return _SPACES.sub(b" ", html.unescape(data.decode("utf-8", "replace")).encode())


def html_to_text(data: bytes) -> bytes:
    data = _HTML_DROP.sub(b" ", data)
    data = _HTML_BREAK.sub(b"\n", data)
    data = _TAG.sub(b" ", data)
    text = html.unescape(data.decode("utf-8", "replace")).replace("\xa0", " ")
    return _SPACES.sub(b" ", text.encode())


def csv_to_text(data: bytes) -> bytes:
    """Rows as "column: value" lines, so a "DOB" header labels the dates under it."""
    text = data.decode("utf-8-sig", "replace")
    dialect = "excel-tab" if text[:4096].count("\t") > text[:4096].count(",") else "excel"
    rows = csv.reader(io.StringIO(text), dialect)
    header = next(rows, [])
    lines = [" | ".join(header)]
    for row in rows:
        lines.append(
            "\n".join(f"{column}: {value}" for column, value in zip(header, row, strict=False))
            + "\n"
        )
    return "\n".join(lines).encode("utf-8")


def is_dicom(payload: bytes) -> bool:
    return payload[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM"


def looks_like_dental_image(filename: str) -> bool:
    name = filename.lower()
    return any(word in name for word in lexicons.IMAGE_NAME_WORDS) or bool(
        re.search(r"(?:^|[^a-z])(?:pa|bw|ct)\d*(?:[^a-z]|$)", name)
    )


def inspect(
    payload: bytes, content_type: str, filename: str, budget: Budget, depth: int = 0
) -> AttachmentResult:
    """Text and marks for one attachment (recursing into archives up to the budget)."""
    budget.spend(len(payload))
    result = AttachmentResult()
    name = (filename or "").lower()
    ctype = (content_type or "").lower()
    if is_dicom(payload) or name.endswith(".dcm") or ctype == "application/dicom":
        result.marks.append("dicom")
        return result
    if payload[:1024].lstrip().startswith(b"%PDF") or ctype == "application/pdf":
        result.texts.append(_pdf_text(payload, budget))
    elif payload[:4] == b"PK\x03\x04":
        _zip(payload, budget, depth, result)
    elif ctype.startswith("image/") or name.endswith(
        (".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".bmp", ".heic", ".webp")
    ):
        if looks_like_dental_image(name):
            result.marks.append("radiograph")
    elif ctype in ("text/html", "application/xhtml+xml") or name.endswith((".html", ".htm")):
        result.texts.append(html_to_text(payload))
    elif ctype in ("text/csv", "text/tab-separated-values") or name.endswith((".csv", ".tsv")):
        result.texts.append(csv_to_text(payload))
    elif ctype.startswith("text/") or name.endswith(TEXT_EXTENSIONS):
        result.texts.append(payload)
    else:
        result.texts.append(b"\n".join(_PRINTABLE_RUNS.findall(payload)))
    for text in result.texts:
        budget.spend(len(text))
    return result


def _pdf_text(payload: bytes, budget: Budget) -> bytes:
    import pypdf  # imported on first PDF: keeps classifier start-up light

    reader = pypdf.PdfReader(io.BytesIO(payload))
    if reader.is_encrypted:
        raise Unscannable("encrypted pdf")
    parts: list[bytes] = []
    for number, page in enumerate(reader.pages):
        if number >= budget.max_pdf_pages:
            raise Unscannable("pdf page limit")
        text = (page.extract_text() or "").encode("utf-8", "replace")
        budget.spend(len(text))
        parts.append(text)
    return b"\n".join(parts)


def _zip(payload: bytes, budget: Budget, depth: int, result: AttachmentResult) -> None:
    if depth >= budget.max_depth:
        raise Unscannable("nesting limit")
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        infos = archive.infolist()
        office = any(_OFFICE_PARTS.match(i.filename) for i in infos)
        for info in infos:
            if info.is_dir():
                continue
            budget.member()
            if info.flag_bits & 0x1:
                raise Unscannable("encrypted archive member")
            if office and not _OFFICE_PARTS.match(info.filename):
                continue
            # Declared sizes can lie: read at most what the budget still allows, plus one.
            allowance = budget.max_bytes - budget.used_bytes
            with archive.open(info) as member:
                data = member.read(allowance + 1)
            if len(data) > allowance:
                raise Unscannable("size limit")
            if office:
                text = xml_to_text(data)
                budget.spend(len(text))
                result.texts.append(text)
            else:
                inner = inspect(data, "", info.filename, budget, depth + 1)
                result.texts.extend(inner.texts)
                result.marks.extend(inner.marks)
