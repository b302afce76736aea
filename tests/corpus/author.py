"""Assembles the hand-written messages in ``tests/corpus/src/*.txt`` into ``msg-NNN.eml``
and writes ``labels.csv`` for the whole corpus (these plus ``build.py``'s ``own-NNN.eml``).

Only the envelope is generated here: headers, MIME structure, an Outlook-style HTML
alternative, attachments. Every body, subject and signature is written by hand in the
source files; nothing is combined from templates.

Source format: blocks starting with ``=== <phi 0|1> <category> [style]``, then header
lines (``From``, ``To``, ``Cc``, ``Subject``, ``Note``; ``Note`` goes to labels.csv only),
a blank line, the body, and optionally attachments, each starting with ``@@ <file name>``
(``.csv``/``.txt``/``.ics``/``.vcf`` as text, ``.pdf`` and ``.docx`` as documents, one line
per text line). Styles: ``plain`` (default), ``outlook`` (plain + Outlook HTML alternative),
``html`` (Outlook HTML only), ``mobile`` (Apple Mail-ish single HTML-free part, sent from a
phone: the signature is written in the body).

The split into a tuning half and an evaluation half is drawn ONCE with ``SPLIT_SEED`` over
the new messages and recorded in labels.csv (``split`` column). The older ``own-NNN``
messages were used to tune the classifier before this corpus existed, so they belong to
the tuning half. Run ``python -m tests.corpus.author``.
"""

from __future__ import annotations

import csv
import html
import random
import zlib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from tests.corpus import build

HERE = Path(__file__).parent
SRC = HERE / "src"
SPLIT_SEED = 20261204


def _outlook_html(body: str) -> str:
    paragraphs = body.split("\n")
    rows = "".join(
        f'<p class="MsoNormal">{html.escape(line) if line else "<o:p>&nbsp;</o:p>"}</p>\n'
        for line in paragraphs
    )
    return (
        '<html xmlns:o="urn:schemas-microsoft-com:office:office" '
        'xmlns:w="urn:schemas-microsoft-com:office:word">\n<head>\n'
        '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n'
        '<style><!--\n/* Style Definitions */\np.MsoNormal, li.MsoNormal, div.MsoNormal\n'
        '\t{margin:0in;font-size:11.0pt;font-family:"Calibri",sans-serif;}\n--></style>\n'
        '</head>\n<body lang="EN-US" link="#0563C1" vlink="#954F72">\n'
        f'<div class="WordSection1">\n{rows}</div>\n</body>\n</html>\n'
    )


def _attachment(msg: EmailMessage, name: str, lines: list[str]) -> None:
    ext = name.rsplit(".", 1)[-1].lower()
    if ext == "pdf":
        msg.add_attachment(build.make_pdf(lines), maintype="application", subtype="pdf",
                           filename=name)
    elif ext == "docx":
        msg.add_attachment(
            build.make_docx(lines), maintype="application",
            subtype="vnd.openxmlformats-officedocument.wordprocessingml.document", filename=name,
        )
    else:
        subtype = {"csv": "csv", "ics": "calendar", "vcf": "vcard"}.get(ext, "plain")
        msg.add_attachment("\n".join(lines) + "\n", subtype=subtype, filename=name)


def parse(text: str) -> list[dict]:
    """The blocks of one source file."""
    items = []
    for chunk in text.split("\n=== ")[1:] if not text.startswith("=== ") else \
            ("\n" + text).split("\n=== ")[1:]:
        head, _, rest = chunk.partition("\n")
        fields = head.split()
        item = {"phi": int(fields[0]), "category": fields[1],
                "style": fields[2] if len(fields) > 2 else "plain", "headers": {},
                "attachments": []}
        header_part, _, body = rest.partition("\n\n")
        for line in header_part.splitlines():
            key, _, value = line.partition(":")
            item["headers"][key.strip()] = value.strip()
        parts = ("\n" + body).split("\n@@ ")
        item["body"] = parts[0].strip("\n") + "\n"
        for attachment in parts[1:]:
            name, _, content = attachment.partition("\n")
            item["attachments"].append((name.strip(), content.rstrip("\n").split("\n")))
        items.append(item)
    return items


def assemble(item: dict, number: int) -> EmailMessage:
    headers = item["headers"]
    msg = EmailMessage()
    msg["From"] = headers["From"]
    msg["To"] = headers["To"]
    if headers.get("Cc"):
        msg["Cc"] = headers["Cc"]
    msg["Subject"] = headers.get("Subject", "")
    when = datetime(2026, 3, 2, 8, 0, tzinfo=UTC) + timedelta(minutes=97 * number)
    msg["Date"] = format_datetime(when)
    domain = msg["From"].addresses[0].domain or "corpus.example"
    msg["Message-ID"] = f"<{zlib.crc32(item['body'].encode()):08x}.{number}@{domain}>"
    if item["style"] == "outlook":
        msg["X-Mailer"] = "Microsoft Outlook 16.0"
    elif item["style"] == "mobile":
        msg["X-Mailer"] = "iPhone Mail (21D61)"
    body = item["body"]
    if item["style"] == "html":
        msg.set_content(_outlook_html(body.rstrip("\n")), subtype="html")
    else:
        msg.set_content(body)
        if item["style"] == "outlook":
            msg.add_alternative(_outlook_html(body.rstrip("\n")), subtype="html")
    for name, lines in item["attachments"]:
        _attachment(msg, name, lines)
    for depth, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"=_corpus_{number}_{depth}")  # the same bytes on every run
    return msg


def authored() -> list[tuple[str, dict, EmailMessage]]:
    items = [item for path in sorted(SRC.glob("*.txt")) for item in parse(path.read_text())]
    return [(f"msg-{n:03d}.eml", item, assemble(item, n)) for n, item in enumerate(items, 1)]


def split(names: list[str]) -> dict[str, str]:
    """The one random split: half of the new messages for tuning, half for evaluation."""
    order = sorted(names)
    random.Random(SPLIT_SEED).shuffle(order)
    tune = set(order[: len(order) // 2])
    return {name: "tune" if name in tune else "eval" for name in names}


def main() -> None:
    rows = [[name, phi, category, note, "tune"] for name, phi, category, note, _ in build.corpus()]
    new = authored()
    halves = split([name for name, _, _ in new])
    for name, item, msg in new:
        (HERE / name).write_bytes(bytes(msg))
        rows.append([name, item["phi"], item["category"], item["headers"].get("Note", ""),
                     halves[name]])
    with open(HERE / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file", "phi", "category", "notes", "split"])
        writer.writerows(rows)


if __name__ == "__main__":
    main()
