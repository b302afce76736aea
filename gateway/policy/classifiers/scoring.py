"""From pattern matches to a PHI decision with reasons.

Built like a recognizer pipeline (Presidio's design, without its NLP model): each
candidate from the one RE2 pass (``patterns``) is checked by a validator (checksums,
SSA rules, "this capitalised word is a given name and not the sender, a colleague
introduced by role or a business") and then scored by its *context*: what else lies
within a window around it. ``decide()`` applies the HIPAA combination rule:

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
from collections.abc import Callable
from dataclasses import dataclass

from gateway.model import Finding
from gateway.policy.classifiers import lexicons, patterns
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
    Rule,
)

NEAR_BYTES = 200  # "close by" for names and numbers with health/payment content
GENERIC_NEAR_BYTES = 60  # a bare name with a procedure word or CDT code: about one line
YOUR_BYTES = 25  # "your <clinical word>"
YOU_BYTES = 150  # second person near a specific finding, same paragraph
BLOCK_BYTES = 100  # a business name this close to an address or phone: its address block
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


@dataclass(frozen=True, slots=True)
class Hit:
    rule: Rule
    location: str
    start: int
    end: int

    @property
    def detector(self) -> str:
        return self.rule.detector

    @property
    def role(self) -> str:
        return self.rule.role


@dataclass(frozen=True, slots=True)
class Context:
    text: bytes
    sender_tokens: frozenset[str] = frozenset()  # words of the From display name
    header_tokens: frozenset[str] = frozenset()  # words of every From/To/Cc display name
    recipient_tokens: frozenset[str] = frozenset()  # words of the To display names
    domains: tuple[str, ...] = ()


# ------------------------------------------------------------------ validators

_DIGITS = re.compile(rb"\d")
_ROLE_BEFORE = re.compile(
    rb"(?i)\b(?:hygienist|assistant|dentist|receptionist|coordinator|manager|associate|doctor|colleague|"
    rb"team member|staff|specialist|surgeon|orthodontist|periodontist|endodontist|owner|"
    rb"partner|front desk|"
    rb"intern|student|rep|representative|tech|technician|welcome|meet|congratulations to|"
    rb"thanks to)[ :]*$"
)
_AFFILIATION_BEFORE = re.compile(rb"(?i)\b(?:from|at|with|representing|rep for|sponsored by)\s$")
_AFFILIATION_AFTER = re.compile(rb",? (?:from|at|with|of|representing) (?:the )?[A-Z]")
_CREDENTIAL_AFTER = re.compile(rb",? ?(?:RDH|DDS|DMD|MD|DO|RN|CDA|EFDA|RDA|PA|NP|MSD|PhD|FAGD)\b")
_NAME_TOKENS = re.compile(r"[^\W\d_][\w'\-]*")
_STATE_AFTER = re.compile(rb", ?[A-Z]{2}\b")
_WORD_AFTER = re.compile(rb"[ \t]*([A-Za-z]+)")
LABEL_WORDS = frozenset(
    """
patient pt name first last full subscriber insured applicant guarantor parent guardian child son
daughter re regarding records record x-rays x-ray xrays xray images image radiographs radiograph
films chart referral summary treatment plan narrative claim statement pre-auth preauth
pre-authorization preauthorization predetermination lab slip rx for from case crown denture bridge
implant aligners retainer impressions impression models model night guard nightguard
""".split()
)
_SURFACE_TAIL = re.compile(rb"([MODBLFI]{1,5})$")
_ICD_TAIL = re.compile(rb"([A-TV-Z]\d[0-9AB](?:\.?[0-9A-Z]{1,4})?)$")


def _digits(span: bytes) -> str:
    return "".join(ch.decode() for ch in _DIGITS.findall(span))


_ORG_WORD = re.compile(
    rb"(?i)\b(?:" + b"|".join(w.encode() for w in sorted(lexicons.ORG_WORDS)) + rb")\b"
)


def _line_of(text: bytes, start: int, end: int, reach: int = 160) -> bytes:
    line_start = text.rfind(b"\n", max(0, start - reach), start) + 1 or max(0, start - reach)
    line_end = text.find(b"\n", end, end + reach)
    return text[line_start : line_end if line_end >= 0 else min(len(text), end + reach)]


def _org_line(text: bytes, start: int, end: int, block: bool = False) -> bool:
    """The line around a phone or street address names a business (or is a calendar LOCATION);
    with ``block``, the lines just above and below count too (an address block under a
    practice's name)."""
    line = _line_of(text, start, end)
    if line.lstrip().lower().startswith((b"location", b"organizer")):
        return True
    if block:
        line = text[max(0, start - BLOCK_BYTES) : end + BLOCK_BYTES]
    return bool(_ORG_WORD.search(line))


def _bare(token: str) -> str:
    return token.strip("'").removesuffix("'s")


def _name_ok(tokens: list[str], ctx: Context, people: frozenset[str]) -> bool:
    """Every token looks like part of a person's name and none belongs to ``people``."""
    if not tokens:
        return False
    for token in tokens:
        low = _bare(token).lower()
        if len(low) < 2 or low in lexicons.NOT_NAME_WORDS or low in lexicons.ORG_WORDS:
            return False
        if _bare(token) in people:
            return False
    return True


def _in_domain(tokens: list[str], ctx: Context) -> bool:
    """A word of the practice's or a partner's domain name is the business, not a patient."""
    words = [_bare(t).lower() for t in tokens if len(t) >= 3]
    return any(word in domain for word in words for domain in ctx.domains)


def _initial_ok(span: bytes) -> bool:
    """ "<First> M." yes; "will a", "<First> I think" no: a lone a/I is a word, not an initial."""
    letter = span.rstrip(b".")[-1:]
    return span.endswith(b".") or letter not in (b"a", b"i", b"A", b"I")


def _is_vocabulary(word: str) -> bool:
    """The word is itself clinical or payment vocabulary ("Intruded E", "Abscess A")."""
    found = patterns.combined().fullmatch(word.encode("utf-8"))
    return found is not None and patterns.rule_of(found).category in (CLINICAL, PAYMENT_CAT)


def _valid_name(hit: Hit, span: bytes, ctx: Context) -> bool:
    variant = hit.rule.variant
    tokens = _NAME_TOKENS.findall(span.decode("utf-8", "replace").replace("\u2019", "'"))
    if variant in ("patient_label", "label"):
        while tokens and tokens[0].lower() in LABEL_WORDS:
            tokens.pop(0)
        kept = []  # the leading run of name-like tokens (a weekday after the name is dropped)
        for token in tokens:
            if token.lower() in lexicons.NOT_NAME_WORDS or token.lower() in lexicons.ORG_WORDS:
                break
            kept.append(token)
        if variant == "label" and not any(t[1:] != t[1:].upper() for t in kept):
            return False  # "Re: <acronym> ...": not a name
        return _name_ok(kept, ctx, ctx.sender_tokens)
    if variant == "title":  # "Mr. X from <a supplier>" is a sales rep
        return _name_ok(tokens[1:2], ctx, ctx.sender_tokens) and not _AFFILIATION_AFTER.match(
            ctx.text, hit.end, hit.end + 40
        )
    # Unlabelled names: not anyone in the From/To/Cc headers (staff, the recipient), not a business.
    if variant in ("possessive", "reported", "initial", "initial_any"):
        tokens = tokens[:1]
        if variant == "initial" and not _initial_ok(span):
            return False
        if variant == "initial_any" and (
            tokens[0].lower() in lexicons.LETTER_TERMS
            or not _initial_ok(span)
            or _CAPITAL_NEXT.match(ctx.text, hit.end)
            or _is_vocabulary(tokens[0])
        ):
            return False  # "Vitamin D", "<First> I", "Suite B Building"
    elif variant == "scheduled":
        tokens = tokens[-1:]
    elif variant == "full" and not _name_ok(tokens, ctx, ctx.header_tokens):
        # "<First> Park": the surname is also a word; the census given name still names someone
        tokens = tokens[:1] if tokens[0].lower() in lexicons.GIVEN_NAMES else tokens
    if not _name_ok(tokens, ctx, ctx.header_tokens) or _in_domain(tokens, ctx):
        return False
    before = ctx.text[max(0, hit.start - 40) : hit.start]
    if (
        variant == "full"
        and _AFFILIATION_BEFORE.search(before)
        and tokens[0].lower() not in lexicons.GIVEN_NAMES
    ):
        return False  # "from <a supplier>", "at <an insurer>" (but "from <first> <last>")
    if _ROLE_BEFORE.search(before) or _CREDENTIAL_AFTER.match(ctx.text[hit.end : hit.end + 12]):
        return False  # "our hygienist <name>", "<name>, RDH": staff, not a patient
    if variant in ("full", "given"):
        after = ctx.text[hit.end : hit.end + 40]
        if _STATE_AFTER.match(after):
            return False
        word = _WORD_AFTER.match(after)
        if word and word.group(1).lower().decode() in lexicons.ORG_WORDS:
            return False
    return True


def _valid_tooth_surface(hit: Hit, span: bytes, ctx: Context) -> bool:
    if hit.rule.variant == "material":
        letters = span.split()[0]
    else:
        found = _SURFACE_TAIL.search(span)
        letters = found.group(1) if found else b""
    return patterns.surfaces_ok(letters.decode())


def _valid_icd(hit: Hit, span: bytes, ctx: Context) -> bool:
    found = _ICD_TAIL.search(span)
    if not found or not patterns.icd10_is_plausible(found.group(1).decode()):
        return False
    after = ctx.text[hit.end : hit.end + 2]
    return not (len(after) == 2 and after[:1] == b"." and after[1:].isdigit())


def _valid_salutation(hit: Hit, span: bytes, ctx: Context) -> bool:
    """A greeting counts only if it names the recipient ("Hi <First>" in mail to <First> <Last>)."""
    name = _NAME_TOKENS.findall(span.decode("utf-8", "replace"))[-1:]
    return bool(name) and name[0] in ctx.recipient_tokens


_BUSINESS_ADDRESS_BEFORE = re.compile(
    rb"(?i)\b(?:ship(?:ping)? to|deliver(?:y)? to|remit(?:tance)? to|bill to|return to|"
    rb"send it back to|ship it back to|"
    rb"our (?:new )?(?:address|office|location|building)(?: is)?(?: at| located at)?|we'?re at|"
    rb"we are at|we'?re located at|we moved to|"
    rb"located at|visit us at|pick ?up (?:at|from)|drop[- ]off at|"
    # where an appointment is ("at 12 Main St", "en Av. ..."), unless someone lives there
    rb"(?<!lives )(?<!living )(?<!resides )(?<!staying )\b(?:at|en|in|@))[:\s]*$"
)
# A phone the reader is asked to call: the practice's or a business's, not someone's record.
_BUSINESS_PHONE_BEFORE = re.compile(
    rb"(?i)\b(?:call(?: us| our office| the office)?(?: at| on)?|contact us(?: at)?|reach us(?: at)?|"
    rb"llame(?:nos)?(?: al)?|ll\xc3\xa1menos(?: al)?|fax|text us(?: at)?|questions\W*|office|"
    rb"main|toll[- ]free|helpdesk|help desk|support)[:\s]*$"
)


def _valid_address(hit: Hit, span: bytes, ctx: Context) -> bool:
    """A person's street address: not a business line, not "ship to" / "our office at"."""
    before = ctx.text[max(0, hit.start - 40) : hit.start]
    return not _org_line(
        ctx.text, hit.start, hit.end, block=True
    ) and not _BUSINESS_ADDRESS_BEFORE.search(before)


def _valid_email(hit: Hit, span: bytes, ctx: Context) -> bool:
    """A person's address: not at a domain in the headers (the practice, a lab) nor on a "
    "business line."""
    domain = span.rsplit(b"@", 1)[1].decode("ascii", "replace").lower()
    return domain not in ctx.domains and not _org_line(ctx.text, hit.start, hit.end)


VALIDATORS: dict[str, Callable[[Hit, bytes, Context], bool]] = {
    "email_address": _valid_email,
    "_salutation": _valid_salutation,
    "ssn": lambda hit, span, ctx: (
        patterns.ssn_is_valid if hit.rule.variant == "plain" else patterns.ssn_labelled_is_plausible
    )(_digits(span)[-9:]),
    "npi": lambda hit, span, ctx: patterns.npi_is_valid(_digits(span)[-10:]),
    "cdt_code": lambda hit, span, ctx: int(span[1:]) >= 100,
    "icd10_code": _valid_icd,
    "tooth_surface": _valid_tooth_surface,
    "member_id": lambda hit, span, ctx: bool(_DIGITS.search(span.rsplit(None, 1)[-1])),
    "patient_name": _valid_name,
    "address": _valid_address,
    "phone": lambda hit, span, ctx: not _org_line(
        ctx.text, hit.start, hit.end, block=hit.rule.role == RECORD
    )
    and not (
        hit.rule.role == RECORD
        and _BUSINESS_PHONE_BEFORE.search(ctx.text, max(0, hit.start - 40), hit.start)
    ),
}


# ------------------------------------------------------------------ scanning


MAX_MATCHES = 50_000  # per segment (~1 s): real office mail gives ~37,000 per MB ("you", names)


class MatchLimit(Exception):
    """Far more pattern matches than real mail produces: give up early (fail closed)."""


def scan(text: bytes, location: str, extracted: Extracted | None = None) -> list[Hit]:
    """Validated hits of one segment (internal markers included, look-alikes dropped).
    Raises ``MatchLimit`` after ``MAX_MATCHES`` matches (crafted input would cost seconds)."""
    ctx = (
        Context(text)
        if extracted is None
        else Context(
            text,
            extracted.sender_tokens,
            extracted.header_tokens,
            extracted.recipient_tokens,
            extracted.domains,
        )
    )
    hits: list[Hit] = []
    for count, match in enumerate(patterns.combined().finditer(text)):
        if count >= MAX_MATCHES:
            raise MatchLimit(location)
        rule = patterns.rule_of(match)
        if rule.detector == "_skip":
            continue
        hit = _validated(rule, match, location, ctx)
        if hit is None and rule.detector in ("patient_name", "_salutation"):
            hit = _second_try(text, match, location, ctx)
        if hit is not None:
            hits.append(hit)
    return hits


def _validated(rule: Rule, match, location: str, ctx: Context) -> Hit | None:
    hit = Hit(rule, location, match.start(), match.end())
    validator = VALIDATORS.get(rule.detector)
    if validator is None:
        return hit
    try:
        return hit if validator(hit, match.group(), ctx) else None
    except Exception as exc:
        raise DetectorError(rule.detector, exc) from exc


_CAPITAL_NEXT = re.compile(rb"[ \t]+[A-Z]")
_GIVEN_RULE = next(r for r in patterns.RULES if r.group == "patient_name__given")
_NEXT_WORD = re.compile(rb"[^\s,]+[\s,]+")


def _second_try(text: bytes, match, location: str, ctx: Context) -> Hit | None:
    """A rejected name candidate may hide a real one after its first word ("<the recipient>,
    <a patient> O. called"): match once more from the second word (overlapping candidates)."""
    first = _NEXT_WORD.match(text, match.start())
    if first is None or first.end() >= match.end():
        return None
    own = patterns.combined().search(text, first.start(), first.end())
    if own is not None and patterns.rule_of(own).category in (CLINICAL, PAYMENT_CAT):
        # "Intruded E": the first word is itself a finding, not a given name
        return _validated(patterns.rule_of(own), own, location, ctx)
    word = _NAME_TOKENS.match(text[first.start() : first.end()].decode("utf-8", "replace"))
    if word is not None and word.group().lower() in lexicons.GIVEN_NAMES:
        # "<First> - <treatment>" read as a greeting line: the first word alone is a given name
        size = len(word.group().encode("utf-8"))
        alone = Hit(_GIVEN_RULE, location, first.start(), first.start() + size)
        if _valid_name(alone, text[alone.start : alone.end], ctx):
            return alone
    again = patterns.combined().search(text, first.end())
    if again is None or again.start() >= match.end():
        return None
    rule = patterns.rule_of(again)
    if rule.detector != "patient_name":
        return None
    return _validated(rule, again, location, ctx)


class DetectorError(Exception):
    """A detector failed; carries its name so the verdict can record it (fail closed)."""

    def __init__(self, detector: str, cause: Exception):
        super().__init__(detector)
        self.detector = detector
        self.cause = cause


# ------------------------------------------------------------------ deciding


@dataclass
class Decision:
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
        return specific.first_within(hit, NEAR_BYTES) or next(
            (
                c
                for c in generic.within(hit, GENERIC_NEAR_BYTES)
                if c.rule.variant not in ("anatomy", "general") and _same_block(text, hit, c)
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
    first = _NAME_TOKENS.match(text[hit.start : hit.end].decode("utf-8", "replace"))
    return first is not None and first.group().lower() in lexicons.GIVEN_NAMES


def _topics(extracted: Extracted, hits_by_segment: list[list[Hit]]) -> frozenset[str]:
    """The message-wide topics (``lexicons.TOPICS``) with enough distinct words present."""
    found: dict[str, set[bytes]] = {}
    for segment, hits in zip(extracted.segments, hits_by_segment, strict=True):
        for hit in hits:
            if hit.detector == "_topic":
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


def _records(hits: list[Hit], text: bytes) -> Hit | None:
    """A person's demographic record: a personal street address, phone or e-mail next to a
    person's name or birth date, not in a business's block (a vCard with an ORG, a company
    signature); or several personal street addresses (a mailing list of patients)."""
    people = [h for h in hits if h.rule.category == IDENTIFIER and h.role != PROVIDER]
    placed = Positioned(people)
    for hit in people:
        if hit.detector not in _CONTACT:
            continue
        for other in placed.within(hit, RECORD_BYTES):
            if other.detector in ("patient_name", "dob") and other is not hit:
                lo, hi = min(hit.start, other.start), max(hit.end, other.end)
                if not _ORG_WORD.search(text, max(0, lo - BLOCK_BYTES), hi + BLOCK_BYTES):
                    return hit
    addresses = [h for h in people if h.detector == "address"]
    return addresses[1] if len(addresses) >= 2 else None


THEIR_BYTES = 15  # "her crown", "his biopsy results"


def _someones(text: bytes, hits: list[Hit], content: Positioned) -> Hit | None:
    """Among colleagues, "her crown seat", "his biopsy results": treatment that belongs to a
    person the thread identifies (the name may be one no detector knows)."""
    for hit in hits:
        if hit.detector != "_their":
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
    selves = [h for h in hits if h.detector == "_self"]
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
) -> Decision:
    """Apply the combination rules; detectors in ``excluded`` are ignored (shadow mode)."""
    reasons: list[str] = []
    reported: list[Hit] = []
    extra: Counter[tuple[str, str, str]] = Counter()
    people_anywhere: list[Hit] = []  # WEAK identifiers, for the message-wide rule
    health_anywhere: list[tuple[str, str]] = []  # (detector, location) of specific clinical content
    subject_people: list[Hit] = []  # a person named in the Subject
    treatment_anywhere: list[Hit] = []  # treatment words (fee-list vocabulary included)
    topics = _topics(extracted, hits_by_segment)
    internal = not extracted.to_one_person and not extracted.bulk
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
        hits = [h for h in hits if h.detector not in excluded]
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
            [h for h in hits if h.detector == "_topic" and h.rule.variant in NEARBY_TOPICS]
        )

        people: list[Hit] = []
        for hit in hits:
            if hit.rule.category != IDENTIFIER:
                continue
            if not_patients and hit.detector != "mrn" and hit.rule.variant != "patient_label":
                continue  # employees and providers: only a chart number or "Patient:" counts
            if invented.first_within(hit, FICTION_BYTES):
                continue  # a fictitious, sample or de-identified record
            if hit.role == PROVIDER:
                reported.append(hit)
                continue
            if hit.role != STRONG and hit.start >= signature:
                continue
            if hit.role == NEAR and extracted.bulk:
                continue  # a bare name in a newsletter is staff news, not a patient
            people.append(hit)
            if hit.role == STRONG:
                reported.append(hit)
                reasons.append(f"identifier({hit.detector}) in {hit.location}")
                continue
            if business or hit.role == RECORD:
                continue
            near = _near(hit, generic, specific, text)
            if near is not None:
                reported.append(hit)
                reasons.append(
                    f"identifier({hit.detector})+{near.rule.category}({near.detector}) "
                    f"in {hit.location}"
                )
            elif hit.role == WEAK or segment.location == "subject":
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
            record = next((h for h in people if h.detector in ("address", "dob")), None)
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
    return Decision(bool(unique_reasons), findings, unique_reasons)


_OFFER_AFTER = re.compile(
    rb"(?i)s?\b\W{0,3}(?:consult(?:ation)?s?|screenings?|options?|questions?|benefits?|"
    rb"coverage|special|offer|financing|and x-?rays|department|dept|team|office|portal|address|"
    rb"fax|website|forms?|pads?|policy|policies|guidelines|process|discount|promo(?:tion)?|sale|"
    rb"\d+ ?%|(?:\$\d+ )?off)\b"
)


def _offer(text: bytes, hit: Hit) -> bool:
    """ "your implant consultation", "your claims department": services, not someone's care."""
    return text[hit.end - 1 : hit.end] in (b"s", b"S") or bool(
        _OFFER_AFTER.match(text, hit.end, hit.end + 20)
    )


_GENERAL_MENTION_BEFORE = re.compile(
    rb"(?i)\b(?:prevent\w*|avoid\w*|reduc\w*|lower\w*|risk of|risks|signs? of|symptoms? of|"
    rb"causes?|lead to|leads to|such as|fight\w*|protect\w* against|linked to|help(?:s)? with|"
    rb"ask (?:us )?about|learn about|interested in|did you know|tips? (?:for|on))"
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
        if hit.detector not in speakers:
            continue
        if hit.detector == "_your":
            for c in content.within(hit, YOUR_BYTES):
                if c.start >= hit.end and not (c.role != SPECIFIC and _offer(text, c)):
                    return c
        if hit.detector == "_amount":  # "$88.40" with "balance" and "crown": their bill
            near = list(content.within(hit, AMOUNT_BYTES))
            if any(c.rule.category == PAYMENT_CAT for c in near):
                for c in near:
                    if c.rule.category == CLINICAL and not _offer(text, c):
                        return c
        if hit.detector in ("_you", "_me", "_self"):
            # treatment words in the same sentence: "the crown we seat Wednesday, you ..."
            for c in content.within(hit, SENTENCE_BYTES):
                if (
                    c.rule.category == CLINICAL
                    and c.rule.variant not in ("anatomy", "general")
                    # "you ... our crowns" is an offer; "I had two fillings" is about me
                    and not (
                        _offer(text, c)
                        if hit.detector == "_you"
                        else _OFFER_AFTER.match(text, c.end, c.end + 20)
                    )
                    and _about_someone(text, c)
                    and _same_sentence(text, hit, c)
                ):
                    return c
            if hit.detector != "_you":  # "a receipt for what I paid": the writer's own bill
                for c in content.within(hit, SENTENCE_BYTES):
                    if c.rule.category == PAYMENT_CAT and _same_sentence(text, hit, c):
                        return c
        if hit.detector in ("_you", "_your", "_me", "_self"):
            # "you" next to money is how one talks to an insurer: only findings about a mouth count
            for c in specific.within(hit, YOU_BYTES):
                if (
                    c.rule.category == CLINICAL
                    and _about_someone(text, c)
                    and not _paragraph_break_between(text, hit, c)
                ):
                    return c
        if hit.detector == "_salutation" and clinical_specific is not None:
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
