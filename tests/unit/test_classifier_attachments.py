"""PHI classifier on attachments: real PDF/DOCX/XLSX/CSV/ICS files, images by name, DICOM by
magic bytes, nested messages and archives, and the bounds that stop a zip bomb."""

import io
import zipfile
from email.message import EmailMessage

import pytest

from gateway.policy.classifiers import MessageClassifier, build_classifier
from gateway.policy.classifiers.attachments import Budget
from tests.corpus.build import (
    make_csv,
    make_dicom,
    make_docx,
    make_pdf,
    make_png,
    make_xlsx,
    make_zip,
)

REFERRAL = [
    "Patient name: Lorraine Bisset",
    "DOB: 12/01/1958",
    "Reason: #2 root fracture, extraction",
]


def mail_with(
    filename: str, maintype: str, subtype: str, data: bytes, body: str = "Attached."
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Desk <desk@cedarhollowdental.example>"
    msg["To"] = "Surgeon <referrals@brightwateros.example>"
    msg["Subject"] = "documents"
    msg.set_content(body)
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return bytes(msg)


@pytest.fixture(scope="module")
def classifier():
    return build_classifier()


def located(verdict):
    return {(f.detector, f.location) for f in verdict.findings}


def test_pdf_text_is_extracted(classifier):
    verdict = classifier.classify(
        mail_with("referral_bisset.pdf", "application", "pdf", make_pdf(REFERRAL))
    )
    assert verdict.phi
    assert {("dob", "attachment:0"), ("patient_name", "attachment:0")} <= located(verdict)
    assert "bisset" not in repr(verdict).lower()  # the filename is never a location


def test_pdf_declared_as_octet_stream_is_sniffed(classifier):
    verdict = classifier.classify(
        mail_with("file.bin", "application", "octet-stream", make_pdf(REFERRAL))
    )
    assert ("dob", "attachment:0") in located(verdict)


def test_docx_xml_is_read(classifier):
    docx = make_docx(["Referral", "Patient: Owen Castellanos", "Impacted #17 and #32"])
    verdict = classifier.classify(mail_with("r.docx", "application", "octet-stream", docx))
    assert verdict.phi and ("patient_name", "attachment:0") in located(verdict)


def test_xlsx_shared_strings_are_read(classifier):
    xlsx = make_xlsx([["Patient", "Code"], ["Harold Finch", "D2740"]])
    verdict = classifier.classify(mail_with("aging.xlsx", "application", "octet-stream", xlsx))
    assert verdict.phi and ("cdt_code", "attachment:0") in located(verdict)


def test_csv_header_labels_its_column(classifier):
    data = make_csv([["Name", "DOB", "Due"], ["Pia Sandoval", "2016-05-02", "sealants"]])
    verdict = classifier.classify(mail_with("recall.csv", "text", "csv", data))
    assert verdict.phi and ("dob", "attachment:0") in located(verdict)


def test_csv_supply_order_is_not_phi(classifier):
    data = make_csv([["sku", "product", "qty"], ["AMX-500", "Amoxicillin 500 mg capsules", "2"]])
    assert not classifier.classify(mail_with("order.csv", "text", "csv", data)).phi


def test_ics_text_is_scanned(classifier):
    ics = (
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Extraction #30 - Henry Vo\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    verdict = classifier.classify(mail_with("block.ics", "text", "calendar", ics))
    assert verdict.phi and ("tooth_number", "attachment:0") in located(verdict)


def test_dicom_is_recognised_by_magic_bytes_whatever_its_name(classifier):
    verdict = classifier.classify(
        mail_with("export.bin", "application", "octet-stream", make_dicom())
    )
    assert verdict.phi and ("dicom", "attachment:0") in located(verdict)


def test_radiograph_image_by_name_needs_a_person(classifier):
    png = make_png()
    with_person = classifier.classify(
        mail_with("bitewing_left.png", "image", "png", png, body="Mrs. Jones, as discussed.")
    )
    anonymous = classifier.classify(
        mail_with("bitewing_left.png", "image", "png", png, body="Nice contrast.")
    )
    logo = classifier.classify(
        mail_with("logo.png", "image", "png", png, body="Mrs. Jones, as discussed.")
    )
    assert with_person.phi and ("radiograph", "attachment:0") in located(with_person)
    assert not anonymous.phi and ("radiograph", "attachment:0") in located(anonymous)
    assert not logo.phi and "radiograph" not in {d for d, _ in located(logo)}


def test_nested_message_is_walked(classifier):
    inner = EmailMessage()
    inner["From"] = "Gwendolyn Price <gwen@mailbox.example>"
    inner["Subject"] = "question"
    inner.set_content("Since the filling my lower left molar is sensitive to cold.")
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = (
        "Desk <d@cedar.example>",
        "Dr <dr@cedar.example>",
        "Fwd",
    )
    outer.set_content("See below.")
    outer.add_attachment(inner)
    verdict = classifier.classify(bytes(outer))
    assert verdict.phi
    assert {("patient_name", "attachment:0"), ("quadrant", "attachment:0")} <= located(verdict)


def test_nested_archives_are_opened_to_the_depth_limit(classifier):
    inner = make_zip({"referral.pdf": make_pdf(REFERRAL)})
    verdict = classifier.classify(
        mail_with("docs.zip", "application", "zip", make_zip({"inner.zip": inner}))
    )
    assert verdict.phi and ("dob", "attachment:0") in located(verdict)

    deep = make_zip({"a.txt": b"nothing here"})
    for _ in range(Budget().max_depth + 1):
        deep = make_zip({"deeper.zip": deep})
    verdict = classifier.classify(mail_with("deep.zip", "application", "zip", deep))
    assert verdict.phi and ("unreadable", "attachment:0") in located(verdict)


def test_zip_bomb_is_bounded_and_fails_closed():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.txt", bytes(8 << 20))
    bomb = buf.getvalue()
    assert len(bomb) < 100_000
    classifier = MessageClassifier(budget=Budget(max_bytes=1 << 20))
    verdict = classifier.classify(mail_with("photos.zip", "application", "zip", bomb))
    assert verdict.phi
    assert ("unreadable", "attachment:0") in located(verdict)
    assert any("size limit" in r for r in verdict.reasons)


def test_corrupt_pdf_fails_closed_with_the_error_type(classifier):
    verdict = classifier.classify(mail_with("x.pdf", "application", "pdf", b"%PDF-1.4\n garbage"))
    assert verdict.phi
    assert verdict.errors and verdict.errors[0].startswith("attachment: ")


def test_html_only_body_is_scanned_as_text(classifier):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = (
        "Dr <dr@cedar.example>",
        "Priya <p@mailbox.example>",
        "x",
    )
    msg.set_content(
        "<p>Priya, the crack in <b>your upper right molar</b> needs a crown.</p>", subtype="html"
    )
    verdict = classifier.classify(bytes(msg))
    assert verdict.phi and ("quadrant", "body") in located(verdict)


def test_attachment_locations_count_leaves_in_order(classifier):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Desk <d@cedar.example>", "Lab <l@lab.example>", "x"
    msg.set_content("Two files.")
    msg.add_attachment(make_png(), maintype="image", subtype="png", filename="logo.png")
    msg.add_attachment(make_pdf(REFERRAL), maintype="application", subtype="pdf", filename="r.pdf")
    verdict = classifier.classify(bytes(msg))
    assert ("dob", "attachment:1") in located(verdict)
