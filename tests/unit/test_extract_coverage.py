"""Coverage of the classifier: every place a person or a client can see is read, and what
cannot be read (a broken MIME tree, an unknown encoding, a limit, an encrypted or unsupported
file) is reported as an ``unreadable`` finding that makes the message PHI."""

from __future__ import annotations

import bz2
import gzip
import io
import random
import tarfile

import pytest

from gateway.model import Verdict
from gateway.policy.classifiers import MessageClassifier, build_classifier
from gateway.policy.classifiers.attachments import Budget
from gateway.policy.classifiers.extract import extract
from tests import mimegen

BENIGN = mimegen.Phi("The supply order for gloves and masks ships on Monday", "0")
READABLE = tuple(p for p in mimegen.PLACES if p not in mimegen.BROKEN)
EXPECTED_LOCATION = {
    "body": "body", "html_text": "body", "html_comment": "body", "html_attribute": "body",
    "quoted_reply": "body",
}


@pytest.fixture(scope="module")
def classifier():
    return build_classifier()


@pytest.fixture(scope="module")
def malformed():
    return {name: (raw, marker) for name, raw, marker in mimegen.malformed(random.Random(3))}


def unreadable(verdict: Verdict) -> dict[str, list[str]]:
    """location -> reasons of the unreadable findings."""
    found: dict[str, list[str]] = {}
    for reason in verdict.reasons:
        if reason.startswith("unreadable ("):
            why, _, where = reason[len("unreadable ("):].partition(") in ")
            found.setdefault(where, []).append(why)
    assert set(found) == {f.location for f in verdict.findings if f.detector == "unreadable"}
    return found


def detected(verdict: Verdict) -> set[tuple[str, str]]:
    return {(f.detector, f.location) for f in verdict.findings if f.detector != "unreadable"}


@pytest.mark.parametrize("where", READABLE)
def test_phi_is_read_wherever_a_person_can_see_it(classifier, where):
    phi = mimegen.phi_sentence(random.Random(where))
    verdict = classifier.classify(mimegen.place(where, phi, random.Random(1)))
    assert verdict.phi and not unreadable(verdict), verdict.reasons
    location = EXPECTED_LOCATION.get(where, "attachment")
    assert {d for d, loc in detected(verdict) if loc.split(":")[0] == location} >= {
        "patient_name", "mrn"}
    # the same message with a harmless sentence in that place is not PHI: the text was read
    assert not classifier.classify(mimegen.place(where, BENIGN, random.Random(1))).phi
    assert phi.marker not in repr(verdict)


@pytest.mark.parametrize(("where", "reason"), [
    ("broken_boundary", "multipart boundary not found"),
    ("boundary_twice", "boundary declared twice"),
    ("boundary_reused", "boundary reused by a nested part"),
    ("multipart_no_subtype", "content type without subtype"),
])
def test_broken_tree_is_unreadable_and_still_read_raw(classifier, where, reason):
    phi = mimegen.phi_sentence(random.Random(where))
    verdict = classifier.classify(mimegen.place(where, phi, random.Random(2)))
    assert verdict.phi and reason in unreadable(verdict)["body"]
    assert f"unreadable ({reason}) in body" in verdict.reasons
    # base64 text parts are decoded from the raw bytes and what they say is found
    assert {"patient_name", "mrn"} <= {d for d, _ in detected(verdict)}
    benign = classifier.classify(mimegen.place(where, BENIGN, random.Random(2)))
    assert benign.phi and not detected(benign) and unreadable(benign)


@pytest.mark.parametrize(("name", "reason"), [
    ("no_boundary_param", "multipart without boundary"),
    ("unclosed_multipart", "multipart not closed"),
    ("unknown_cte", "unknown transfer encoding"),
    ("bad_base64", "undecodable base64"),
    ("duplicate_content_type", "content type declared twice"),
    ("message_partial", "message fragment or external body"),
    ("garbage_content_type", "content type without subtype"),
    ("unknown_charset", "unknown charset"),
])
def test_malformed_parts_are_unreadable(classifier, malformed, name, reason):
    raw, marker = malformed[name]
    verdict = classifier.classify(raw)
    assert verdict.phi
    assert any(reason in reasons for reasons in unreadable(verdict).values()), verdict.reasons
    assert marker not in repr(verdict.to_json())


def test_undecodable_subject_is_unreadable(classifier):
    raw = mimegen.message(mimegen.text("See you soon."), subject="=?x-unknown?q?Hello?=")
    verdict = classifier.classify(raw)
    assert verdict.phi and unreadable(verdict) == {"subject": ["subject does not decode"]}
    raw = mimegen.message(mimegen.text("See you soon."), subject="=?utf-8?b?####?=")
    assert unreadable(classifier.classify(raw)) == {"subject": ["subject does not decode"]}


def test_well_formed_mail_is_fully_read(classifier):
    for where in READABLE:
        verdict = classifier.classify(mimegen.place(where, BENIGN, random.Random(4)))
        assert not verdict.phi and not verdict.findings, (where, verdict.reasons)


def test_text_in_a_custom_header_is_read(classifier):
    phi = mimegen.phi_sentence(random.Random(5))
    raw = mimegen.headers(extra=f"X-Patient-Note: {phi.text}\r\n") + mimegen.text("Hi")
    verdict = classifier.classify(raw)
    assert verdict.phi and ("mrn", "header") in detected(verdict)


def test_rfc822_nested_three_deep_in_base64_is_read(classifier):
    phi = mimegen.phi_sentence(random.Random(6))
    inner = mimegen.headers("Fwd: chart") + mimegen.text(phi.text)
    for level in range(3):
        inner = mimegen.headers("Fwd") + mimegen.multipart(
            "mixed", [mimegen.text("fyi"), mimegen.rfc822(inner)], f"lvl{level}")
    verdict = classifier.classify(inner)
    assert verdict.phi and not unreadable(verdict)
    assert ("mrn", "attachment:2") in detected(verdict)


def test_nesting_beyond_the_limit_is_unreadable(classifier):
    inner = mimegen.headers("Fwd") + mimegen.text("nothing")
    for level in range(Budget().max_depth + 1):
        inner = mimegen.headers("Fwd") + mimegen.multipart(
            "mixed", [mimegen.text("fyi"), mimegen.rfc822(inner)], f"lvl{level}")
    verdict = classifier.classify(inner)
    assert verdict.phi and "nesting limit" in reasons_of(verdict)


# ------------------------------------------------------------------ bounded work


def attached(ctype: str, filename: str, data: bytes) -> bytes:
    return mimegen.message(mimegen.multipart(
        "mixed", [mimegen.text("Attached."), mimegen.attachment(ctype, filename, data)], "bb"))


def reasons_of(verdict: Verdict) -> list[str]:
    return [why for reasons in unreadable(verdict).values() for why in reasons]


def test_zip_member_is_stopped_by_the_ratio_while_decompressing():
    bomb = mimegen.zip_of({"zeros.txt": bytes(64 << 20)})
    assert len(bomb) < 100_000
    verdict = MessageClassifier().classify(attached("application/zip", "a.zip", bomb))
    assert verdict.phi and reasons_of(verdict) == ["compression ratio limit"]


@pytest.mark.parametrize("compress", [lambda d: gzip.compress(d, 1), bz2.compress])
def test_compressed_files_are_read_and_bombs_stopped(classifier, compress):
    phi = mimegen.phi_sentence(random.Random(7))
    verdict = classifier.classify(attached("application/octet-stream", "notes.txt.gz",
                                           compress(phi.text.encode())))
    assert verdict.phi and ("mrn", "attachment:0") in detected(verdict)
    verdict = classifier.classify(attached("application/octet-stream", "x.gz",
                                           compress(bytes(64 << 20))))
    assert verdict.phi and reasons_of(verdict) in (["compression ratio limit"], ["size limit"])


def test_tar_members_and_names_are_read(classifier):
    phi = mimegen.phi_sentence(random.Random(8))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        info = tarfile.TarInfo("notes.txt")
        info.size = len(phi.text.encode())
        archive.addfile(info, io.BytesIO(phi.text.encode()))
    verdict = classifier.classify(attached("application/x-tar", "n.tar", buf.getvalue()))
    assert verdict.phi and ("mrn", "attachment:0") in detected(verdict)


def test_pdf_stream_bomb_is_stopped():
    pdf = mimegen.pdf_of(b" " * (64 << 20))
    verdict = MessageClassifier(budget=Budget(max_bytes=4 << 20)).classify(
        attached("application/pdf", "a.pdf", pdf))
    assert verdict.phi and reasons_of(verdict) == ["pdf stream limit"]


@pytest.mark.parametrize(("magic", "reason"), [
    (b"Rar!\x1a\x07\x00" + bytes(100), "unsupported archive"),
    (b"7z\xbc\xaf\x27\x1c" + bytes(100), "unsupported archive"),
    (mimegen.zip_of({"a.txt": b"x"})[:30] + b"garbage", "archive does not open"),
    (b"\x78\x9f\x3e\x22\x01\x00" + bytes(100), "unsupported format"),
])
def test_archives_it_cannot_open_are_unreadable(classifier, magic, reason):
    verdict = classifier.classify(attached("application/octet-stream", "a.bin", magic))
    assert verdict.phi and reasons_of(verdict) == [reason]


def test_the_deadline_stops_the_walk():
    verdict = MessageClassifier(budget=Budget(seconds=0.0)).classify(
        attached("application/zip", "a.zip", mimegen.zip_of({"a.txt": b"hello"})))
    assert verdict.phi and "time limit" in reasons_of(verdict)


@pytest.mark.parametrize("name", ["deep_multipart", "many_parts"])
def test_many_parts_and_deep_nesting_are_bounded(classifier, malformed, name):
    verdict = classifier.classify(malformed[name][0])
    assert verdict.phi and "part limit" in reasons_of(verdict)


def test_unreadable_findings_survive_json(classifier):
    verdict = classifier.classify(mimegen.place("broken_boundary", BENIGN, random.Random(1)))
    again = Verdict.from_json(verdict.to_json())
    assert again == verdict and "unreadable" in again.categories


def test_extracted_segments_keep_locations():
    phi = mimegen.phi_sentence(random.Random(10))
    out = extract(mimegen.place("broken_boundary", phi, random.Random(1)))
    assert {s.location for s in out.segments} >= {"body", "raw"}
    assert out.unreadable == [("body", "multipart boundary not found")]


def test_quoted_message_below_a_signed_reply_is_read(classifier):
    """The reply's signature ("-- ") does not hide the earlier message quoted under it."""
    raw = mimegen.message(mimegen.text(
        "Sounds good, thanks!\r\n\r\n-- \r\nFront Desk\r\nSmile Dental\r\n\r\n"
        "On Tue, Dec 1, 2026 at 9:14 AM Records wrote:\r\n> Hi,\r\n"
        "> Mr. Lindqvist's crown on #14 cracked again, he is in pain.\r\n> Thanks\r\n"))
    verdict = classifier.classify(raw)
    assert verdict.phi and ("patient_name", "body") in detected(verdict)
