"""From pattern matches to a PHI decision with reasons.

``scan()`` runs the one combined RE2 pass over a segment and keeps the matches
their validator accepts (checksums, SSN rules, "this capitalised pair is a name,
not a business, a colleague or the sender"). ``decide()`` applies HIPAA's
combination rule:

* a strong identifier (SSN, labelled DOB, chart/MRN, member id, a name given as
  "Patient:" or "records for") identifies a patient of the practice: PHI alone;
* a person (personal phone or e-mail, "Mr./Ms. X", "Name: X", a name standing in
  the Subject) with specific health content anywhere in the message (a tooth, a
  diagnosis, a drug, perio charting, a radiograph), or any health or payment
  information within ``NEAR_BYTES``;
* a bare name ("Jane Doe", "Bram's", "8:00 Rosalind"), a street address or an
  account/claim/group number only with health information close by (procedure
  words and CDT codes, which also fill fee lists, only on the same line);
* mail to one person outside the practice that says "your crown", puts "you"
  next to a finding about a mouth, or greets the recipient by name in a message
  with such a finding: the recipient is the identified person;
* DICOM files (they carry patient tags), attachments that could not be inspected.

Not patients: identifiers in the signature block, near "hypothetical" or
"typodont", the sender and other header names, staff introduced by role, sales
reps "from" a company, bare names in newsletters. Reasons name detectors and
places only, never matched text.
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
    SPECIFIC,
    STRONG,
    WEAK,
    PatternRow,
)

NEAR_BYTES = 200  # "close by" for names and numbers with health/payment content
GENERIC_NEAR_BYTES = (
    60  # a bare name with a procedure word or CDT code: same line ("Ann Lee -- D1110")
)
YOUR_BYTES = 25  # "your <clinical word>"
YOU_BYTES = 150  # second person near a specific finding, same paragraph
FICTION_BYTES = 400  # identifiers this close to "hypothetical", "typodont"... are not patients


@dataclass(frozen=True, slots=True)
class Hit:
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
    rb"thanks to)[ ,:]*$"
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


def _org_line(text: bytes, start: int, end: int) -> bool:
    """The line around a phone or street address names a business (or is a calendar LOCATION)."""
    line = _line_of(text, start, end)
    return bool(_ORG_WORD.search(line)) or line.lstrip().lower().startswith(
        (b"location", b"organizer")
    )


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
    """ "Riverside Bend" in mail from riversidebend.example is the practice, not a patient."""
    words = [_bare(t).lower() for t in tokens if len(t) >= 4]
    return any(word in domain for word in words for domain in ctx.domains)


def _valid_name(hit: Hit, span: bytes, ctx: Context) -> bool:
    variant = hit.rule.variant
    tokens = _NAME_TOKENS.findall(span.decode("utf-8", "replace").replace("\u2019", "'"))
    if variant in ("patient_label", "label"):
        while tokens and tokens[0].lower() in LABEL_WORDS:
            tokens.pop(0)
        kept = []  # the leading run of name-like tokens ("Jane Doe Thursday" -> "Jane Doe")
        for token in tokens:
            if token.lower() in lexicons.NOT_NAME_WORDS or token.lower() in lexicons.ORG_WORDS:
                break
            kept.append(token)
        return _name_ok(kept, ctx, ctx.sender_tokens)
    if variant == "title":  # "Mr. Lopez from Henry Schein" is a sales rep
        return _name_ok(tokens[1:2], ctx, ctx.sender_tokens) and not _AFFILIATION_AFTER.match(
            ctx.text, hit.end, hit.end + 40
        )
    # Unlabelled names: not anyone in the From/To/Cc headers (staff, the recipient), not a business.
    if variant in ("possessive", "reported"):
        tokens = tokens[:1]
    elif variant == "scheduled":
        tokens = tokens[-1:]
    if not _name_ok(tokens, ctx, ctx.header_tokens) or _in_domain(tokens, ctx):
        return False
    before = ctx.text[max(0, hit.start - 40) : hit.start]
    if variant == "full" and _AFFILIATION_BEFORE.search(before):
        return False  # "from Henry Schein", "at Delta Dental"
    if _ROLE_BEFORE.search(before) or _CREDENTIAL_AFTER.match(ctx.text[hit.end : hit.end + 12]):
        return False  # "our hygienist Sarah Lopez", "Sarah Lopez, RDH": staff, not a patient
    if variant == "full":
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
    """A greeting counts only if it names the recipient ("Hi Sam" in mail to Sam Whitcombe)."""
    name = _NAME_TOKENS.findall(span.decode("utf-8", "replace"))[-1:]
    return bool(name) and name[0] in ctx.recipient_tokens


_BUSINESS_ADDRESS_BEFORE = re.compile(
    rb"(?i)\b(?:ship(?:ping)? to|deliver(?:y)? to|remit(?:tance)? to|bill to|return to|"
    rb"send it back to|ship it back to|"
    rb"our (?:new )?(?:address|office|location|building)(?: is| at)?|"
    rb"located at|visit us at|pick ?up (?:at|from)|drop[- ]off at)[:\s]*$"
)


def _valid_address(hit: Hit, span: bytes, ctx: Context) -> bool:
    """A person's street address: not a business line, not "ship to" / "our office at"."""
    before = ctx.text[max(0, hit.start - 40) : hit.start]
    return not _org_line(ctx.text, hit.start, hit.end) and not _BUSINESS_ADDRESS_BEFORE.search(
        before
    )


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
    "phone": lambda hit, span, ctx: not _org_line(ctx.text, hit.start, hit.end),
}


# ------------------------------------------------------------------ scanning


MAX_MATCHES = 25_000  # per segment; 10 MB of real office prose gives ~7,000


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
    rules = patterns.RULES
    for count, match in enumerate(patterns.combined().finditer(text)):
        if count >= MAX_MATCHES:
            raise MatchLimit(location)
        rule = rules[match.lastindex - 1]  # group i is RULES[i-1]; rules have no inner groups
        if rule.detector == "_skip":
            continue
        hit = Hit(rule, location, match.start(), match.end())
        validator = VALIDATORS.get(rule.detector)
        if validator is not None:
            try:
                ok = validator(hit, match.group(), ctx)
            except Exception as exc:
                raise DetectorError(rule.detector, exc) from exc
            if not ok:
                continue
        hits.append(hit)
    return hits


class DetectorError(Exception):
    """A detector failed; carries its name so the verdict can record it (fail closed)."""

    def __init__(self, detector: str, cause: Exception):
        super().__init__(detector)
        self.detector = detector
        self.cause = cause


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
    for marker in (b"\n-- \n", b"\n--\n", b"\n-- \r\n", b"\n--\r\n"):
        found = text.find(marker)
        if found >= 0:
            return found
    return len(text) + 1


def _paragraph_break_between(text: bytes, a: Hit, b: Hit) -> bool:
    lo, hi = min(a.end, b.end), max(a.start, b.start)
    between = text[lo:hi]
    return b"\n\n" in between or b"\n \n" in between or b"\r\n\r\n" in between


def _near(hit: Hit, generic: Positioned, specific: Positioned) -> Hit | None:
    """The health/payment hit that makes this identifier a patient's, if one is close enough."""
    if hit.role == NEAR_CLINICAL:
        return next(
            (
                c
                for c in specific.within(hit, NEAR_BYTES)
                if c.rule.category == CLINICAL and c.detector != "medication"
            ),
            None,
        )
    reach = GENERIC_NEAR_BYTES if hit.role == NEAR else NEAR_BYTES
    return specific.first_within(hit, NEAR_BYTES) or generic.first_within(hit, reach)


def decide(
    extracted: Extracted, hits_by_segment: list[list[Hit]], excluded: frozenset[str] = frozenset()
) -> Assessment:
    """Apply the combination rules; detectors in ``excluded`` are ignored (shadow mode)."""
    reasons: list[str] = []
    reported: list[Hit] = []
    extra: Counter[tuple[str, str, str]] = Counter()
    people_anywhere: list[Hit] = []  # WEAK identifiers, for the message-wide rule
    health_anywhere: list[tuple[str, str]] = []  # (detector, location) of specific clinical content

    for segment, hits in zip(extracted.segments, hits_by_segment, strict=True):
        text = segment.text
        hits = [h for h in hits if h.detector not in excluded]
        signature = _signature_start(text)
        fiction = Positioned([h for h in hits if h.detector == "_fiction"])
        content = [h for h in hits if h.rule.category in (CLINICAL, PAYMENT_CAT)]
        generic = Positioned([h for h in content if h.role == GENERIC])
        specific = Positioned(
            [h for h in content if h.role != GENERIC]
        )  # specific clinical + payment
        reported.extend(content)
        health_anywhere.extend(
            (h.detector, h.location) for h in specific.hits if h.rule.category == CLINICAL
        )

        for hit in hits:
            if hit.rule.category != IDENTIFIER:
                continue
            if hit.role == PROVIDER:
                reported.append(hit)
                continue
            if fiction.first_within(hit, FICTION_BYTES):
                continue
            if hit.role != STRONG and hit.start >= signature:
                continue
            if hit.role == NEAR and extracted.bulk:
                continue  # a bare name in a newsletter is staff news, not a patient
            if hit.role == STRONG:
                reported.append(hit)
                reasons.append(f"identifier({hit.detector}) in {hit.location}")
                continue
            near = _near(hit, generic, specific)
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

        if extracted.to_one_person and "recipient_addressed" not in excluded and not fiction:
            fired = _addressed(text, hits, Positioned(content), specific)
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
    rb"fax|website|form|policy|policies|guidelines|process)\b"
)


def _offer(text: bytes, hit: Hit) -> bool:
    """ "your implant consultation", "your claims department": services, not someone's care."""
    return text[hit.end - 1 : hit.end] in (b"s", b"S") or bool(
        _OFFER_AFTER.match(text, hit.end, hit.end + 20)
    )


_GENERAL_MENTION_BEFORE = re.compile(
    rb"(?i)\b(?:prevent\w*|avoid\w*|reduc\w*|lower\w*|risk of|risks|signs? of|symptoms? of|"
    rb"causes?|lead to|leads to|such as|fight\w*|protect\w* against|linked to|help(?:s)? with)"
    rb"\b[\w ,-]{0,20}$"
)


def _about_someone(text: bytes, hit: Hit) -> bool:
    """A finding, not health education ("cleanings help prevent gum disease")."""
    return not _GENERAL_MENTION_BEFORE.search(text[max(0, hit.start - 40) : hit.start])


def _addressed(
    text: bytes, hits: list[Hit], content: Positioned, specific: Positioned
) -> Hit | None:
    """Mail to one person about that person: "your crown", "you" next to a specific finding in
    the same paragraph, or a greeting by name in a message with specific clinical content."""
    clinical_specific = next(
        (c for c in specific.hits if c.rule.category == CLINICAL and _about_someone(text, c)), None
    )
    for hit in hits:
        if hit.detector == "_your":
            for c in content.within(hit, YOUR_BYTES):
                if c.start >= hit.end and not (c.role != SPECIFIC and _offer(text, c)):
                    return c
        if hit.detector in ("_you", "_your"):
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
    return None
