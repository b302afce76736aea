"""Turn one attachment into scannable text or a direct finding, within a budget.

Judged by content first (magic bytes), then by declared type and name: DICOM
("DICM" at offset 128), PDF (pypdf text), ZIP (office documents have their XML
read; other archives are opened member by member, member names included),
gzip/bzip2/xz and tar, images (a radiograph or intraoral photo by file name),
text-like files (HTML with its comments and attribute values, CSV/TSV, RTF,
calendar invites and vCards with their folded lines joined, plain text), and
for other binaries the printable runs, ASCII and UTF-16 (old .doc/.xls keep
their text that way).

Everything is bounded by a shared ``Budget``: bytes extracted, decompression
ratio, archive depth, members, PDF pages and a deadline, all checked while
reading (a member is decompressed chunk by chunk, never all at once). Crossing
a limit raises ``Unscannable`` with a short, content-free reason, which the
classifier reports as an ``unreadable`` part, i.e. PHI (fail closed). Same for
encrypted files and archive formats it cannot open.

Regular expressions that run over attacker-sized markup use google-re2 (linear
time: a megabyte of unclosed ``<`` or ``<!--`` cannot make them quadratic).
"""

from __future__ import annotations

import bz2
import csv
import html
import io
import lzma
import re
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field

import re2

from gateway.policy.classifiers import lexicons
from gateway.policy.classifiers.patterns import latin1_program

DICOM_MAGIC_OFFSET = 128
CHUNK = 64 << 10


class Unscannable(Exception):
    """Content that cannot be inspected within the limits (too big, too deep, encrypted)."""


@dataclass
class Budget:
    max_bytes: int = 32 << 20  # text + decompressed bytes over the whole message
    max_depth: int = 5  # nesting of archives / attached messages
    max_members: int = 500  # archive members over the whole message
    max_pdf_pages: int = 100
    max_ratio: int = 200  # decompressed / compressed size of one member or stream ...
    ratio_floor: int = 2 << 20  # ... once it has produced more than this
    seconds: float = 4.0  # wall-clock time for one message
    deadline: float = float("inf")
    used_bytes: int = 0
    used_members: int = 0

    def started(self) -> Budget:
        """A fresh copy for one message, its deadline running from now."""
        return Budget(
            self.max_bytes,
            self.max_depth,
            self.max_members,
            self.max_pdf_pages,
            self.max_ratio,
            self.ratio_floor,
            self.seconds,
            time.monotonic() + self.seconds,
        )

    @property
    def left(self) -> int:
        return self.max_bytes - self.used_bytes

    def spend(self, n: int) -> None:
        self.used_bytes += n
        if self.used_bytes > self.max_bytes:
            raise Unscannable("size limit")
        self.tick()

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise Unscannable("time limit")

    def member(self) -> None:
        self.used_members += 1
        if self.used_members > self.max_members:
            raise Unscannable("member limit")
        self.tick()

    def check_ratio(self, produced: int, consumed: int) -> None:
        if produced > self.ratio_floor and produced > consumed * self.max_ratio:
            raise Unscannable("compression ratio limit")


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
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".bmp", ".heic", ".webp")
UNSUPPORTED_ARCHIVES = (b"Rar!\x1a\x07", b"7z\xbc\xaf\x27\x1c", b"MSCF")
TNEF_MAGIC = b"\x78\x9f\x3e\x22"  # Outlook's winmail.dat: body and files in compressed RTF
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
OLE_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")
_OFFICE_PARTS = re.compile(
    r"^(?:word/(?:document|header\d*|footer\d*|footnotes|endnotes|comments)\.xml"
    r"|xl/(?:sharedStrings|worksheets/sheet\d+|comments\d*)\.xml"
    r"|ppt/(?:slides/slide\d+|notesSlides/notesSlide\d+)\.xml|content\.xml|docProps/core\.xml)$"
)
# Markup is taken apart with the standard library's engine where a pattern is linear
# there: inside a tag there is no "<" or ">", so an attempt that fails ends at the next
# bracket and no byte is looked at twice from the same start. Its sub() runs in C,
# where google-re2's runs Python code for every match (for every tag, that is: 14 ms
# for a 52 KB Outlook message, measured). What could backtrack there (a lazy scan to
# a closing tag, a search for a tag holding some attribute name) stays on RE2.
XML_BREAK = (rb"</(?:w:p|a:p|text:p|text:h|row|si|table:table-row)>"
             rb"|<(?:w:br|w:tab|c |c>)[^<>]*>")
TAG = rb"<[^<>]*>"
HTML_COMMENT = rb"<!--|-->|<!\[CDATA\[|\]\]>"
HTML_BREAK = rb"(?i)<(?:br|/p|/div|/tr|/li|/h\d|/td|/th|/title)\b[^<>]*>"
_XML_BREAK = re.compile(XML_BREAK)
_TAG = re.compile(TAG)
_HTML_COMMENT = re.compile(HTML_COMMENT)
_HTML_BREAK = re.compile(HTML_BREAK)
_HTML_DROP = re2.compile(rb"(?is)<style\b.*?</style\s*>")
# Attribute values a reader sees: tooltips, alt text, form values, meta content, labels.
# Within one tag this is linear in the standard library's engine too (every run it
# scans ends at a quote or a space), and much cheaper to call than RE2 on a short tag.
# White space is spelled out as RE2's \s (the standard library's also takes \v).
_WS = rb"[\t\n\f\r ]"
_VISIBLE_NAMES = (rb"(?:alt|title|value|content|aria-label|aria-description|placeholder"
                  rb"|label|summary|abbr|data-tooltip)")
VISIBLE_ATTR = (rb"(?i)" + _WS + _VISIBLE_NAMES + _WS + rb"*=" + _WS
                + rb"*(?:\"([^\"]*)\"|'([^']*)'|([^\t\n\f\r \"'<>]+))")
_VISIBLE_ATTR = re.compile(VISIBLE_ATTR)
# A tag in which _VISIBLE_ATTR can match: one span of TAG each. RE2, since in an
# unclosed tag full of attribute names the standard library would backtrack; as
# Latin-1, since in UTF-8 mode a tag of a Latin-1 attachment would not be one.
_VISIBLE_TAG = latin1_program(rb"(?i)<[^<>]*" + _WS + _VISIBLE_NAMES + _WS + rb"*=[^<>]*>")
_PRINTABLE_RUNS = re2.compile(rb"[\x20-\x7e\t\r\n]{6,}")
_UTF16_RUNS = re2.compile(rb"(?:[\x20-\x7e\t\r\n]\x00){4,}")
_SPACES = re.compile(rb"[ \t\xa0]+")
_FOLDED = re.compile(rb"\r?\n[ \t]")
_NAME_SEPARATORS = re.compile(r"[_+~()\[\]]+|(?<=[A-Za-z])[-.](?=[A-Za-z])|(?<=[a-z])(?=[A-Z])")


def _tags_to_text(data: bytes) -> bytes:
    """Every tag (a span of TAG) as a space, or as its visible attribute values between
    spaces. The few tags that have such values are found with RE2, the rest are
    replaced by the standard library in C: the same spans as one pass of TAG, since a
    tag holds no bracket and so never overlaps another."""
    pieces = []
    end = 0
    for tag in _VISIBLE_TAG.finditer(data):
        pieces.append(_TAG.sub(b" ", data[end : tag.start()]))
        values = [next(v for v in m.groups() if v is not None)
                  for m in _VISIBLE_ATTR.finditer(tag.group())]
        pieces.append(b" " + b" ".join(values) + b" " if values else b" ")
        end = tag.end()
    pieces.append(_TAG.sub(b" ", data[end:]))
    return b"".join(pieces)


def xml_to_text(data: bytes) -> bytes:
    data = _XML_BREAK.sub(b"\n", data)
    data = _TAG.sub(b" ", data)
    return _SPACES.sub(b" ", html.unescape(data.decode("utf-8", "replace")).encode())


def html_to_text(data: bytes) -> bytes:
    """Text, comments and visible attribute values of an HTML document (CSS dropped)."""
    data = _HTML_DROP.sub(b" ", data)
    data = _HTML_COMMENT.sub(b" ", data)  # a comment's words are kept: any reader can see them
    data = _HTML_BREAK.sub(b"\n", data)
    data = _tags_to_text(data)
    text = html.unescape(data.decode("utf-8", "replace")).replace("\xa0", " ")
    return _SPACES.sub(b" ", text.encode())


def csv_to_text(data: bytes) -> bytes:
    """Rows as "column: value" lines, so a "DOB" header labels the dates under it."""
    text = data.decode("utf-8-sig", "replace").replace("\x00", "")
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


def directory_to_text(data: bytes) -> bytes:
    """iCalendar / vCard: folded lines joined, ``NAME;PARAMS:value`` as "NAME: value"."""
    data = _FOLDED.sub(b"", data)
    lines = []
    for line in data.splitlines():
        name, sep, value = line.partition(b":")
        if not sep:
            lines.append(line)
            continue
        value = (
            value.replace(b"\\n", b"\n")
            .replace(b"\\N", b"\n")
            .replace(b"\\,", b",")
            .replace(b"\\;", b";")
        )
        if b"QUOTED-PRINTABLE" in name.upper():
            value = _quoted_printable(value)
        lines.append(name.split(b";", 1)[0] + b": " + value.replace(b";", b" "))
    return b"\n".join(lines)


def _quoted_printable(value: bytes) -> bytes:
    import binascii

    try:
        return binascii.a2b_qp(value)
    except (binascii.Error, ValueError):
        return value


_RTF_TOKEN = re.compile(rb"\\([a-zA-Z]+)(-?\d+)? ?|\\'([0-9a-fA-F]{2})|\\(.)|([{}])|([^\\{}\r\n]+)")
_RTF_SKIP = frozenset(
    {
        b"fonttbl",
        b"colortbl",
        b"stylesheet",
        b"pict",
        b"object",
        b"themedata",
        b"datastore",
        b"listtable",
        b"listoverridetable",
        b"rsidtbl",
        b"generator",
        b"xmlnstbl",
    }
)
_RTF_BREAKS = {b"par": b"\n", b"line": b"\n", b"row": b"\n", b"cell": b" ", b"tab": b"\t"}


def rtf_to_text(data: bytes) -> bytes:
    """The text of an RTF document (font/colour tables, pictures and \\* destinations skipped)."""
    out: list[bytes] = []
    stack: list[bool] = []
    skip = False
    fresh = False  # just after "{": the next control word may name a destination
    for word, arg, hexbyte, symbol, brace, text in _RTF_TOKEN.findall(data):
        if brace == b"{":
            stack.append(skip)
            fresh = True
            continue
        if brace == b"}":
            skip = stack.pop() if stack else False
            fresh = False
            continue
        if symbol == b"*" and fresh:
            skip = True
        elif word:
            if fresh and word in _RTF_SKIP:
                skip = True
            elif not skip and word in _RTF_BREAKS:
                out.append(_RTF_BREAKS[word])
            elif not skip and word == b"u" and arg:
                out.append(chr(int(arg) % 0x10000).encode("utf-8", "replace"))
        elif not skip and hexbyte:
            out.append(bytes([int(hexbyte, 16)]).decode("cp1252", "replace").encode())
        elif not skip and text:
            out.append(text)
        elif not skip and symbol in (b"\\", b"{", b"}"):
            out.append(symbol)
        fresh = False
    return b"".join(out)


def binary_text(data: bytes) -> bytes:
    """Printable runs, ASCII and UTF-16LE (how old Office formats store their text)."""
    runs = _PRINTABLE_RUNS.findall(data)
    runs += [r.decode("utf-16-le", "replace").encode() for r in _UTF16_RUNS.findall(data)]
    return b"\n".join(runs)


def name_text(filename: str) -> bytes:
    """A file name as words: "JaneDoe_perio-chart.pdf" -> "Jane Doe perio chart pdf"."""
    return _NAME_SEPARATORS.sub(" ", filename).encode("utf-8", "replace")


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
    head = payload[:1024]
    if is_dicom(payload) or name.endswith(".dcm") or ctype == "application/dicom":
        result.marks.append("dicom")
        return result
    if head.lstrip().startswith(b"%PDF") or ctype == "application/pdf":
        result.texts.append(_pdf_text(payload, budget))
    elif payload[:4] == b"PK\x03\x04":
        _zip(payload, budget, depth, result)
    elif payload[:2] == b"\x1f\x8b" or payload[:3] == b"BZh" or payload[:6] == b"\xfd7zXZ\x00":
        _compressed(payload, name, budget, depth, result)
    elif payload[257:262] == b"ustar":
        _tar(payload, budget, depth, result)
    elif payload.startswith(UNSUPPORTED_ARCHIVES):
        raise Unscannable("unsupported archive")
    elif payload.startswith(TNEF_MAGIC) or ctype == "application/ms-tnef":
        raise Unscannable("unsupported format")
    elif payload.startswith(OLE_MAGIC) and OLE_ENCRYPTED in payload:
        raise Unscannable("encrypted document")
    elif ctype.startswith("image/") or name.endswith(IMAGE_EXTENSIONS):
        if looks_like_dental_image(name):
            result.marks.append("radiograph")
    elif ctype in ("text/html", "application/xhtml+xml") or name.endswith((".html", ".htm")):
        result.texts.append(html_to_text(payload))
    elif ctype in ("text/csv", "text/tab-separated-values") or name.endswith((".csv", ".tsv")):
        result.texts.append(csv_to_text(payload))
    elif head.lstrip().startswith(b"{\\rtf") or ctype in ("text/rtf", "application/rtf"):
        result.texts.append(rtf_to_text(payload))
    elif ctype in (
        "text/calendar",
        "text/vcard",
        "text/x-vcard",
        "text/directory",
    ) or name.endswith((".ics", ".vcs", ".vcf")):
        result.texts.append(directory_to_text(payload))
    elif ctype.startswith("text/") or name.endswith(TEXT_EXTENSIONS):
        result.texts.append(payload)
    else:
        result.texts.append(binary_text(payload))
    for text in result.texts:
        budget.spend(len(text))
    return result


def _pdf_text(payload: bytes, budget: Budget) -> bytes:
    import pypdf  # imported on first PDF: keeps classifier start-up light

    cap = max(1 << 20, min(budget.left, 16 << 20))  # one stream's decoded size
    limits = {
        "maximum_declared_stream_length": cap,
        "array_based_stream_maximum_output_length": cap,
        "jbig2_maximum_output_length": cap,
        "lzw_maximum_output_length": cap,
        "run_length_maximum_output_length": cap,
        "zlib_maximum_output_length": cap,
        "brotli_maximum_output_length": cap,
        "image_maximum_buffer_size": cap,
        "stream_decoding_work_maximum_length": 4 * cap,
        "xfa_decoding_work_maximum_length": 4 * cap,
    }
    with pypdf.apply_configuration(**limits):
        try:
            reader = pypdf.PdfReader(io.BytesIO(payload))
            if reader.is_encrypted:
                raise Unscannable("encrypted pdf")
            parts: list[bytes] = []
            for number, page in enumerate(reader.pages):
                if number >= budget.max_pdf_pages:
                    raise Unscannable("pdf page limit")
                budget.tick()
                text = (page.extract_text() or "").encode("utf-8", "replace")
                budget.spend(len(text))
                parts.append(text)
        except pypdf.errors.LimitReachedError as exc:
            raise Unscannable("pdf stream limit") from exc
    return b"\n".join(parts)


def read_bounded(stream, budget: Budget, compressed: int) -> bytes:
    """Read a decompressing stream chunk by chunk; stop at the size, ratio or time limit."""
    chunks: list[bytes] = []
    produced = 0
    while chunk := stream.read(CHUNK):
        produced += len(chunk)
        if produced > budget.left:
            raise Unscannable("size limit")
        budget.check_ratio(produced, compressed)
        budget.tick()
        chunks.append(chunk)
    return b"".join(chunks)


def _nested(data: bytes, filename: str, budget: Budget, depth: int, result: AttachmentResult):
    result.texts.append(name_text(filename))
    inner = inspect(data, "", filename, budget, depth + 1)
    result.texts.extend(inner.texts)
    result.marks.extend(inner.marks)


def _zip(payload: bytes, budget: Budget, depth: int, result: AttachmentResult) -> None:
    if depth >= budget.max_depth:
        raise Unscannable("nesting limit")
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise Unscannable("archive does not open") from exc
    with archive:
        infos = archive.infolist()
        office = any(_OFFICE_PARTS.match(i.filename) for i in infos)
        for info in infos:
            budget.member()
            if info.is_dir():
                result.texts.append(name_text(info.filename))
                continue
            if info.flag_bits & 0x1:
                raise Unscannable("encrypted archive member")
            if office and not _OFFICE_PARTS.match(info.filename):
                continue
            try:
                with archive.open(info) as member:
                    data = read_bounded(member, budget, info.compress_size)
            except (zipfile.BadZipFile, NotImplementedError, zlib.error, EOFError) as exc:
                raise Unscannable("archive member does not decompress") from exc
            if office:
                text = xml_to_text(data)
                budget.spend(len(text))
                result.texts.append(text)
            else:
                _nested(data, info.filename, budget, depth, result)


_DECOMPRESSORS = {
    b"\x1f\x8b": lambda: zlib.decompressobj(zlib.MAX_WBITS | 16),
    b"BZ": bz2.BZ2Decompressor,
    b"\xfd7": lzma.LZMADecompressor,
}


def _compressed(
    payload: bytes, name: str, budget: Budget, depth: int, result: AttachmentResult
) -> None:
    """gzip / bzip2 / xz, decompressed in bounded steps (one stream)."""
    if depth >= budget.max_depth:
        raise Unscannable("nesting limit")
    decompressor = _DECOMPRESSORS[payload[:2]]()
    chunks: list[bytes] = []
    produced = 0
    pending = payload
    try:
        while True:
            chunk = decompressor.decompress(pending, CHUNK)
            pending = getattr(decompressor, "unconsumed_tail", b"")
            produced += len(chunk)
            if produced > budget.left:
                raise Unscannable("size limit")
            budget.check_ratio(produced, len(payload))
            budget.tick()
            chunks.append(chunk)
            if getattr(decompressor, "eof", False) or (not chunk and not pending):
                break
            if not hasattr(decompressor, "unconsumed_tail") and decompressor.needs_input:
                break
    except (zlib.error, OSError, EOFError, lzma.LZMAError) as exc:
        raise Unscannable("compressed file does not decompress") from exc
    inner_name = name.rsplit(".", 1)[0] if name.endswith((".gz", ".bz2", ".xz", ".tgz")) else ""
    _nested(b"".join(chunks), inner_name, budget, depth, result)


def _tar(payload: bytes, budget: Budget, depth: int, result: AttachmentResult) -> None:
    if depth >= budget.max_depth:
        raise Unscannable("nesting limit")
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:") as archive:
            for member in archive:
                budget.member()
                if not member.isfile():
                    result.texts.append(name_text(member.name))
                    continue
                stream = archive.extractfile(member)
                data = read_bounded(stream, budget, max(member.size, 1)) if stream else b""
                _nested(data, member.name, budget, depth, result)
    except tarfile.TarError as exc:
        raise Unscannable("archive does not open") from exc
