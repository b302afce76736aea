"""``scoring.decide`` against the scoring it replaced (``scoring_before``, a verbatim copy).

The per-hit loops of ``decide`` read a hit's rule once and its fields from there (not
through ``Hit``'s properties), skip the shadow filter when nothing is in shadow, and no
longer filter again what they were handed. The result must not change: the same
``Assessment`` (phi, findings with their counts and locations, in order, reasons) for every
message, and the same ``Verdict`` from the classifier, with and without shadow detectors.
The messages: the test corpus, the shared development corpus, the generated messages of
``tests/mimegen.py``, the number-dense texts of ``test_candidates_fastpath`` and seeded
random number-dense mail (spreadsheet and claim-list rows) with PHI mixed in: phone
numbers, SSNs, birth dates, names, chart and member numbers, clinical codes and words,
money, "you"/"your"/"I have"/"her" markers, topic words, signatures and quoted lines,
sent to one outsider, by one person to the practice, among colleagues and in bulk.
``candidates.Hit`` is a named tuple now (cheaper to build than the frozen dataclass it was):
the verdicts are compared with the old scoring *and* the old ``Hit`` put back. The
comparison must notice each deliberately broken copy of ``decide`` in ``MUTANTS`` and a
``Hit`` whose properties read the wrong field."""

from __future__ import annotations

import importlib.util
import random
import sys
import types
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

import pytest

from gateway.policy.classifiers import build_classifier, candidates, patterns, scoring
from gateway.policy.classifiers import classifier as classifier_module
from gateway.policy.classifiers.extract import extract
from gateway.policy.classifiers.patterns import PatternRow
from tests import mimegen
from tests.unit import scoring_before
from tests.unit.test_candidates_fastpath import number_dense, phone
from tests.unit.test_parse_fastpath import corpus, generated

SHADOWS = [
    (),
    ("phone",),
    ("patient_name", "dob"),
    ("recipient_addressed", "ssn"),
    ("tooth_number", "cdt_code", "procedure", "diagnosis", "address"),
    ("mrn", "member_id", "payment", "email_address", "npi"),
]

# ------------------------------------------------------------------ number-dense mail with PHI


def _date(rng: random.Random) -> str:
    month, day, year = rng.randint(1, 12), rng.randint(1, 28), rng.randint(1935, 2024)
    return rng.choice([f"{month:02d}/{day:02d}/{year}", f"{year}-{month:02d}-{day:02d}",
                       f"March {day}, {year}", f"{month}/{day}/{year % 100:02d}"])


def _name(rng: random.Random) -> tuple[str, str]:
    return rng.choice(mimegen.FIRST + ["Maria", "James", "Ana"]), rng.choice(mimegen.LAST)


def identifier(rng: random.Random) -> str:
    first, last = _name(rng)
    ssn = f"{rng.randint(100, 899)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
    return rng.choice([
        f"SSN {ssn}", ssn, f"ssn last 4 {rng.randint(1000, 9999)}", f"DOB {_date(rng)}",
        f"{first} {last}, {_date(rng)}", f"Patient: {first} {last}", f"{first} {last}",
        f"Mr. {last}", f"{first} {last[0]}.", f"{first} called", f"{first}'s", f"Hi {first},",
        f"MRN {rng.randint(1000, 99999999)}", f"Member ID: XKD{rng.randint(100000, 999999)}",
        f"claim # {rng.randint(10**6, 10**9)}", f"account {rng.randint(1000, 10**8)}",
        f"group # G-{rng.randint(100, 99999)}", "NPI 1234567893", f"Lab case {rng.randint(100, 9999)}",
        f"Dr. {last}", f"email: {first.lower()}.{last.lower()}@mail.example",
        f"{rng.randint(1, 9999)} Main Street", f"PO Box {rng.randint(1, 999)}",
        f"cell: {phone(rng)}", f"Mom {phone(rng)}", f"{last}, {first}", first,
        f"9 am {first}", f"{first}:",
    ])


CLINICAL = [
    "#14 MOD composite", "tooth #3", "#19-21", "D2740", "D0120", "D1110", "ICD-10 K02.9",
    "K05.31", "crown", "crowns", "extraction", "root canal", "periodontitis", "amoxicillin",
    "4mm pockets", "upper left quadrant", "bleeding on probing", "fluoride", "implant",
    "filling", "caries", "abscess", "surfaces MOD", "quad 2 SRP", "teeth", "gums",
]
PAYMENT = ["balance", "copay", "deductible", "$88.40", "$1,240.00 balance", "statement", "EOB"]
MARKERS = [
    "your crown", "your ", "you ", "you'll", "I have a fever", "my ", "I had two fillings",
    "her crown seat", "his biopsy results", "their", "payroll", "onboarding", "timesheet",
    "fictitious", "de-identified", "sample patient", "order #12345", "ticket #555", "invoice",
    "credentialing", "CAQH", "printer", "prevent gum disease", "if you have", "consultation",
    "your claims department", "Thanks,", "Questions? call us at 555-201-3344",
]
ROW_CELLS = ["1234567890", "La de da de da", "88.40", "12", "2026-12-01", "n/a", "x", ""]
BREAKS = [" ", " ", ", ", " | ", "\t", "\r\n", "\r\n", ". ", "\r\n\r\n", "\r\n> ", "\r\n-- \r\n"]


def row(rng: random.Random) -> str:
    """A spreadsheet or claim-list row: mostly numbers, now and then a PHI item in a cell."""
    cells = []
    for _ in range(rng.randint(2, 7)):
        kind = rng.random()
        if kind < 0.35:
            cells.append(phone(rng))
        elif kind < 0.6:
            cells.append(rng.choice(ROW_CELLS))
        elif kind < 0.72:
            cells.append(identifier(rng))
        elif kind < 0.84:
            cells.append(rng.choice(CLINICAL))
        elif kind < 0.92:
            cells.append(rng.choice(PAYMENT))
        else:
            cells.append(rng.choice(MARKERS))
    return rng.choice([" | ", "\t", ", ", "  "]).join(cells)


def phi_dense_body(rng: random.Random) -> str:
    pieces = []
    for _ in range(rng.randint(10, 60)):
        kind = rng.random()
        if kind < 0.55:
            pieces.append(row(rng))
        elif kind < 0.7:
            pieces.append(identifier(rng))
        elif kind < 0.8:
            pieces.append(rng.choice(CLINICAL))
        elif kind < 0.9:
            pieces.append(rng.choice(MARKERS))
        else:
            pieces.append(rng.choice(PAYMENT))
        pieces.append(rng.choice(BREAKS))
    return "".join(pieces)


PERSON = "{first} {last} <{low}.{initial}@mail.example>"
ENVELOPES = [  # (From, To, extra headers): who writes to whom decides which rules apply
    (mimegen.STAFF, mimegen.OUTSIDE, ""),
    (mimegen.STAFF, PERSON, ""),
    (PERSON, mimegen.STAFF, ""),
    (PERSON, "Billing Dept <billing@insurer.example>", ""),
    ("Dr. Ines Haverkamp DDS <ines@smiledental.example>", PERSON, ""),
    (mimegen.STAFF, "Radek <radek@smiledental.example>", ""),
    (mimegen.STAFF, "Radek <radek@smiledental.example>, Ines <ines@smiledental.example>", ""),
    (mimegen.STAFF, PERSON, "Precedence: bulk\r\n"),
    (mimegen.STAFF, "Patients <newsletter@smiledental.example>", "List-Id: <news.smiledental>\r\n"),
]


def phi_dense_message(rng: random.Random) -> bytes:
    first, last = _name(rng)
    fill = {"first": first, "last": last, "low": first.lower(), "initial": last[0].lower()}
    sender, to, extra = rng.choice(ENVELOPES)
    subject = rng.choice(["Claims list", f"{first} {last}", "crown", "payroll", "Re: balance",
                          f"{rng.choice(mimegen.FIRST)} - root canal", "Follow-up"])
    body = phi_dense_body(rng)
    if rng.random() < 0.2:
        body = body.upper() if rng.random() < 0.5 else body.lower()
    head = (
        f"From: {sender.format(**fill)}\r\nTo: {to.format(**fill)}\r\nSubject: {subject}\r\n"
        f"Message-ID: <dense@smiledental.example>\r\nMIME-Version: 1.0\r\n{extra}"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode() + body.encode("utf-8")


def synthetic() -> list[bytes]:
    rng = random.Random(20261205)
    messages = [phi_dense_message(rng) for _ in range(300)]
    dense = random.Random(11)
    for to in (mimegen.OUTSIDE, "Odalys Lindqvist <odalys.l@mail.example>"):
        body = b"\r\n".join(number_dense(dense) for _ in range(5))
        messages.append(mimegen.headers(to=to) + b"\r\n" + body)
    return messages


@lru_cache(maxsize=1)
def messages() -> tuple[bytes, ...]:
    return tuple(corpus() + generated() + synthetic())


@lru_cache(maxsize=1)
def scanned() -> tuple[tuple, ...]:
    """(extracted, hits per segment) of every message, scanned once for all comparisons."""
    out = []
    for raw in messages():
        extracted = extract(raw)
        out.append((extracted, [scoring.scan(s.text, s.location, extracted) for s in extracted.segments]))
    return tuple(out)


def outcome(module, extracted, hits, excluded) -> tuple:
    assessed = module.decide(extracted, hits, excluded)
    return assessed.phi, assessed.findings, assessed.reasons


def differences(module) -> int:
    """How many (message, shadow set) pairs ``module.decide`` decides unlike the old one."""
    wrong = 0
    for extracted, hits in scanned():
        for shadow in SHADOWS:
            excluded = frozenset(shadow)
            old = outcome(scoring_before, extracted, hits, excluded)
            wrong += outcome(module, extracted, hits, excluded) != old
    return wrong


# ------------------------------------------------------------------ the tests


def test_decide_assesses_every_message_as_before():
    phi = reasons = 0
    kinds = set()
    for extracted, hits in scanned():
        for shadow in SHADOWS:
            excluded = frozenset(shadow)
            expected = outcome(scoring_before, extracted, hits, excluded)
            assert outcome(scoring, extracted, hits, excluded) == expected, shadow
            phi += expected[0]
            reasons += len(expected[2])
            kinds.update(r.split("(", 1)[0] for r in expected[2])
    # the messages reach the rules: phi and not, strong identifiers, combinations, records,
    # "someone's", "you"/"your", names in the subject, attachments
    total = len(scanned()) * len(SHADOWS)
    assert 0.2 * total < phi < 0.95 * total, (phi, total)
    assert {"identifier", "demographic record", "someone's clinical", "attachment"} <= kinds, kinds
    assert reasons > total


def test_the_synthetic_mail_is_number_dense_and_reaches_every_kind_of_reason():
    start = len(corpus()) + len(generated())
    kinds = set()
    phones = hits_total = 0
    for extracted, hits in scanned()[start:]:
        flat = [h for segment in hits for h in segment]
        hits_total += len(flat)
        phones += sum(h.rule.detector == "phone" for h in flat)
        kinds.update(scoring_before.decide(extracted, hits).reasons)
    assert phones > 3_000 and hits_total > 20_000, (phones, hits_total)
    prefixes = {k.split(" in ", 1)[0].split("(", 1)[0] for k in kinds}
    assert {"identifier", "demographic record", "someone's clinical"} <= prefixes, prefixes
    assert any("recipient_addressed" in k for k in kinds)
    assert any(" in subject + " in k for k in kinds)
    assert any("+clinical" in k for k in kinds) and any("+payment" in k for k in kinds)


@dataclass(frozen=True, slots=True)
class HitBefore:
    """``candidates.Hit`` as it was: a frozen dataclass."""

    rule: PatternRow
    location: str
    start: int
    end: int

    @property
    def detector(self) -> str:
        return self.rule.detector

    @property
    def role(self) -> str:
        return self.rule.role


def verdicts_before(monkeypatch, shadow, raws) -> list:
    """The classifier's verdicts with the old scoring and the old ``Hit`` put back."""
    classifier = build_classifier(shadow=shadow)
    with monkeypatch.context() as patch:
        patch.setattr(classifier_module, "decide", scoring_before.decide)
        patch.setattr(candidates, "Hit", HitBefore)
        before = [classifier.classify(raw) for raw in raws]
    assert candidates.Hit is not HitBefore
    return before


@pytest.mark.parametrize("shadow", SHADOWS)
def test_the_classifier_gives_the_same_verdicts(monkeypatch, shadow):
    """Verdict by Verdict (phi, findings incl. shadow ones, errors, reasons), old scoring and
    old ``Hit`` put back into the classifier for the second run."""
    classifier = build_classifier(shadow=shadow)
    ours = [classifier.classify(raw) for raw in messages()]
    before = verdicts_before(monkeypatch, shadow, messages())
    for raw, verdict, expected in zip(messages(), ours, before, strict=True):
        assert verdict == expected, raw[:200]
    assert sum(v.phi for v in ours) > 300
    if shadow:
        assert any(f.shadow for v in ours for f in v.findings)


def test_a_hit_is_an_immutable_value_read_by_name():
    rule = patterns.RULES[0]
    hit = candidates.Hit(rule, "body", 3, 9)
    assert (hit.rule, hit.location, hit.start, hit.end) == (rule, "body", 3, 9)
    assert (hit.detector, hit.role) == (rule.detector, rule.role)
    assert hit == candidates.Hit(rule, "body", 3, 9) and hit != candidates.Hit(rule, "body", 3, 8)
    assert hash(hit) == hash(candidates.Hit(rule, "body", 3, 9))
    with pytest.raises(AttributeError):
        hit.start = 4  # type: ignore[misc]


# ------------------------------------------------------------------ the comparison can fail

SOURCE = Path(scoring.__file__).read_text(encoding="utf-8")
MUTANTS = {  # name: (text in scoring.py, what a careless fast path might have written)
    "shadow detectors not dropped": (
        "if excluded:\n            hits = [", "if not excluded:\n            hits = ["
    ),
    "fiction words near a hit ignored": (
        "if fiction and invented.first_within", "if False and invented.first_within"
    ),
    "bulk read from the wrong flag": ("bulk = extracted.bulk", "bulk = extracted.to_one_person"),
    "signature block reached by strong identifiers only": (
        "if role != STRONG and hit.start >= signature", "if role == STRONG and hit.start >= signature"
    ),
    "speaker markers matched by variant": (
        "detector = hit.rule.detector\n        if detector not in speakers",
        "detector = hit.rule.variant\n        if detector not in speakers",
    ),
    "topic words looked up by variant": (
        'if hit.rule.detector == "_topic":', 'if hit.rule.variant == "_topic":'
    ),
    "records completed by an NPI, not a birth date": (
        'placed = Positioned([h for h in people if h.rule.detector in ("patient_name", "dob")])',
        'placed = Positioned([h for h in people if h.rule.detector in ("patient_name", "npi")])',
    ),
}


def load(source: str, directory: Path) -> types.ModuleType:
    """``source`` (a version of scoring.py) imported as a module of its own."""
    path = directory / "scoring_variant.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"scoring_variant_{directory.name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_the_unchanged_source_loaded_the_same_way_agrees(tmp_path):
    """The loading is not what makes the mutants differ."""
    assert differences(load(SOURCE, tmp_path)) == 0


class HitReadingVariant(NamedTuple):
    rule: PatternRow
    location: str
    start: int
    end: int

    detector = property(attrgetter("rule.variant"))
    role = property(attrgetter("rule.role"))


class HitReadingCategory(NamedTuple):
    rule: PatternRow
    location: str
    start: int
    end: int

    detector = property(attrgetter("rule.detector"))
    role = property(attrgetter("rule.category"))


@pytest.mark.parametrize("broken", [HitReadingVariant, HitReadingCategory])
def test_a_broken_hit_is_noticed(monkeypatch, broken):
    raws = messages()[::3]
    before = verdicts_before(monkeypatch, (), raws)
    monkeypatch.setattr(candidates, "Hit", broken)
    classifier = build_classifier()
    assert [classifier.classify(raw) for raw in raws] != before, broken.__name__


@pytest.mark.parametrize("name", list(MUTANTS))
def test_a_broken_fast_path_is_noticed(tmp_path, name):
    old, new = MUTANTS[name]
    assert SOURCE.count(old) == 1, name  # the mutation applies to the code as it is
    assert differences(load(SOURCE.replace(old, new), tmp_path)) > 0, name
