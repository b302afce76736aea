"""From validated pattern matches to a PHI decision with reasons.

Built like a recognizer pipeline (Presidio's design, without its NLP model): the one RE2
pass and the validators live in ``candidates``; here each accepted candidate is scored
by its *context*, what else lies within a window around it, and by what the whole
message is about. ``decide()`` applies the HIPAA combination rule:

* a strong identifier (SSN, labelled DOB, chart/MRN, member id, a name given as
  "Patient:") identifies a patient of the practice on its own;
* a person (full name, first name + last initial, a census given name, a personal
  phone or e-mail) with health or payment information close by, or with specific
  clinical content anywhere in the message when the name is a weak identifier;
* a demographic record: a person's street address, birth date, phone or e-mail next
  to a name or to another of these (in a dental practice, being a patient is health
  information), or several personal street addresses in one list;
* mail between the practice and one person outside it that is about that person's
  care: "your crown", "you" or "I"/"my" next to a specific finding, a greeting by name
  with such a finding, or an amount of money next to treatment;
* DICOM files (they carry patient tags), attachments that could not be inspected.

Not patients: whole messages whose topic words say they are about employees (payroll,
onboarding, their own sick notes), providers' credentials, vendor orders, IT, invented
training patients or de-identified figures; identifiers in the signature block; the
names in the From/To/Cc headers; staff introduced by role; sales reps "from" a
company; a recipient whose display name is a provider or a business. Reasons name
detectors and places only, never matched text.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass

from gateway.model import Finding
from gateway.policy.classifiers import lexicons
from gateway.policy.classifiers.candidates import (
    BLOCK_BYTES,
    NAME_TOKENS,
    DetectorError,
    Hit,
    names_org,
    scan,
)
from gateway.policy.classifiers.extract import Extracted
from gateway.policy.classifiers.patterns import (
    CLINICAL,
    GENERIC,
    IDENTIFIER,
    NEAR,
    NEAR_CLINICAL,
    PAYMENT_CAT,
    PROVIDER,
    RECORD,
    SPECIFIC,
    STRONG,
    WEAK,
)

__all__ = ["Assessment", "DetectorError", "decide", "scan"]  # scan: the classifier's entry point

NEAR_BYTES = 200  # "close by" for names and numbers with health/payment content
GENERIC_NEAR_BYTES = 60  # a bare name with a procedure word or CDT code: about one line
YOUR_BYTES = 25  # "your <clinical word>"
YOU_BYTES = 150  # second person near a specific finding, same paragraph
RECORD_BYTES = 120  # contact details this close together form one person's record
SENTENCE_BYTES = 60  # "you"/"my"/a greeting and a treatment word in one short sentence
SEVERAL_FINDINGS = 3  # distinct specific findings in mail with one person: about that person
AMOUNT_BYTES = 200  # "$120" this close to treatment, in mail to one person: their bill
# Distinct topic words needed before a whole message is taken to be about that topic.
TOPIC_MIN = 2
# Topics that say the people named are employees or providers, not patients (a chart number
# or a "Patient:" label still counts); in vendor and IT mail only strong identifiers count.
NOT_PATIENT_TOPICS = frozenset({"hr", "credential"})
BUSINESS_TOPICS = frozenset({"vendor", "it"})
# Words that make the identifiers near them invented or absent ("fictitious", "de-identified"):
# they act within FICTION_BYTES only, so a word in the Subject cannot clear a whole message.
NEARBY_TOPICS = ("fiction", "aggregate")
FICTION_BYTES = 400


# ------------------------------------------------------------------ deciding


@dataclass
class Assessment:
    phi: bool
    findings: list[Finding]
    reasons: list[str]


def _gap(a: Hit, b: Hit) -> int:
    return max(0, b.start - a.end, a.start - b.end)


class Positioned:
    """Hits sorted by start, for "which of these lie within N bytes of that hit" in log time."""

    LONGEST = 256  # no pattern matches more than this many bytes before its start is passed

    def __init__(self, hits: list[Hit]):
        self.hits = sorted(hits, key=lambda h: h.start)
        self.starts = [h.start for h in self.hits]

    def __bool__(self) -> bool:
        return bool(self.hits)

    def within(self, hit: Hit, reach: int):
        lo = bisect.bisect_left(self.starts, hit.start - reach - self.LONGEST)
        hi = bisect.bisect_right(self.starts, hit.end + reach)
        return (c for c in self.hits[lo:hi] if _gap(hit, c) <= reach)

    def first_within(self, hit: Hit, reach: int) -> Hit | None:
        return next(self.within(hit, reach), None)


def _signature_start(text: bytes) -> int:
    if b"\n--" not in text:  # what every marker starts with: one scan instead of four
        return len(text) + 1
    for marker in (b"\n-- \n", b"\n--\n", b"\n-- \r\n", b"\n--\r\n"):
        found = text.find(marker)
        if found >= 0:
            return found
    return len(text) + 1


def _same_sentence(text: bytes, a: Hit, b: Hit) -> bool:
    lo, hi = min(a.end, b.end), max(a.start, b.start)
    between = text[lo:hi]
    return not any(mark in between for mark in (b". ", b"? ", b"! ", b"\n\n", b".\n"))


def _same_block(text: bytes, a: Hit, b: Hit) -> bool:
    """No blank line and no change of quoting level (a "> " line) between the two."""
    lo, hi = min(a.end, b.end), max(a.start, b.start)
    between = text[lo:hi]
    return b"\n\n" not in between and b"\n>" not in between and b"\r\n\r\n" not in between


def _paragraph_break_between(text: bytes, a: Hit, b: Hit) -> bool:
    lo, hi = min(a.end, b.end), max(a.start, b.start)
    between = text[lo:hi]
    return b"\n\n" in between or b"\n \n" in between or b"\r\n\r\n" in between


def _near(hit: Hit, generic: Positioned, specific: Positioned, text: bytes) -> Hit | None:
    """The health/payment hit that makes this identifier a patient's, if one is close enough
    (numbers, street addresses and a lone first name: only specific clinical content)."""
    if hit.role == NEAR_CLINICAL or hit.detector == "address":
        return next(
            (
                c
                for c in specific.within(hit, NEAR_BYTES)
                if c.rule.category == CLINICAL and c.detector != "medication"
            ),
            None,
        )
    if hit.rule.variant == "given":  # a lone first name: treatment words in its own paragraph
        finding = next(
            (c for c in specific.within(hit, NEAR_BYTES) if _about_someone(text, c)), None
        )
        return finding or next(
            (
                c
                for c in generic.within(hit, GENERIC_NEAR_BYTES)
                if c.rule.variant not in ("anatomy", "general")
                and _same_block(text, hit, c)
                and _about_someone(text, c)
                and not _OFFER_AFTER.match(text, c.end, c.end + 20)
            ),
            None,
        )
    reach = GENERIC_NEAR_BYTES if hit.role == NEAR else NEAR_BYTES
    found = specific.first_within(hit, NEAR_BYTES)
    if found is not None or not _likely_person(hit, text):
        return found
    return generic.first_within(hit, reach)


def _likely_person(hit: Hit, text: bytes) -> bool:
    """Fee-list words (a CDT code, "implant") make a patient only of a stronger name: one
    whose first word is a census given name, or any name that is not a capitalised pair."""
    if hit.detector != "patient_name" or hit.rule.variant != "full":
        return True
    first = NAME_TOKENS.match(text[hit.start : hit.end].decode("utf-8", "replace"))
    return first is not None and first.group().lower() in lexicons.GIVEN_NAMES


def _topics(extracted: Extracted, hits_by_segment: list[list[Hit]]) -> frozenset[str]:
    """The message-wide topics (``lexicons.TOPICS``) with enough distinct words present."""
    found: dict[str, set[bytes]] = {}
    for segment, hits in zip(extracted.segments, hits_by_segment, strict=True):
        for hit in hits:
            if hit.rule.detector == "_topic":
                word = segment.text[hit.start : hit.end].lower().split(None, 1)[0].rstrip(b"s.#")
                found.setdefault(hit.rule.variant.removesuffix("_ref"), set()).add(word)
    return frozenset(k for k, words in found.items() if len(words) >= TOPIC_MIN)


_PROVIDER_TOKENS = frozenset(
    {"dr", "dra", "doctor", "dds", "dmd", "md", "do", "rn", "np", "pa", "rdh", "cda", "rda",
     "efda", "lcsw", "ma", "ms", "phd"}
)


def _business_or_provider(tokens: frozenset[str]) -> bool:
    """A display name like "Dr. <First> <Last>" or "Billing Dept": a provider or a business,
    not a patient."""
    low = {t.lower() for t in tokens}
    return bool(low & (_PROVIDER_TOKENS | lexicons.ORG_WORDS | lexicons.MAILBOX_WORDS))


def _a_practice(tokens: frozenset[str]) -> bool:
    """The recipient's display name or mailbox is a health-care practice's front office (where
    patients write), not a lab, a supplier, an insurer or IT."""
    low = {t.lower() for t in tokens}
    return bool(low & lexicons.PRACTICE_WORDS) and not low & lexicons.SUPPLIER_WORDS


_CONTACT = frozenset({"address", "phone", "email_address", "dob"})


def _records(people: list[Hit], text: bytes) -> Hit | None:
    """A person's demographic record: a personal street address, phone or e-mail next to a
    person's name or birth date, not in a business's block (a vCard with an ORG, a company
    signature); or several personal street addresses (a mailing list of patients).
    ``people``: identifier hits other than providers' (``decide`` gathers no others)."""
    # only a name or a birth date completes a record: index just those (a page of phone
    # numbers would otherwise be compared with each other)
    placed = Positioned([h for h in people if h.rule.detector in ("patient_name", "dob")])
    for hit in people if placed else ():
        if hit.rule.detector not in _CONTACT:
            continue
        for other in placed.within(hit, RECORD_BYTES):
            if other is not hit:
                lo, hi = min(hit.start, other.start), max(hit.end, other.end)
                if not names_org(text, max(0, lo - BLOCK_BYTES), hi + BLOCK_BYTES):
                    return hit
    addresses = [h for h in people if h.rule.detector == "address"]
    return addresses[1] if len(addresses) >= 2 else None


THEIR_BYTES = 15  # "her crown", "his biopsy results"


def _someones(text: bytes, hits: list[Hit], content: Positioned) -> Hit | None:
    """Among colleagues, "her crown seat", "his biopsy results": treatment that belongs to a
    person the thread identifies (the name may be one no detector knows)."""
    for hit in hits:
        if hit.rule.detector != "_their":
            continue
        for c in content.within(hit, THEIR_BYTES):
            if (
                c.start >= hit.end
                and c.rule.category == CLINICAL
                and c.rule.variant not in ("anatomy", "general")
                and _same_sentence(text, hit, c)
                and not _OFFER_AFTER.match(text, c.end, c.end + 20)
            ):
                return c
    return None


SELF_BYTES = 60  # "I have a fever": the clinical word this close after the writer's "I have"


def _not_own_health(text: bytes, hits: list[Hit], content: list[Hit]) -> list[Hit]:
    """Among colleagues, what the writer says of their own health ("I have a bad cough",
    "out for my colonoscopy") is an employee's matter, not a patient's: drop it."""
    selves = [h for h in hits if h.rule.detector == "_self"]
    if not selves:
        return content
    own = Positioned(selves)
    return [
        c
        for c in content
        if not any(
            s.end <= c.start and b"." not in text[s.end : c.start]
            for s in own.within(c, SELF_BYTES)
        )
    ]


def decide(
    extracted: Extracted, hits_by_segment: list[list[Hit]], excluded: frozenset[str] = frozenset()
) -> Assessment:
    """Apply the combination rules; detectors in ``excluded`` are ignored (shadow mode)."""
    reasons: list[str] = []
    reported: list[Hit] = []
    extra: Counter[tuple[str, str, str]] = Counter()
    people_anywhere: list[Hit] = []  # WEAK identifiers, for the message-wide rule
    health_anywhere: list[tuple[str, str]] = []  # (detector, location) of specific clinical content
    subject_people: list[Hit] = []  # a person named in the Subject
    treatment_anywhere: list[Hit] = []  # treatment words (fee-list vocabulary included)
    topics = _topics(extracted, hits_by_segment)
    bulk = extracted.bulk
    internal = not extracted.to_one_person and not bulk
    clinician_writes = bool({t.lower() for t in extracted.sender_tokens} & _PROVIDER_TOKENS)
    not_patients = bool(topics & NOT_PATIENT_TOPICS)
    business = bool(topics & BUSINESS_TOPICS)
    # One person outside the practice, who is not a clinician or a business: "you", "your"
    # (the recipient) or "I" and "my" (a patient writing in) are that person.
    speakers: frozenset[str] = frozenset()
    if extracted.to_one_person and not not_patients and not business:
        if not _business_or_provider(extracted.recipient_tokens):
            speakers |= {"_you", "_your", "_salutation", "_amount"}
        if extracted.sender_tokens and not _business_or_provider(extracted.sender_tokens):
            speakers |= {"_me", "_self"}
            recipient = extracted.recipient_tokens
            if _business_or_provider(recipient) and _a_practice(recipient):
                speakers |= {"_from_person"}  # writing to a practice's front office

    for segment, hits in zip(extracted.segments, hits_by_segment, strict=True):
        text = segment.text
        if excluded:
            hits = [h for h in hits if h.rule.detector not in excluded]
        if not hits:
            continue  # every rule below starts from a hit
        signature = _signature_start(text)
        content = [h for h in hits if h.rule.category in (CLINICAL, PAYMENT_CAT)]
        if not extracted.to_one_person or clinician_writes:
            content = _not_own_health(text, hits, content)
        generic = Positioned([h for h in content if h.role == GENERIC])
        specific = Positioned([h for h in content if h.role != GENERIC])  # clinical + payment
        reported.extend(content)
        health_anywhere.extend(
            (h.detector, h.location) for h in specific.hits if h.rule.category == CLINICAL
        )
        treatment_anywhere.extend(
            h for h in generic.hits if h.rule.variant not in ("anatomy", "general")
        )
        invented = Positioned(
            [h for h in hits if h.rule.detector == "_topic" and h.rule.variant in NEARBY_TOPICS]
        )
        fiction = bool(invented)

        people: list[Hit] = []
        for hit in hits:
            rule = hit.rule  # read once: this loop runs for every number in a spreadsheet
            if rule.category != IDENTIFIER:
                continue
            if not_patients and rule.detector != "mrn" and rule.variant != "patient_label":
                continue  # employees and providers: only a chart number or "Patient:" counts
            if fiction and invented.first_within(hit, FICTION_BYTES):
                continue  # a fictitious, sample or de-identified record
            role = rule.role
            if role == PROVIDER:
                reported.append(hit)
                continue
            if role != STRONG and hit.start >= signature:
                continue
            if role == NEAR and bulk:
                continue  # a bare name in a newsletter is staff news, not a patient
            people.append(hit)
            if role == STRONG:
                reported.append(hit)
                reasons.append(f"identifier({rule.detector}) in {hit.location}")
                continue
            if business or role == RECORD:
                continue
            near = _near(hit, generic, specific, text)
            if near is not None:
                reported.append(hit)
                reasons.append(
                    f"identifier({rule.detector})+{near.rule.category}({near.rule.detector}) "
                    f"in {hit.location}"
                )
            elif role == WEAK or segment.location == "subject":
                # a name standing in the Subject is about someone, wherever the health content sits
                reported.append(hit)
                people_anywhere.append(hit)
                if segment.location == "subject":
                    subject_people.append(hit)

        if internal and not business and not not_patients and not invented:
            owned = _someones(text, hits, Positioned(content))
            if owned is not None:
                reported.append(owned)
                reasons.append(
                    f"someone's {owned.rule.category}({owned.detector}) in {segment.location}"
                )
        record = None if business or not_patients else _records(people, text)
        if record is None and "_me" in speakers:
            # a person writing in: the street address or birth date they give is their own
            record = next((h for h in people if h.rule.detector in ("address", "dob")), None)
        if record is not None:
            reported.append(record)
            reasons.append(f"demographic record({record.detector}) in {segment.location}")

        if speakers and not invented and "recipient_addressed" not in excluded:
            fired = _addressed(text, hits, Positioned(content), specific, speakers)
            if fired is not None:
                extra[("recipient_addressed", IDENTIFIER, segment.location)] += 1
                reasons.append(
                    f"identifier(recipient_addressed)+{fired.rule.category}({fired.detector}) "
                    f"in {segment.location}"
                )

    for mark, location in extracted.marks:
        if mark in excluded:
            continue
        extra[(mark, "attachment", location)] += 1
        if mark == "dicom":
            reasons.append(f"attachment(dicom) in {location}")
        else:
            health_anywhere.append((mark, location))
    for location, why in extracted.failures:
        extra[("unscannable", "error", location)] += 1
        reasons.append(f"attachment not inspectable ({why}) in {location}")

    if subject_people and treatment_anywhere and not health_anywhere:
        person, treatment = subject_people[0], treatment_anywhere[0]
        reasons.append(
            f"identifier({person.detector}) in subject + clinical({treatment.detector}) "
            f"in {treatment.location}"
        )
    if people_anywhere and health_anywhere:
        person, (detector, location) = people_anywhere[0], health_anywhere[0]
        kind = "attachment" if detector == "radiograph" else "clinical"
        reasons.append(
            f"identifier({person.detector}) in {person.location} + {kind}({detector}) in {location}"
        )

    counts: Counter[tuple[str, str, str]] = Counter(
        (h.detector, h.rule.category, h.location) for h in reported
    )
    counts.update(extra)
    findings = [Finding(d, c, loc, n) for (d, c, loc), n in counts.items()]
    unique_reasons = list(dict.fromkeys(reasons))
    return Assessment(bool(unique_reasons), findings, unique_reasons)


_OFFER_AFTER = re.compile(
    rb"(?i)s?\b\W{0,3}(?:consult(?:ation)?s?|screenings?|options?|questions?|benefits?|"
    rb"coverage|special|offer|financing|and x-?rays|department|dept|team|office|portal|address|"
    rb"fax|website|forms?|pads?|policy|policies|guidelines|process|discount|promo(?:tion)?|sale|"
    rb"\d+ ?%|(?:\$\d+ )?off|night|day|event|open house|seminar|webinar|workshop)\b"
)


def _offer(text: bytes, hit: Hit) -> bool:
    """ "your implant consultation", "your claims department": services, not someone's care."""
    return text[hit.end - 1 : hit.end] in (b"s", b"S") or bool(
        _OFFER_AFTER.match(text, hit.end, hit.end + 20)
    )


_GENERAL_MENTION_BEFORE = re.compile(
    rb"(?i)\b(?:prevent\w*|avoid\w*|reduc\w*|lower\w*|risk of|risks|signs? of|symptoms? of|"
    rb"causes?|lead to|leads to|such as|fight\w*|protect\w* against|linked to|help(?:s)? with|"
    rb"ask (?:us )?about|learn about|interested in|did you know|tips? (?:for|on)|join us for|"
    rb"free|discounts? on|\d+ ?% off|if you (?:have|develop|feel|are|get|experience)|"
    rb"if (?:he|she|they|your child) (?:has|have|develops?|feels?|is|are)|in case of|"
    rb"any (?:signs|symptoms)|experiencing|screening questions?|reschedule if)"
    rb"\b[\w ,-]{0,20}$"
)


def _about_someone(text: bytes, hit: Hit) -> bool:
    """A finding, not health education ("cleanings help prevent gum disease")."""
    return not _GENERAL_MENTION_BEFORE.search(text[max(0, hit.start - 40) : hit.start])


def _addressed(
    text: bytes,
    hits: list[Hit],
    content: Positioned,
    specific: Positioned,
    speakers: frozenset[str],
) -> Hit | None:
    """Mail with one person about that person: "your crown", "you" (or "I", "my") next to a
    specific finding in the same paragraph or a treatment word in the same sentence, a
    greeting by name in a message with specific clinical content, several findings, or an
    amount of money next to treatment (their bill). ``speakers`` holds the markers that can
    mean the patient: second-person ones when the recipient is a person, first-person ones
    when the sender is."""
    clinical_specific = next(
        (c for c in specific.hits if c.rule.category == CLINICAL and _about_someone(text, c)), None
    )
    for hit in hits:
        detector = hit.rule.detector
        if detector not in speakers:
            continue
        if detector == "_your":
            for c in content.within(hit, YOUR_BYTES):
                if c.start >= hit.end and not (c.role != SPECIFIC and _offer(text, c)):
                    return c
        if detector == "_amount":  # "$88.40" with "balance" and "crown": their bill
            near = list(content.within(hit, AMOUNT_BYTES))
            if any(c.rule.category == PAYMENT_CAT for c in near):
                for c in near:
                    if c.rule.category == CLINICAL and not _offer(text, c):
                        return c
        if detector in ("_you", "_me", "_self"):
            # treatment words in the same sentence: "the crown we seat Wednesday, you ..."
            for c in content.within(hit, SENTENCE_BYTES):
                if (
                    c.rule.category == CLINICAL
                    and c.rule.variant not in ("anatomy", "general")
                    # "you ... our crowns" is an offer; "I had two fillings" is about me
                    and not (
                        _offer(text, c)
                        if detector == "_you"
                        else _OFFER_AFTER.match(text, c.end, c.end + 20)
                    )
                    and _about_someone(text, c)
                    and _same_sentence(text, hit, c)
                ):
                    return c
            if detector != "_you":  # "a receipt for what I paid": the writer's own bill
                for c in content.within(hit, SENTENCE_BYTES):
                    if c.rule.category == PAYMENT_CAT and _same_sentence(text, hit, c):
                        return c
        if detector in ("_you", "_your", "_me", "_self"):
            # "you" next to money is how one talks to an insurer: only findings about a mouth count
            for c in specific.within(hit, YOU_BYTES):
                if (
                    c.rule.category == CLINICAL
                    and _about_someone(text, c)
                    and not _paragraph_break_between(text, hit, c)
                ):
                    return c
        if detector == "_salutation" and clinical_specific is not None:
            return clinical_specific
    findings = {
        text[c.start : c.end].lower(): c
        for c in specific.hits
        if c.rule.category == CLINICAL and _about_someone(text, c)
    }
    if "_from_person" in speakers:  # a person writing to the practice: their own care
        wrote = next(
            (
                c
                for c in content.hits
                if c.rule.category == CLINICAL
                and c.rule.variant not in ("anatomy", "general")
                and _about_someone(text, c)
                and not _OFFER_AFTER.match(text, c.end, c.end + 20)
            ),
            None,
        )
        if wrote is not None:
            return wrote
    if "_you" in speakers and len(findings) >= SEVERAL_FINDINGS:  # instructions after treatment, a visit summary
        return next(iter(findings.values()))
    return None
