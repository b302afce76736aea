
"""Builds phigate's own labelled PHI test set (``tests/corpus/*.eml`` + ``labels.csv``).

Written independently of ``../shared/corpus/phi-dev``: invented practices, people and
numbers (555 phones, ``.example`` domains, 9xx SSNs), phrased the way front desks,
hygienists, billing staff and dentists write. Positives and hard negatives (fee
schedules, teaching cases, reminders with only a time, vendor and IT mail).
Run ``python -m tests.corpus.build`` to regenerate; the files are committed, and the
attachment makers (PDF, DOCX, XLSX, DICOM, PNG, ZIP) are reused by unit tests.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from email.message import EmailMessage
from pathlib import Path

HERE = Path(__file__).parent

# ------------------------------------------------------------ attachment makers


def make_pdf(lines: list[str]) -> bytes:
    """A one-page PDF (Helvetica text) that pypdf can read."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = (
        "BT /F1 11 Tf 50 750 Td 14 TL " + " ".join(f"({esc(line)}) Tj T*" for line in lines) + " ET"
    )
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        ("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>"),
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def _zip(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def make_docx(paragraphs: list[str]) -> bytes:
    body = "".join(f"<w:p><w:r><w:t>{_xml_escape(p)}</w:t></w:r></w:p>" for p in paragraphs)
    return _zip(
        {
            "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
            'package/2006/content-types"/>',
            "word/document.xml": '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
            f'wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>',
        }
    )


def make_xlsx(rows: list[list[str]]) -> bytes:
    strings: list[str] = []
    cells = []
    for r, row in enumerate(rows, 1):
        refs = []
        for c, value in enumerate(row):
            if value not in strings:
                strings.append(value)
            refs.append(f'<c r="{chr(65 + c)}{r}" t="s"><v>{strings.index(value)}</v></c>')
        cells.append(f'<row r="{r}">{"".join(refs)}</row>')
    shared = "".join(f"<si><t>{_xml_escape(s)}</t></si>" for s in strings)
    return _zip(
        {
            "[Content_Types].xml": "<Types/>",
            "xl/sharedStrings.xml": f'<sst count="{len(strings)}">{shared}</sst>',
            "xl/worksheets/sheet1.xml": f"<worksheet><sheetData>{''.join(cells)}</sheetData></worksheet>",
        }
    )


def make_dicom() -> bytes:
    """Preamble + "DICM" + a couple of (fake) data elements."""
    return bytes(128) + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00\x00\x00\x00\x00" + bytes(64)


def make_png() -> bytes:
    return (
        b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17) + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )


def make_zip(files: dict[str, bytes]) -> bytes:
    return _zip(files)


def make_csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


# ------------------------------------------------------------ messages

CEDAR = ("Renata Oyelaran", "renata@cedarhollowdental.example")  # front desk
CEDAR_DR = ("Dr. Anselm Vik", "avik@cedarhollowdental.example")
CEDAR_BILL = ("Kip Morrow", "billing@cedarhollowdental.example")
CEDAR_RDH = ("Lucy Tran, RDH", "ltran@cedarhollowdental.example")
LAKE = ("Joss Halvorsen", "joss@lakeshorekids.example")


def message(
    frm, to, subject, body, *, html=None, attachments=(), cc=None, headers=None
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"{frm[0]} <{frm[1]}>" if frm[0] else frm[1]
    msg["To"] = ", ".join(f"{n} <{a}>" if n else a for n, a in to)
    if cc:
        msg["Cc"] = ", ".join(f"{n} <{a}>" for n, a in cc)
    msg["Subject"] = subject
    msg["Date"] = "Tue, 04 Mar 2025 10:15:00 -0600"
    msg["Message-ID"] = f"<{zlib.crc32(subject.encode())}.corpus@cedarhollowdental.example>"
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    for filename, maintype, subtype, data in attachments:
        if maintype == "message":
            msg.add_attachment(data)
        else:
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def _nested_patient_mail() -> EmailMessage:
    inner = EmailMessage()
    inner["From"] = "Gwendolyn Price <gwenprice@mailbox.example>"
    inner["To"] = CEDAR[1]
    inner["Subject"] = "question"
    inner.set_content(
        "Hi, since the filling last week my lower left molar hurts when I chew and it's "
        "sensitive to cold. Should I come back in? Thanks, Gwen Price"
    )
    return inner


def corpus() -> list[tuple[str, int, str, str, EmailMessage]]:
    """(file, phi, category, note, message) for every test message."""
    P, N = 1, 0
    items = [
        (
            "own-001.eml",
            P,
            "treatment",
            "hygienist to patient: pocket depths + SRP recommendation",
            message(
                CEDAR_RDH,
                [("Marcus Bell", "mbell77@mailbox.example")],
                "Following up on today's cleaning",
                "Hi Marcus,\n\nThanks for coming in this morning. As I mentioned in the chair, several spots on "
                "your lower right measured 5 and 6 mm, and there was bleeding when I probed. Dr. Vik would like "
                "to do scaling and root planing on that side before it gets worse.\n\nThe front desk will call "
                "to set it up.\n\nLucy",
            ),
        ),
        (
            "own-002.eml",
            P,
            "billing_insurance",
            "predetermination: patient, DOB, subscriber id, codes",
            message(
                CEDAR_BILL,
                [("Predeterminations", "predet@guardianplan.example")],
                "Predetermination request",
                "Please review the attached narrative for predetermination.\n\nPatient: Delia Renfro\n"
                "Date of birth: 03/14/1979\nSubscriber ID: XJ4471920\nProcedures: D2950 core buildup and D2740 "
                "crown, tooth #3 (MOD amalgam fractured, distolingual cusp missing)\n\nKip Morrow\nCedar Hollow "
                "Family Dental billing",
            ),
        ),
        (
            "own-003.eml",
            P,
            "billing_insurance",
            "to patient: claim processed, remaining balance",
            message(
                CEDAR_BILL,
                [("Terrence Oduya", "t.oduya@mailbox.example")],
                "Your statement",
                "Hello Terrence,\n\nYour insurance processed the claim from your 11/02 visit. They paid $212.00 "
                "and your remaining balance is $88.40. You can pay online or over the phone.\n\nKip",
            ),
        ),
        (
            "own-004.eml",
            P,
            "hard_positive",
            "internal: title+surname + loose crown on #19",
            message(
                CEDAR,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "call back",
                "Can you call back Mrs. Okafor when you have a minute? Her crown on #19 is loose again and she "
                "doesn't want to wait until her recall.",
            ),
        ),
        (
            "own-005.eml",
            P,
            "hard_positive",
            "forwarded text: phone number + swelling after extraction",
            message(
                CEDAR,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "FW: after-hours text",
                "This came in on the practice cell last night:\n\nText from 555-201-7789: \"my daughter's face "
                "is swollen on the side where you took the tooth out friday, is that normal?\"\n\nI told her we'd "
                "call first thing.",
            ),
        ),
        (
            "own-006.eml",
            P,
            "referral",
            "DOCX referral with name, DOB, impacted teeth",
            message(
                CEDAR_DR,
                [("Brightwater Oral Surgery", "referrals@brightwateros.example")],
                "Referral",
                "Referral letter attached. Thank you for seeing him.\n\nAnselm Vik, DDS",
                attachments=[
                    (
                        "referral.docx",
                        "application",
                        "vnd.openxmlformats-officedocument.wordprocessingml.document",
                        make_docx(
                            [
                                "Referral for evaluation",
                                "Patient: Owen Castellanos",
                                "DOB 09/30/2004",
                                "Impacted #17 and #32, mesioangular; #1 and #16 erupted.",
                                "Please evaluate for extraction under IV sedation.",
                            ]
                        ),
                    )
                ],
            ),
        ),
        (
            "own-007.eml",
            P,
            "lab_case",
            "XLSX lab pickup sheet: names + teeth + shades",
            message(
                CEDAR,
                [("Keystone Dental Lab", "cases@keystonelab.example")],
                "Pickup Thursday",
                "Pickup sheet for Thursday attached.\n\nRenata",
                attachments=[
                    (
                        "pickup.xlsx",
                        "application",
                        "vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        make_xlsx(
                            [
                                ["Patient", "Tooth", "Restoration", "Shade"],
                                ["Harriet Lumley", "#8", "e.max crown", "A1"],
                                ["Cyrus Benedetto", "#30", "zirconia crown", "A3"],
                            ]
                        ),
                    )
                ],
            ),
        ),
        (
            "own-008.eml",
            P,
            "records_transfer",
            "CSV recall export: names, DOBs, phones, due procedures",
            message(
                CEDAR,
                [("Lakeshore front desk", LAKE[1])],
                "families transferring",
                "Here are the three kids whose families asked us to transfer them to you.",
                attachments=[
                    (
                        "transfer.csv",
                        "text",
                        "csv",
                        make_csv(
                            [
                                ["Name", "DOB", "Phone", "Last visit", "Notes"],
                                [
                                    "Pia Sandoval",
                                    "2016-05-02",
                                    "555-310-2201",
                                    "2024-11-12",
                                    "sealants due",
                                ],
                                [
                                    "Teo Sandoval",
                                    "2018-08-19",
                                    "555-310-2201",
                                    "2024-11-12",
                                    "caries on K, L",
                                ],
                                [
                                    "Amira Haddad",
                                    "2015-01-27",
                                    "555-310-9987",
                                    "2024-10-03",
                                    "ortho consult",
                                ],
                            ]
                        ),
                    )
                ],
            ),
        ),
        (
            "own-009.eml",
            P,
            "hard_positive",
            "forwarded patient e-mail (nested rfc822) with symptoms",
            message(
                CEDAR,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "Fwd: question",
                "See below - can you squeeze her in?",
                attachments=[("", "message", "rfc822", _nested_patient_mail())],
            ),
        ),
        (
            "own-010.eml",
            P,
            "appointment_with_clinical",
            "ICS: extraction of #30 with the patient's name",
            message(
                CEDAR,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "Surgery block",
                "Invite for the surgery block attached.",
                attachments=[
                    (
                        "block.ics",
                        "text",
                        "calendar",
                        (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nDTSTART:20250311T140000Z\r\n"
                        b"SUMMARY:Extraction #30 + bone graft - Henry Vo\r\nLOCATION:Op 2\r\n"
                        b"END:VEVENT\r\nEND:VCALENDAR\r\n"),
                    )
                ],
            ),
        ),
        (
            "own-011.eml",
            P,
            "xray_attachment",
            "radiograph JPEG + possessive first name",
            message(
                CEDAR_DR,
                [("Dr. Imogen Pell", "ipell@harborendo.example")],
                "FMX",
                "Imogen, here is Tran's FMX from today; the periapical on #14 is what worried me.",
                attachments=[("FMX_2025-03-04.png", "image", "png", make_png())],
            ),
        ),
        (
            "own-012.eml",
            P,
            "xray_attachment",
            "DICOM CBCT volume attached",
            message(
                CEDAR_DR,
                [("Dr. Imogen Pell", "ipell@harborendo.example")],
                "CBCT for consult",
                "Volume attached, let me know if it opens.",
                attachments=[("scan.dcm", "application", "dicom", make_dicom())],
            ),
        ),
        (
            "own-013.eml",
            P,
            "referral",
            "ZIP with a referral PDF inside",
            message(
                CEDAR,
                [("Brightwater Oral Surgery", "referrals@brightwateros.example")],
                "documents",
                "Zipped documents attached as requested.",
                attachments=[
                    (
                        "docs.zip",
                        "application",
                        "zip",
                        make_zip(
                            {
                                "referral.pdf": make_pdf(
                                    [
                                        "Patient name: Lorraine Bisset",
                                        "DOB: 12/01/1958",
                                        "Reason: #2 root fracture, extraction",
                                        "Medical: on Eliquis",
                                    ]
                                )
                            }
                        ),
                    )
                ],
            ),
        ),
        (
            "own-014.eml",
            P,
            "billing_insurance",
            "to spouse: possessive + implant + balance",
            message(
                CEDAR_BILL,
                [("Rob Lindqvist", "roblind@mailbox.example")],
                "Linda's account",
                "Hi Rob,\n\nThe balance on Linda's account for her implant crown is $1,150.00 after insurance. "
                "Let me know if you'd like to set up a payment plan.\n\nKip",
            ),
        ),
        (
            "own-015.eml",
            P,
            "records_transfer",
            "medical clearance request: name, DOB, anticoagulant",
            message(
                CEDAR_DR,
                [("Dr. Ruth Abernathy", "rabernathy@westsideclinic.example")],
                "Mutual patient",
                "Dr. Abernathy,\n\nOur mutual patient Gerald Hutchins (DOB 7/2/1951) is scheduled for three "
                "extractions next week. He tells us he takes warfarin. Could you send his latest INR and let us "
                "know whether he can stop it for two days?\n\nThank you,\nAnselm Vik, DDS",
            ),
        ),
        (
            "own-016.eml",
            P,
            "treatment",
            "premedication question: patient label + hip replacement",
            message(
                CEDAR_RDH,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "premed?",
                "Quick one: patient Ruth Ellison had a hip replacement last spring. Does she need antibiotic "
                "prophylaxis before her cleaning on Friday?",
            ),
        ),
        (
            "own-017.eml",
            P,
            "hard_positive",
            "internal: first name + broken temporary + time",
            message(
                CEDAR,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "2pm",
                "Jasmine called - the temporary crown on her front tooth broke at lunch. I put her in at 2.",
            ),
        ),
        (
            "own-018.eml",
            P,
            "treatment",
            "parent: child's possessive name + braces problem",
            message(
                LAKE,
                [("Nadia Fox", "nadiafox@mailbox.example")],
                "Aiden's appointment",
                "Hi Nadia,\n\nA quick note about Aiden's braces: one of the brackets on his upper left is loose, "
                "so we'll rebond it on Thursday instead of changing the archwire.\n\nJoss",
            ),
        ),
        (
            "own-019.eml",
            P,
            "billing_insurance",
            "statement: patient label + balance + account",
            message(
                CEDAR_BILL,
                [("Accounts", "accounts@collectionsplus.example")],
                "Account placed",
                "Placing the following account with you per our agreement:\n\nPatient: Nora Blaise\n"
                "Account 20931\nBalance: $340.00 (D3310 anterior root canal, 06/2024)\n",
            ),
        ),
        (
            "own-020.eml",
            P,
            "treatment",
            "internal chart note: Pt label + BOP + quadrant + D4342",
            message(
                CEDAR_RDH,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "perio",
                "Pt Kimberly Loh: generalized BOP, 5 mm pockets UL, bone loss on the BWX. I'd recommend D4342 "
                "for the UL quadrant and a 3-month recall.",
            ),
        ),
        (
            "own-021.eml",
            P,
            "hard_positive",
            "to patient by greeting: sensitivity after a filling",
            message(
                CEDAR_DR,
                [("Sam Whitcombe", "samw@mailbox.example")],
                "checking in",
                "Hi Sam,\n\nSorry to hear the sensitivity hasn't settled down. Give it another week with "
                "Sensodyne, and we'll check the bite on that filling Thursday if it's still bothering.\n\nDr. Vik",
            ),
        ),
        (
            "own-022.eml",
            P,
            "hard_positive",
            "subject only: full name + biopsy",
            message(
                CEDAR_DR,
                [("Dr. Imogen Pell", "ipell@harborendo.example")],
                "Jane Whitaker - biopsy results",
                "Attached as discussed.\n",
            ),
        ),
        (
            "own-023.eml",
            P,
            "identifiers_only",
            "Medicaid ID + name for eligibility",
            message(
                CEDAR_BILL,
                [("Eligibility desk", "elig@statemedicaid.example")],
                "eligibility check",
                "Please confirm eligibility for Lila Grant, Medicaid ID 88231904A, born 01/05/2011.",
            ),
        ),
        (
            "own-024.eml",
            P,
            "treatment",
            "HTML-only message to patient about a cracked tooth",
            message(
                CEDAR_DR,
                [("Priya Raman", "priya.r@mailbox.example")],
                "Your tooth",
                "Priya, the crack in your upper right molar runs under the filling; a crown is the safest fix.",
                html="<html><body><p>Priya,</p><p>The crack in <b>your upper right molar</b> runs under the "
                "filling; a crown is the safest fix before it splits.</p><p>Dr.&nbsp;Vik</p></body></html>",
            ),
        ),
        (
            "own-025.eml",
            P,
            "lab_case",
            "subject Last, First + denture try-in",
            message(
                CEDAR_DR,
                [("Keystone Dental Lab", "cases@keystonelab.example")],
                "Moreno, Elena - upper denture",
                "Wax try-in went fine, please process. Midline is marked on the model.",
            ),
        ),
        (
            "own-026.eml",
            P,
            "treatment",
            "to patient: biopsy of lesion came back benign",
            message(
                CEDAR_DR,
                [("Harold Stipe", "hstipe@mailbox.example")],
                "Good news",
                "Harold,\n\nThe biopsy of the lesion on your tongue came back benign. We'll keep an eye on it at "
                "your next exam.\n\nAnselm Vik",
            ),
        ),
        (
            "own-027.eml",
            P,
            "billing_insurance",
            "XLSX aging report: names + codes + amounts",
            message(
                CEDAR_BILL,
                [("Office manager", "manager@cedarhollowmgmt.example")],
                "Aging report",
                "Insurance aging over 60 days attached.",
                attachments=[
                    (
                        "aging.xlsx",
                        "application",
                        "vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        make_xlsx(
                            [
                                ["Patient", "Code", "Billed", "Days"],
                                ["Harold Finch", "D2740", "1352.00", "74"],
                                ["Maya Ortiz", "D4341", "260.00", "63"],
                            ]
                        ),
                    )
                ],
            ),
        ),
        (
            "own-028.eml",
            P,
            "hard_positive",
            "internal: guardian label + child + pulpotomy",
            message(
                LAKE,
                [("Scheduling", "schedule@lakeshorekids.example")],
                "consent",
                "Parent: Hannah Cole signed the consent today; Ethan needs the pulpotomy on L next visit "
                "with nitrous.",
            ),
        ),
        (
            "own-029.eml",
            P,
            "identifiers_only",
            "claim form PDF in capitals: name, DOB, SSN",
            message(
                CEDAR_BILL,
                [("Claims", "claims@unitedbenefit.example")],
                "Resubmission",
                "Corrected claim form attached.",
                attachments=[
                    (
                        "claim.pdf",
                        "application",
                        "pdf",
                        make_pdf(
                            [
                                "PATIENT NAME: HOLLOWAY, GRACE",
                                "DOB: 04/22/1966",
                                "SSN: 912-44-0193",
                                "D0220 periapical first film",
                                "D3330 endodontic therapy molar #14",
                            ]
                        ),
                    )
                ],
            ),
        ),
        # -------------------------------------------------------------- negatives
        (
            "own-030.eml",
            N,
            "hard_negative",
            "fee schedule to insurer network; practice NPI, no patient",
            message(
                CEDAR_BILL,
                [("Provider relations", "network@guardianplan.example")],
                "2025 fee schedule",
                "Attached is our 2025 fee schedule for the network renewal.\n\nBilling NPI 1234567893\n\n"
                "D0120 periodic oral evaluation  $62\nD0274 bitewings four films  $78\nD1110 prophylaxis adult  "
                "$118\nD2391 resin one surface posterior  $182\nD2740 crown porcelain/ceramic  $1,290\n",
            ),
        ),
        (
            "own-031.eml",
            N,
            "hard_negative",
            "study club case presentation, no identifiable person",
            message(
                CEDAR_DR,
                [("Study club", "members@northshorestudy.example")],
                "March case night",
                "Case presentation for March: a 45-year-old male presented with peri-implantitis around #30, "
                "6 mm pockets and suppuration, treated with implantoplasty and a bone graft. Bring your own "
                "cases for discussion.",
            ),
        ),
        (
            "own-032.eml",
            N,
            "scheduling_no_clinical",
            "reminder with time, place, doctor only",
            message(
                CEDAR,
                [("Greg Holm", "gholm@mailbox.example")],
                "Reminder",
                "Hi Greg, reminder of your appointment on Tuesday 3/11 at 10:00 with Dr. Vik at 412 Cedar Hollow "
                "Rd. Reply C to confirm.",
            ),
        ),
        (
            "own-033.eml",
            N,
            "scheduling_no_clinical",
            "recall reminder: due for a checkup, no findings",
            message(
                CEDAR,
                [("Amy Castro", "amycastro@mailbox.example")],
                "Time for your checkup",
                "Hi Amy, it's been six months - time for your checkup and cleaning! Call us or book online.",
            ),
        ),
        (
            "own-034.eml",
            N,
            "vendor",
            "supply invoice: account, balance, dental materials",
            message(
                CEDAR_BILL,
                [("Accounts receivable", "ar@summitsupply.example")],
                "Invoice 88213",
                "Hello,\n\nWe received invoice 88213 for account 4471 (balance due $1,204.50) covering nitrile "
                "gloves, composite refills and prophy angles. Payment goes out Friday.\n\nKip",
            ),
        ),
        (
            "own-035.eml",
            N,
            "vendor",
            "credentialing update for a dentist (NPI), no patient",
            message(
                CEDAR,
                [("Credentialing", "credentialing@guardianplan.example")],
                "Provider update",
                "Please add Dr. Lena Park to our group. NPI 1245319599, license DE-44871, start date 04/01/2025.",
            ),
        ),
        (
            "own-036.eml",
            N,
            "it_support",
            "imaging software ticket; IP address",
            message(
                CEDAR,
                [("Support", "support@itpartners.example")],
                "x-ray sensor",
                "The x-ray sensor on Op 3 stopped working after last night's update; the imaging PC is "
                "192.168.1.20. Radiographs still open on Op 1.",
            ),
        ),
        (
            "own-037.eml",
            N,
            "marketing",
            "single recipient marketing: Invisalign, same-day crowns",
            message(
                CEDAR,
                [("Paula Greer", "pgreer@mailbox.example")],
                "New at Cedar Hollow",
                "Hi Paula,\n\nWe now offer Invisalign and same-day crowns! Book a free consultation this "
                "month.\n\nCedar Hollow Family Dental",
            ),
        ),
        (
            "own-038.eml",
            N,
            "newsletter",
            "patient-education list mail: post-extraction care",
            message(
                CEDAR,
                [("Cedar Hollow Patients", "news@cedarhollowdental.example")],
                "Aftercare tips",
                "After an extraction: bite on gauze for 30 minutes, expect some swelling for two days, and take "
                "ibuprofen 600 mg as directed. Call us if bleeding continues.",
                headers={"List-Unsubscribe": "<mailto:unsubscribe@cedarhollowdental.example>"},
            ),
        ),
        (
            "own-039.eml",
            N,
            "hard_negative",
            "dental school case report with initials only",
            message(
                CEDAR_DR,
                [("Editor", "editor@dentaljournal.example")],
                "Case report draft",
                "Case report: Mr. X, 62, presented with a draining fistula on #19 and a periapical "
                "radiolucency. Root canal therapy was completed and the lesion healed in 12 months.",
            ),
        ),
        (
            "own-040.eml",
            N,
            "personal",
            "staff member's own dental work to a friend",
            message(
                ("Renata Oyelaran", "renata.o@mailbox.example"),
                [("Bea", "bea.k@mailbox.example")],
                "ugh",
                "My root canal is tomorrow, wish me luck. Dinner Saturday still on?",
            ),
        ),
        (
            "own-041.eml",
            N,
            "vendor",
            "insurer bulletin about frequency limits for a code",
            message(
                CEDAR_BILL,
                [("Office manager", "manager@cedarhollowmgmt.example")],
                "FW: plan update",
                "FYI from the carrier: frequency limitation for D4910 changes to 4 per year effective January 1. "
                "Claims already submitted are not affected.",
            ),
        ),
        (
            "own-042.eml",
            N,
            "staff_internal_nonphi",
            "aggregate monthly production, no person",
            message(
                CEDAR,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "February numbers",
                "February: 42 extractions, 18 implants placed, 3 biopsies; collections $182,400. New patients: 61.",
            ),
        ),
        (
            "own-043.eml",
            N,
            "staff_internal_nonphi",
            "calendar invite for staff training on perio charting",
            message(
                CEDAR,
                [("Team", "team@cedarhollowdental.example")],
                "Training",
                "Training on the new perio charting software Thursday at noon. Lunch provided.",
                attachments=[
                    (
                        "training.ics",
                        "text",
                        "calendar",
                        (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Perio charting software training\r\n"
                        b"LOCATION:Break room\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
                    )
                ],
            ),
        ),
        (
            "own-044.eml",
            N,
            "vendor",
            "handpiece repair: serial, RMA, street address",
            message(
                CEDAR,
                [("Repairs", "repairs@handpiecepro.example")],
                "Repair",
                "Sending the high-speed handpiece, serial 7734-221, RMA 55612. Please ship it back to "
                "412 Cedar Hollow Rd, Suite 200 when done.",
            ),
        ),
        (
            "own-045.eml",
            N,
            "staff_internal_nonphi",
            "thank-you to a referring office manager",
            message(
                CEDAR,
                [("Ms. Dolores Rivera", "drivera@harborendo.example")],
                "Thank you",
                "Ms. Rivera, thank you for the fruit basket! The whole team enjoyed it.",
            ),
        ),
        (
            "own-046.eml",
            N,
            "marketing",
            "portal announcement to a patient, nothing about their care",
            message(
                CEDAR,
                [("Ken Ishida", "kishida@mailbox.example")],
                "Our new patient portal",
                "Hi Ken, you can now view your treatment plans and x-rays in our patient portal and pay online. "
                "Log in with your e-mail address.",
            ),
        ),
        (
            "own-047.eml",
            N,
            "hard_negative",
            "typodont training radiograph, file named like a patient image",
            message(
                CEDAR_RDH,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "my practice pano",
                "Here's my practice pano on the manikin head for my certification. Positioning looks better?",
                attachments=[("pano_practice.png", "image", "png", make_png())],
            ),
        ),
        (
            "own-048.eml",
            N,
            "vendor",
            "supply order CSV including an antibiotic SKU, no patient",
            message(
                CEDAR,
                [("Orders", "orders@summitsupply.example")],
                "Order",
                "Order attached, customer account 55123.",
                attachments=[
                    (
                        "order.csv",
                        "text",
                        "csv",
                        make_csv(
                            [
                                ["sku", "product", "qty"],
                                ["AMX-500", "Amoxicillin 500 mg capsules, 100ct", "2"],
                                ["GLV-M", "Nitrile gloves M", "10"],
                            ]
                        ),
                    )
                ],
            ),
        ),
        (
            "own-049.eml",
            N,
            "it_support",
            "phone system: office numbers and extensions",
            message(
                CEDAR,
                [("Support", "support@itpartners.example")],
                "phones",
                "Main line (555) 410-2000 should ring the front desk first, then billing ext 204. Fax is "
                "(555) 410-2001.",
            ),
        ),
        # -------------------------------------------------------------- second batch (mixed)
        (
            "own-050.eml",
            P,
            "appointment_with_clinical",
            "reminder naming the procedure: root canal",
            message(
                CEDAR,
                [("Wen Zhao", "wzhao@mailbox.example")],
                "Tomorrow",
                "Hi Wen, just a reminder that your root canal with Dr. Pell is tomorrow at 8:30. Eat a good "
                "breakfast beforehand.",
            ),
        ),
        (
            "own-051.eml",
            P,
            "hard_positive",
            "internal: first name + 'is in pain' + day",
            message(
                CEDAR,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "Marco",
                "Marco's mom called again, he's in a lot of pain from that lower molar. Can you see him "
                "Wednesday morning?",
            ),
        ),
        (
            "own-052.eml",
            P,
            "billing_insurance",
            "payment receipt to patient",
            message(
                CEDAR_BILL,
                [("Tom Ferris", "tferris@mailbox.example")],
                "Receipt",
                "Hi Tom,\n\nThanks - we received your payment of $250.00 toward the bridge. Your remaining "
                "balance is $410.00.\n\nKip",
            ),
        ),
        (
            "own-053.eml",
            P,
            "lab_case",
            "lab note: case for surname + shade + teeth",
            message(
                CEDAR_DR,
                [("Keystone Dental Lab", "cases@keystonelab.example")],
                "Case update",
                "Case for Pemberton: please make #7 and #10 a touch lighter, shade B1. Seat date is the 14th.",
            ),
        ),
        (
            "own-054.eml",
            P,
            "records_transfer",
            "records request reply: name + DOB + chart",
            message(
                CEDAR,
                [("Records", "records@harborendo.example")],
                "Records",
                "Records for Ian Castellano (DOB 11/09/1990) are attached: last FMX and the perio chart.",
            ),
        ),
        (
            "own-055.eml",
            P,
            "referral",
            "referral: name + age + diagnosis, no codes",
            message(
                CEDAR_DR,
                [("Dr. Imogen Pell", "ipell@harborendo.example")],
                "Referral",
                "Imogen,\n\nWould you see Beatrix Olawale, 52, for a second opinion? Lingering pain on the "
                "upper left after a crown last month, possibly a cracked root.\n\nAnselm",
            ),
        ),
        (
            "own-056.eml",
            P,
            "treatment",
            "patient e-mail reply quoted below practice answer",
            message(
                CEDAR_DR,
                [("Noor Haddad", "noor.h@mailbox.example")],
                "Re: swelling",
                "Noor, warm salt water rinses and keep taking the amoxicillin until it's gone. If the swelling "
                "spreads, call right away.\n\nOn Mon, Noor Haddad wrote:\n> my cheek is puffy since yesterday\n",
            ),
        ),
        (
            "own-057.eml",
            P,
            "identifiers_only",
            "insurance card details forwarded internally",
            message(
                CEDAR,
                [("Kip Morrow", CEDAR_BILL[1])],
                "new insurance",
                "Walt Kieran switched plans. New card: Aetna, member ID W55410291, group 88120, subscriber is "
                "his wife Dana Kieran, DOB 06/12/1972.",
            ),
        ),
        (
            "own-058.eml",
            P,
            "xray_attachment",
            "radiograph attached, surname in body",
            message(
                CEDAR_DR,
                [("Dr. Imogen Pell", "ipell@harborendo.example")],
                "PA for Thursday",
                "PA of the lower right for Mr. Abernethy, who sees you Thursday.",
                attachments=[("PA_LR.jpg", "image", "jpeg", make_png())],
            ),
        ),
        (
            "own-059.eml",
            P,
            "hard_positive",
            "voicemail transcript: phone + symptom",
            message(
                CEDAR,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "voicemail",
                "Voicemail 7:42 AM, callback number 555-382-1190: \"my husband's filling fell out and he has a "
                'sharp edge cutting his tongue"',
            ),
        ),
        (
            "own-060.eml",
            P,
            "treatment",
            "post-op check to patient, no codes",
            message(
                CEDAR_DR,
                [("Delphine Okoro", "dokoro@mailbox.example")],
                "How are you feeling?",
                "Hi Delphine, checking in after yesterday's extraction. A little oozing is normal, but if you "
                "still have bleeding tonight, bite on a tea bag for 30 minutes.",
            ),
        ),
        (
            "own-061.eml",
            N,
            "newsletter",
            "newsletter staff bio with clinical words",
            message(
                CEDAR,
                [("Cedar Hollow Patients", "news@cedarhollowdental.example")],
                "Meet our team",
                "Meet our new hygienist, Sarah Lopez! Sarah loves helping anxious patients feel at home and has "
                "a special interest in periodontal disease and implants.",
                headers={"List-Unsubscribe": "<mailto:unsubscribe@cedarhollowdental.example>"},
            ),
        ),
        (
            "own-062.eml",
            N,
            "marketing",
            "implant consultation offer to one recipient",
            message(
                CEDAR,
                [("Lou Baptiste", "lbaptiste@mailbox.example")],
                "Free implant consultation",
                "Hi Lou, missing a tooth? Book your implant consultation this month and get a free 3D scan.",
            ),
        ),
        (
            "own-063.eml",
            N,
            "vendor",
            "CareCredit patient financing vendor mail",
            message(
                CEDAR,
                [("CareCredit rep", "rep@carecredit.example")],
                "Patient Financing brochures",
                "Please send 50 more Patient Financing brochures; patients ask about them for crowns and "
                "implants.",
            ),
        ),
        (
            "own-064.eml",
            N,
            "staff_internal_nonphi",
            "staff schedule with colleague names and procedures",
            message(
                CEDAR,
                [("Team", "team@cedarhollowdental.example")],
                "Next week",
                "Next week: Maria covers hygiene Tuesday, so the SRP block moves to Thursday. Dr. Vik is out "
                "Friday; crown seats go to Monday.",
            ),
        ),
        (
            "own-065.eml",
            N,
            "hard_negative",
            "quiz with an example patient",
            message(
                CEDAR_DR,
                [("Team", "team@cedarhollowdental.example")],
                "Coding quiz",
                "Quiz: an example patient needs a crown on #30 after a root canal. Which codes apply: D2740, "
                "D2950, D3330? Answers Friday.",
            ),
        ),
        (
            "own-066.eml",
            N,
            "scheduling_no_clinical",
            "ICS invite to patient with address only",
            message(
                CEDAR,
                [("Omar Reyes", "oreyes@mailbox.example")],
                "Your visit",
                "Hi Omar, the invite for your visit is attached.",
                attachments=[
                    (
                        "visit.ics",
                        "text",
                        "calendar",
                        (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Cedar Hollow visit\r\n"
                        b"LOCATION:412 Cedar Hollow Rd\r\nDTSTART:20250312T150000Z\r\n"
                        b"END:VEVENT\r\nEND:VCALENDAR\r\n"),
                    )
                ],
            ),
        ),
        (
            "own-067.eml",
            N,
            "it_support",
            "backup failure on the imaging server",
            message(
                CEDAR,
                [("Support", "support@itpartners.example")],
                "Backup failed",
                "Last night's backup of the imaging server failed again (error 0x80070005). Patient x-rays "
                "are on that drive, so please look today.",
            ),
        ),
        (
            "own-068.eml",
            N,
            "personal",
            "staff personal mail mentioning dentist family",
            message(
                ("Lucy Tran", "lucy.tran@mailbox.example"),
                [("Mom", "mom.tran@mailbox.example")],
                "Sunday",
                "Mom, Sunday dinner works. I'll bring the pie. Tell Dad his tooth can wait until Monday!",
            ),
        ),
        (
            "own-069.eml",
            N,
            "vendor",
            "lab invoice without patient names",
            message(
                CEDAR_BILL,
                [("Keystone billing", "billing@keystonelab.example")],
                "Statement question",
                "Our February statement from you shows 14 zirconia crowns and 3 dentures; we count 13 crowns. "
                "Can you check invoice 5521?",
            ),
        ),
        (
            "own-070.eml",
            N,
            "marketing",
            "review request to a patient, no clinical content",
            message(
                CEDAR,
                [("Ines Dubois", "ines.d@mailbox.example")],
                "How did we do?",
                "Hi Ines, thanks for visiting Cedar Hollow! Would you leave us a quick review? It helps other "
                "families find us.",
            ),
        ),
        # -------------------------------------------------------------- third batch (mixed)
        (
            "own-071.eml",
            P,
            "appointment_with_clinical",
            "internal schedule lines: time, first name, procedure",
            message(
                CEDAR,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "Tomorrow",
                "Tomorrow:\n8:00 Rosalind - crown prep #14\n9:30 Pieter - extraction #1, #16\n11:00 open\n",
            ),
        ),
        (
            "own-072.eml",
            P,
            "billing_insurance",
            "EOB question to insurer: patient + claim + DOS",
            message(
                CEDAR_BILL,
                [("Provider services", "provider@unitedbenefit.example")],
                "EOB question",
                "The EOB for Francesca Milano, claim 7781002341, DOS 01/22/2025 shows D4341 denied as "
                "frequency. Her last SRP was in 2021. Please reprocess.",
            ),
        ),
        (
            "own-073.eml",
            P,
            "treatment",
            "to patient: night guard for grinding",
            message(
                CEDAR_DR,
                [("Yusuf Amari", "yamari@mailbox.example")],
                "Night guard",
                "Yusuf, the wear on your lower front teeth is from grinding at night. Your night guard will be "
                "ready next Tuesday.",
            ),
        ),
        (
            "own-074.eml",
            P,
            "identifiers_only",
            "portal account: name, DOB, email, phone",
            message(
                CEDAR,
                [("Portal support", "help@portalvendor.example")],
                "account merge",
                "Please merge the duplicate portal accounts for Rhea Castellanos, date of birth 5/30/1988, "
                "email rhea.castellanos@mailbox.example, mobile 555-710-4432.",
            ),
        ),
        (
            "own-075.eml",
            P,
            "hard_positive",
            "subject-only name, body only clinical",
            message(
                CEDAR_RDH,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "Ottoline Frey",
                "Heavy calculus lower anterior, 4-5 mm pockets, BOP throughout. Recommend full mouth "
                "debridement first.",
            ),
        ),
        (
            "own-076.eml",
            P,
            "records_transfer",
            "PDF chart notes from a bigger record, nothing in body",
            message(
                CEDAR,
                [("Records", "records@harborendo.example")],
                "as requested",
                "",
                attachments=[
                    (
                        "notes.pdf",
                        "application",
                        "pdf",
                        make_pdf(
                            [
                                "Progress notes",
                                "Pt: Vasquez, Teodoro   Chart 00482",
                                "03/02/2025 #19 MOD composite, pt tolerated well",
                                "Rx ibuprofen 600 mg",
                            ]
                        ),
                    )
                ],
            ),
        ),
        (
            "own-077.eml",
            N,
            "vendor",
            "sales rep by title with equipment words",
            message(
                CEDAR,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "oven demo",
                "Mr. Lopez from Henry Schein will bring the new crown oven and the implant motor for a demo "
                "on Friday at noon.",
            ),
        ),
        (
            "own-078.eml",
            N,
            "vendor",
            "insurance rep conversation about policy, no patient",
            message(
                CEDAR_BILL,
                [("Office manager", "manager@cedarhollowmgmt.example")],
                "Delta call",
                "Spoke with Mrs. Grant at Delta about their downgrade policy on posterior composites; it "
                "applies to all PPO plans from July.",
            ),
        ),
        (
            "own-079.eml",
            N,
            "marketing",
            "birthday greeting with an offer",
            message(
                CEDAR,
                [("Jade Morin", "jade.morin@mailbox.example")],
                "Happy birthday!",
                "Happy birthday, Jade! Enjoy a free electric toothbrush at your next cleaning - offer valid "
                "until 3/31/2025.",
            ),
        ),
        (
            "own-080.eml",
            N,
            "it_support",
            "practice software question mentions patient record screen",
            message(
                CEDAR,
                [("Support", "support@itpartners.example")],
                "Dentrix",
                "When we open a patient's perio chart in Dentrix the screen freezes for 30 seconds. Started "
                "after Tuesday's update.",
            ),
        ),
        (
            "own-081.eml",
            N,
            "staff_internal_nonphi",
            "staff welcome with role and clinical duties",
            message(
                CEDAR,
                [("Team", "team@cedarhollowdental.example")],
                "Welcome Maria",
                "Please welcome Maria Lopez, our new dental assistant! Maria will assist Dr. Vik with implants "
                "and extractions on Tuesdays.",
            ),
        ),
        (
            "own-082.eml",
            N,
            "hard_negative",
            "CE lecture notes with anonymous cases",
            message(
                CEDAR_DR,
                [("Dr. Imogen Pell", "ipell@harborendo.example")],
                "Lecture notes",
                "Notes from Saturday's lecture: a 30-year-old patient with a cracked #19 had pain on release; "
                "a 65-year-old on bisphosphonates needed #30 extracted. Speaker recommended CBCT before both.",
            ),
        ),
        # -------------------------------------------------------------- fourth batch (regressions)
        (
            "own-083.eml",
            P,
            "hard_positive",
            "internal: full name + latex allergy",
            message(
                CEDAR,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "heads up",
                "FYI Jorge Ruiz is allergic to latex - please use the nitrile dam for his fillings tomorrow.",
            ),
        ),
        (
            "own-084.eml",
            P,
            "hard_positive",
            "internal: full name + pregnancy",
            message(
                CEDAR_RDH,
                [("Dr. Anselm Vik", CEDAR_DR[1])],
                "no x-rays",
                "Ana Flores is 20 weeks pregnant, so I skipped the bitewings today.",
            ),
        ),
        (
            "own-085.eml",
            P,
            "treatment",
            "ortho parent note: possessive + expander",
            message(
                LAKE,
                [("Carmen Ito", "carmen.ito@mailbox.example")],
                "Expander",
                "Hi Carmen, Liam's expander needs two more turns this week, then we'll hold it there.",
            ),
        ),
        (
            "own-086.eml",
            N,
            "scheduling_no_clinical",
            "new-patient reminder: forms, medication list, insurance card",
            message(
                CEDAR,
                [("Omar Reyes", "oreyes@mailbox.example")],
                "Welcome",
                "Hi Omar, welcome to Cedar Hollow! Please arrive 15 minutes early to fill out your medical history "
                "form, and bring a list of your medications and your insurance card. See you Tuesday at 9.",
            ),
        ),
        (
            "own-087.eml",
            N,
            "marketing",
            "sedation marketing to one recipient",
            message(
                CEDAR,
                [("Ken Ishida", "kishida@mailbox.example")],
                "Nervous about the dentist?",
                "Hi Ken, our new sedation options make your visit pain-free. Ask about it at your next cleaning!",
            ),
        ),
        (
            "own-088.eml",
            N,
            "vendor",
            "anesthetic order with ship-to address",
            message(
                CEDAR,
                [("Orders", "orders@summitsupply.example")],
                "Order",
                "Please send 4 boxes of lidocaine 2% with epi and 2 boxes of articaine. Ship to 412 Cedar Hollow "
                "Rd, attention Renata. Account 55123.",
            ),
        ),
        # -------------------------------------------------------------- fifth batch (blind probes)
        (
            "own-089.eml",
            P,
            "referral",
            "endo referral letter in HTML with table",
            message(
                CEDAR_DR,
                [("Harbor Endodontics", "frontdesk@harborendo.example")],
                "Endo referral",
                "Referral for endodontic evaluation.",
                html="<html><body><table><tr><td>Patient</td><td>Winifred Osei</td></tr><tr><td>Tooth</td>"
                "<td>#30</td></tr><tr><td>Symptoms</td><td>lingering cold, tender to biting</td></tr>"
                "</table></body></html>",
            ),
        ),
        (
            "own-090.eml",
            P,
            "billing_insurance",
            "collections note with last, first and balance",
            message(
                CEDAR_BILL,
                [("Office manager", "manager@cedarhollowmgmt.example")],
                "past due list",
                "Past due over 90 days:\nAshworth, Corin - $412.50 (crown #4)\nBelmonte, Lia - $96.00\n",
            ),
        ),
        (
            "own-091.eml",
            P,
            "treatment",
            "to patient: sensitivity after whitening, no greeting",
            message(
                CEDAR_RDH,
                [("Petra Lund", "petra.lund@mailbox.example")],
                "Re: whitening",
                "Sorry the whitening made your teeth so sensitive! Use the desensitizing gel for a few days "
                "and skip the trays until it settles.",
            ),
        ),
        (
            "own-092.eml",
            P,
            "lab_case",
            "lab RX in DOCX with patient and teeth",
            message(
                CEDAR_DR,
                [("Keystone Dental Lab", "cases@keystonelab.example")],
                "New case",
                "Rx attached; models go out with UPS today.",
                attachments=[
                    (
                        "rx.docx",
                        "application",
                        "vnd.openxmlformats-officedocument.wordprocessingml.document",
                        make_docx(
                            [
                                "LAB PRESCRIPTION",
                                "Patient: Thaddeus Kwon",
                                "Teeth: #19 #20 #21 bridge, PFZ",
                                "Shade: A2   Due: 03/18/2025",
                            ]
                        ),
                    )
                ],
            ),
        ),
        (
            "own-093.eml",
            P,
            "hard_positive",
            "internal chat-like: first name + possessive + pain",
            message(
                CEDAR,
                [("Lucy Tran", CEDAR_RDH[1])],
                "quick q",
                "did Imani's sensitivity get better after the fluoride? her mom is asking",
            ),
        ),
        (
            "own-094.eml",
            P,
            "identifiers_only",
            "CSV export of patients with birth dates",
            message(
                CEDAR,
                [("Marketing vendor", "lists@smilemailers.example")],
                "mailing list",
                "Here is our patient list for the postcard mailing.",
                attachments=[
                    (
                        "patients.csv",
                        "text",
                        "csv",
                        make_csv(
                            [
                                ["First", "Last", "Birthdate", "Street", "City"],
                                ["Odile", "Marsh", "1975-02-11", "18 Quarry Ln", "Cedar Hollow"],
                                ["Quentin", "Abara", "1990-09-30", "7 Mill Rd", "Cedar Hollow"],
                            ]
                        ),
                    )
                ],
            ),
        ),
        (
            "own-095.eml",
            P,
            "appointment_with_clinical",
            "confirmation mentioning implant surgery",
            message(
                CEDAR,
                [("Ruben Salgado", "rsalgado@mailbox.example")],
                "Confirmed",
                "Ruben, you're confirmed for implant surgery on Monday at 7:30. Don't eat after midnight and "
                "take the amoxicillin an hour before.",
            ),
        ),
        (
            "own-096.eml",
            N,
            "vendor",
            "dental lab price list with CDT-like codes",
            message(
                ("Keystone Dental Lab", "sales@keystonelab.example"),
                [("Renata Oyelaran", CEDAR[1])],
                "2025 prices",
                "Our 2025 prices: zirconia crown $129, e.max crown $149, PFM bridge unit $119, night guard $79. "
                "Implant abutments quoted per case.",
            ),
        ),
        (
            "own-097.eml",
            N,
            "staff_internal_nonphi",
            "staff member's own appointment",
            message(
                CEDAR_RDH,
                [("Renata Oyelaran", CEDAR[1])],
                "Thursday",
                "I have my own dentist appointment Thursday at 3 (finally getting that crown), so please don't "
                "book anyone in my chair after 2:30.",
            ),
        ),
        (
            "own-098.eml",
            N,
            "newsletter",
            "study club mailing with clinical topics and a speaker",
            message(
                CEDAR_DR,
                [("Northshore Study Club", "members@northshorestudy.example")],
                "April meeting",
                "April meeting: Dr. Hale on managing peri-implantitis, plus a hands-on on suturing. "
                "Dinner at 6, lecture at 7.",
            ),
        ),
        (
            "own-099.eml",
            N,
            "it_support",
            "imaging software license with serials",
            message(
                CEDAR,
                [("Licensing", "licensing@imagingsoft.example")],
                "Renewal",
                "Please renew our pano/CBCT viewer license, key AX44-19QZ-77LM, for 3 workstations.",
            ),
        ),
        (
            "own-100.eml",
            N,
            "scheduling_no_clinical",
            "reschedule message to patient, time only",
            message(
                CEDAR,
                [("Felix Moreau", "felixm@mailbox.example")],
                "Change of time",
                "Hi Felix, Dr. Vik is running late on Thursday - could you come at 4:00 instead of 3:30?",
            ),
        ),
        (
            "own-101.eml",
            N,
            "hard_negative",
            "patient education handout PDF to a patient, generic",
            message(
                CEDAR,
                [("Gail Stern", "gstern@mailbox.example")],
                "The flossing handout",
                "Hi Gail, here is the flossing handout you asked for at the front desk.",
                attachments=[
                    (
                        "flossing.pdf",
                        "application",
                        "pdf",
                        make_pdf(
                            [
                                "How to floss",
                                "Use about 18 inches of floss.",
                                "Curve it around each tooth.",
                                "Bleeding gums often improve after a week of daily flossing.",
                            ]
                        ),
                    )
                ],
            ),
        ),
        (
            "own-102.eml",
            N,
            "marketing",
            "recall nudge with health education, greeting by name",
            message(
                CEDAR,
                [("Amy Castro", "amycastro@mailbox.example")],
                "We miss you",
                "Hi Amy, it's been a while! Regular cleanings help prevent gum disease and cavities, and "
                "catching problems early keeps treatment simple. Book online any time.",
            ),
        ),
        (
            "own-103.eml",
            P,
            "treatment",
            "greeting + finding in the same short note",
            message(
                CEDAR_DR,
                [("Amy Castro", "amycastro@mailbox.example")],
                "Your x-rays",
                "Hi Amy, I looked at the x-rays from Tuesday: there is a small cavity between two back teeth "
                "on the left. Nothing urgent, but let's fill it this spring.",
            ),
        ),
    ]
    return items


def main() -> None:
    """Write the own-NNN files; labels.csv for the whole corpus comes from ``author``."""
    from tests.corpus import author

    for name, _, _, _, msg in corpus():
        (HERE / name).write_bytes(bytes(msg))
    author.main()


if __name__ == "__main__":
    main()
