"""Candidates: the one RE2 pass over a text segment, and the validators that keep a match.

``scan()`` runs ``patterns.matcher()`` over a segment and keeps the matches their
validator accepts: checksums and SSA rules, "this capitalised word is a given name and not
the sender, a colleague introduced by role, a business or a word of the practice's
domain", "this address or phone is not a business's block". A rejected name may hide a
real one after its first word, so it is matched once more from there (overlapping
candidates). What the accepted hits mean together is ``scoring``'s job.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from operator import attrgetter
from typing import Any, NamedTuple

import re2

from gateway.policy.classifiers import lexicons, patterns
from gateway.policy.classifiers.extract import Extracted
from gateway.policy.classifiers.patterns import CLINICAL, PAYMENT_CAT, RECORD, PatternRow

BLOCK_BYTES = 100  # a business name this close to an address or phone: its address block


class Hit(NamedTuple):
    """A validated match. Immutable and hashable; a named tuple, not a frozen dataclass,
    because one is built per candidate (a page of phone numbers makes hundreds) and a
    frozen dataclass costs ~0.7 us more to build. Its fields are read by name only."""

    rule: PatternRow
    location: str
    start: int
    end: int

    detector = property(attrgetter("rule.detector"))
    role = property(attrgetter("rule.role"))


# ``Hit(...)`` without the named tuple's own ``__new__``, a Python function (~0.1 us a hit)
_new_hit = partial(tuple.__new__, Hit)


@dataclass(frozen=True, slots=True)
class Context:
    text: bytes
    sender_tokens: frozenset[str] = frozenset()  # words of the From display name
    header_tokens: frozenset[str] = frozenset()  # words of every From/To/Cc display name
    recipient_tokens: frozenset[str] = frozenset()  # words of the To display names
    domains: tuple[str, ...] = ()
    facts: dict[object, Any] = field(default_factory=dict, compare=False)  # found when first asked


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
NAME_TOKENS = re.compile(r"[^\W\d_][\w'\-]*")
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


_ORG_WORDS = frozenset(w.encode() for w in lexicons.ORG_WORDS)
_WORD = re.compile(rb"\w+")


def _anywhere(alternation: bytes):
    """An RE2 program that finds ``alternation`` inside longer words too and in any case
    (bytes as Latin-1): one DFA pass over a segment (stdlib ``re`` takes ~60 ns a byte to
    search for the "call us at" words, ~2 us for the 40 bytes before each phone number)."""
    return patterns.latin1_program(b"(?i:" + alternation + b")")


_ORG_ALTERNATION = b"|".join(re2.escape(w) for w in sorted(_ORG_WORDS))
_ORG_ANYWHERE = _anywhere(_ORG_ALTERNATION)


def names_org(text: bytes, start: int = 0, end: int | None = None) -> bool:
    """Some whole word of ``text[start:end]`` is a business word (ASCII case
    folded). A set lookup per word: one regex alternation of every business
    word cost ~50 us per call, once per phone number. Splitting the words costs
    ~8 us for the lines around a phone number, so a DFA search first skips the
    slices where no business word occurs even as part of a word."""
    if _ORG_ANYWHERE.search(text, start, len(text) if end is None else end) is None:
        return False
    return not _ORG_WORDS.isdisjoint(_WORD.findall(text[start:end].lower()))


LINE_REACH = 160  # bytes either side of a match that ``_line_of`` looks at for the line ends
_CALENDAR_LINE = (b"location", b"organizer")  # a line that starts so is where a meeting is
_CALENDAR_ANYWHERE = _anywhere(b"|".join(_CALENDAR_LINE))


def _line_of(text: bytes, start: int, end: int, reach: int = LINE_REACH) -> bytes:
    line_start = text.rfind(b"\n", max(0, start - reach), start) + 1 or max(0, start - reach)
    line_end = text.find(b"\n", end, end + reach)
    return text[line_start : line_end if line_end >= 0 else min(len(text), end + reach)]


def _org_line(ctx: Context, start: int, end: int, block: bool = False) -> bool:
    """The line around a phone or street address names a business (or is a calendar LOCATION);
    with ``block``, the lines just above and below count too (an address block under a
    practice's name). The line is cut out only where a calendar word occurs close by."""
    text = ctx.text
    if _spots(ctx, _CALENDAR_ANYWHERE).meet(start - LINE_REACH, end + LINE_REACH) and (
        _line_of(text, start, end).lstrip().lower().startswith(_CALENDAR_LINE)
    ):
        return True
    if not _org_in_segment(ctx):
        return False
    if block:
        return names_org(text[max(0, start - BLOCK_BYTES) : end + BLOCK_BYTES])
    return names_org(_line_of(text, start, end))


def _org_in_segment(ctx: Context) -> bool:
    """A business word occurs somewhere in the segment (as part of a word, in any case): if not,
    no line of it names one. One search per segment instead of one per phone number."""
    found = ctx.facts.get("org")
    if found is None:
        found = ctx.facts["org"] = _ORG_ANYWHERE.search(ctx.text) is not None
    return found


SPOTS_MAX = 1_000  # matches remembered per segment (~2 ms); past that, every window meets one
_EVERYWHERE = (-sys.maxsize, sys.maxsize)


class Spots:
    """Where an ``_anywhere`` program matches in one segment: its leftmost non-overlapping
    matches, as ``finditer`` finds them. Every place where the program could match starts
    inside one of them (the leftmost search from the end of the match before reaches it),
    so a window that meets none of them holds no match of the program, nor of any pattern
    whose matches begin with a match of it. A segment with more than ``SPOTS_MAX`` matches
    counts as one match everywhere (each candidate is then checked in full)."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, program, text: bytes):
        spans = [found.span() for found in islice(program.finditer(text), SPOTS_MAX + 1)]
        if len(spans) > SPOTS_MAX:
            spans = [_EVERYWHERE]
        self._starts = [start for start, _ in spans]
        self._ends = [end for _, end in spans]

    def __bool__(self) -> bool:
        return bool(self._starts)

    def meet(self, lo: int, hi: int) -> bool:
        """Some match overlaps ``lo..hi`` (ends are increasing: the first one past ``lo``)."""
        at = bisect_right(self._ends, lo)
        return at < len(self._starts) and self._starts[at] < hi


def _spots(ctx: Context, program) -> Spots:
    """``Spots`` of ``program`` in the segment, found when first asked (one pass per segment
    instead of a search per candidate)."""
    found = ctx.facts.get(program)
    if found is None:
        found = ctx.facts[program] = Spots(program, ctx.text)
    return found


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
    rule = patterns.matcher().fullmatch(word.encode("utf-8"))
    return rule is not None and rule.category in (CLINICAL, PAYMENT_CAT)


def _valid_name(hit: Hit, span: bytes, ctx: Context) -> bool:
    variant = hit.rule.variant
    tokens = NAME_TOKENS.findall(span.decode("utf-8", "replace").replace("\u2019", "'"))
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
    name = NAME_TOKENS.findall(span.decode("utf-8", "replace"))[-1:]
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
_BUSINESS_PHONE_WORDS = (
    rb"call(?: us| our office| the office)?(?: at| on)?|contact us(?: at)?|reach us(?: at)?|"
    rb"llame(?:nos)?(?: al)?|ll\xc3\xa1menos(?: al)?|fax|text us(?: at)?|questions\W*|office|"
    rb"main|toll[- ]free|helpdesk|help desk|support"
)
_BUSINESS_PHONE_BEFORE = re.compile(rb"(?i)\b(?:" + _BUSINESS_PHONE_WORDS + rb")[:\s]*$")
_BUSINESS_PHONE_ANYWHERE = _anywhere(_BUSINESS_PHONE_WORDS)  # wider: no \b, RE2's case folding
PHONE_BEFORE = 40  # bytes before a phone number where "call us at" makes it a business's


def _valid_address(hit: Hit, span: bytes, ctx: Context) -> bool:
    """A person's street address: not a business line, not "ship to" / "our office at"."""
    before = ctx.text[max(0, hit.start - 40) : hit.start]
    return not _org_line(
        ctx, hit.start, hit.end, block=True
    ) and not _BUSINESS_ADDRESS_BEFORE.search(before)


def _valid_email(hit: Hit, span: bytes, ctx: Context) -> bool:
    """A person's address: not at a domain in the headers (the practice, a lab) nor on a "
    "business line."""
    domain = span.rsplit(b"@", 1)[1].decode("ascii", "replace").lower()
    return domain not in ctx.domains and not _org_line(ctx, hit.start, hit.end)


def _valid_dob(hit: Hit, span: bytes, ctx: Context) -> bool:
    """A "<First> <Last>, <date>" row names a person: not "On Tue, <date>" (a reply's
    attribution line) nor any other pair of calendar or business words."""
    if hit.rule.variant != "beside_name":
        return True
    tokens = NAME_TOKENS.findall(span.decode("utf-8", "replace"))[:2]
    return _name_ok(tokens, ctx, frozenset())


# a calendar, business or "call us" word: one DFA pass where the three lists take one each
_BUSINESS_ANYWHERE = _anywhere(
    b"|".join((b"|".join(_CALENDAR_LINE), _ORG_ALTERNATION, _BUSINESS_PHONE_WORDS))
)


def _no_business_words(ctx: Context) -> bool:
    """No calendar, business or "call us at" word occurs in the segment, not even inside
    another word: then ``_valid_phone`` accepts every phone of it, and ``scan`` keeps a
    page of numbers without asking it about each one."""
    return _BUSINESS_ANYWHERE.search(ctx.text) is None


def _valid_phone(hit: Hit, span: bytes, ctx: Context) -> bool:
    """A person's phone: not on a business line; as part of a record (``RECORD``), not in a
    business's block nor after "call us at" (searched for only where such a word is close)."""
    start = hit.start
    record = hit.rule.role == RECORD
    if _org_line(ctx, start, hit.end, block=record):
        return False
    return not (
        record
        and _spots(ctx, _BUSINESS_PHONE_ANYWHERE).meet(start - PHONE_BEFORE, start)
        and _BUSINESS_PHONE_BEFORE.search(ctx.text, max(0, start - PHONE_BEFORE), start)
    )


VALIDATORS: dict[str, Callable[[Hit, bytes, Context], bool]] = {
    "dob": _valid_dob,
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
    "phone": _valid_phone,
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
    phones_kept: bool | None = None  # ``_no_business_words``, asked at the first phone
    for count, (rule, start, end) in enumerate(patterns.matcher().finditer(text)):
        if count >= MAX_MATCHES:
            raise MatchLimit(location)
        detector = rule.detector
        if detector == "_skip":
            continue
        if detector not in VALIDATORS:
            hits.append(_new_hit((rule, location, start, end)))
            continue
        if detector == "phone":
            if phones_kept is None:
                phones_kept = _no_business_words(ctx)
            if phones_kept:
                hits.append(_new_hit((rule, location, start, end)))
                continue
        hit = _validated(rule, start, end, location, ctx)
        if hit is None and detector in ("patient_name", "_salutation"):
            hit = _second_try(text, start, end, location, ctx)
        if hit is not None:
            hits.append(hit)
    return hits


def _validated(rule: PatternRow, start: int, end: int, location: str, ctx: Context) -> Hit | None:
    hit = _new_hit((rule, location, start, end))
    validator = VALIDATORS.get(rule.detector)
    if validator is None:
        return hit
    try:
        return hit if validator(hit, ctx.text[start:end], ctx) else None
    except Exception as exc:
        raise DetectorError(rule.detector, exc) from exc


_CAPITAL_NEXT = re.compile(rb"[ \t]+[A-Z]")
_GIVEN_RULE = next(r for r in patterns.RULES if r.group == "patient_name__given")
_NEXT_WORD = re.compile(rb"[^\s,]+[\s,]+")


def _second_try(text: bytes, start: int, end: int, location: str, ctx: Context) -> Hit | None:
    """A rejected name candidate may hide a real one after its first word ("<the recipient>,
    <a patient> O. called"): match once more from the second word (overlapping candidates)."""
    first = _NEXT_WORD.match(text, start)
    if first is None:
        return None
    own = patterns.matcher().search(text, first.start(), first.end())
    if own is not None and own[0].category in (CLINICAL, PAYMENT_CAT):
        # "Intruded E": the first word is itself a finding, not a given name
        return _validated(*own, location, ctx)
    word = NAME_TOKENS.match(text[first.start() : first.end()].decode("utf-8", "replace"))
    if word is not None and word.group().lower() in lexicons.GIVEN_NAMES:
        # "<First> - <treatment>" read as a greeting line: the first word alone is a given name
        size = len(word.group().encode("utf-8"))
        alone = Hit(_GIVEN_RULE, location, first.start(), first.start() + size)
        if _valid_name(alone, text[alone.start : alone.end], ctx):
            return alone
    if first.end() >= end:
        return None
    again = patterns.matcher().search(text, first.end())
    if again is None or again[1] >= end:
        return None
    if again[0].detector != "patient_name":
        return None
    return _validated(*again, location, ctx)


class DetectorError(Exception):
    """A detector failed; carries its name so the verdict can record it (fail closed)."""

    def __init__(self, detector: str, cause: Exception):
        super().__init__(detector)
        self.detector = detector
        self.cause = cause
