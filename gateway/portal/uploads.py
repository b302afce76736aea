"""What a patient may attach to a reply or a new message.

The type is decided from the bytes (their signature), never from the name
or from what the browser declared, and must be one of ``portal.upload_types``
(PDF, common pictures, plain text and office documents by default).
Executables, HTML or SVG (scriptable), archives and anything unrecognised
are refused with a reason the form can show. Office documents are zip files
inside: they are opened with a bounded reader — at most ``MAX_MEMBERS``
entries, every entry actually decompressed in chunks until the total passes
``portal.upload_max_expanded`` — so a zip bomb is refused without ever being
held in memory, and macro-carrying documents are refused. The stored name
ends with an extension of the detected type, so a mail client opening it by
its name opens what it is.
"""
from __future__ import annotations

import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePath

from gateway.portal.security import safe_filename

MAX_MEMBERS = 2000
CHUNK = 1 << 16


@dataclass(frozen=True)
class UploadType:
    mime: str
    extensions: tuple[str, ...]
    label: str


KINDS = {
    "pdf": UploadType("application/pdf", (".pdf",), "PDF"),
    "png": UploadType("image/png", (".png",), "PNG picture"),
    "jpeg": UploadType("image/jpeg", (".jpg", ".jpeg"), "JPEG picture"),
    "gif": UploadType("image/gif", (".gif",), "GIF picture"),
    "webp": UploadType("image/webp", (".webp",), "WebP picture"),
    "heic": UploadType("image/heic", (".heic", ".heif"), "HEIC picture"),
    "tiff": UploadType("image/tiff", (".tif", ".tiff"), "TIFF picture"),
    "txt": UploadType("text/plain", (".txt",), "plain text"),
    "docx": UploadType("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                 (".docx",), "Word document"),
    "xlsx": UploadType("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 (".xlsx",), "Excel sheet"),
    "odt": UploadType("application/vnd.oasis.opendocument.text", (".odt",), "OpenDocument text"),
}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"}
_MARKUP = re.compile(rb"<\s*[!?/]?[a-zA-Z]")
_TEXT_CONTROLS = set(range(32)) - {9, 10, 12, 13}


class UploadRefused(ValueError):
    """Refused, with a reason fit to show the patient."""


@dataclass(frozen=True)
class CheckedUpload:
    filename: str
    content_type: str


def _is_text(data: bytes) -> bool:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not any(ord(c) in _TEXT_CONTROLS for c in text[:100_000])


def sniff(data: bytes, max_expanded: int) -> str:
    """The kind of ``data`` (a key of KINDS, or "zip"/"unknown")."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "heic"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data.startswith(b"PK\x03\x04"):
        return _office_kind(data, max_expanded)
    if _is_text(data):
        if _MARKUP.search(data[:100_000]):
            raise UploadRefused("it is a web page or other markup, which can carry programs")
        return "txt"
    return "unknown"


def _office_kind(data: bytes, max_expanded: int) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise UploadRefused("it holds too many parts")
            names = {m.filename for m in members}
            if any(n.lower().endswith("vbaproject.bin") for n in names):
                raise UploadRefused("it contains macros")
            total = 0
            for member in members:
                with archive.open(member) as part:
                    while chunk := part.read(CHUNK):
                        total += len(chunk)
                        if total > max_expanded:
                            raise UploadRefused("it unpacks to far more than its size")
            mimetype = archive.read("mimetype") if "mimetype" in names else b""
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError,
            KeyError):
        raise UploadRefused("it is damaged, encrypted or not a document") from None
    if "[Content_Types].xml" in names:
        if any(n.startswith("word/") for n in names):
            return "docx"
        if any(n.startswith("xl/") for n in names):
            return "xlsx"
    if mimetype.strip() == KINDS["odt"].mime.encode():
        return "odt"
    return "zip"


def check_upload(name: str, data: bytes, allowed: list[str], max_expanded: int) -> CheckedUpload:
    """The name and type to store ``data`` under, or UploadRefused."""
    kind = sniff(data, max_expanded)
    if kind == "zip":
        raise UploadRefused("archives (zip files) are not accepted")
    if kind not in KINDS or kind not in allowed:
        raise UploadRefused("this type of file is not accepted")
    spec = KINDS[kind]
    filename = safe_filename(PurePath(name.replace("\\", "/")).name or "file")
    if PurePath(filename).suffix.lower() not in spec.extensions:
        filename += spec.extensions[0]
    return CheckedUpload(filename, spec.mime)


def allowed_labels(allowed: list[str]) -> str:
    return ", ".join(KINDS[k].label for k in allowed if k in KINDS)
