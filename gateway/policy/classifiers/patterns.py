"""The PHI pattern table and its compiled forms.

Every detector is one or more ``PatternRow`` rows: a regex fragment, the detector name
reported in findings, its category and its *role* in scoring (see ``scoring``).
``matcher()`` compiles all rows into ONE google-re2 alternation, run over UTF-8 bytes
(docs/performance.md: ~75 MB/s, against well under 1 MB/s for stdlib ``re``), and says
which row each match is (``Matcher``).
``separate_stdlib()`` compiles the same rows one by one with stdlib ``re``; it exists
only so ``bench/classifier.py`` can compare the two. (The rules are written for RE2;
stdlib ``re`` accepts the same syntax here.) Given names come from the US Census lists
(``lexicons.GIVEN_NAMES``), not from any test corpus.

RE2 has no look-around, so context a pattern cannot express (Luhn, SSN area
rules, "not the sender's own name") is checked in Python by the validators in
``candidates`` on the few matched spans. Rows whose detector starts with ``_`` are
internal markers (first- and second-person words, topic words of HR, credentialing,
vendor, IT, fiction and de-identified mail, amounts, look-alikes to swallow) and never
become findings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache, partial

import re2

from gateway.policy.classifiers import lexicons

# Roles used by scoring.
STRONG = "strong"  # identifies a patient on its own (SSN, DOB, chart number...)
WEAK = "weak"  # a person, counts with health or payment info anywhere in the message
NEAR = "near"  # a person only when health or payment info is close by
NEAR_CLINICAL = "near_clinical"  # an account-like number: only close to clinical content
PROVIDER = "provider"  # identifies a clinician, never a patient: recorded only
RECORD = "record"  # a contact detail that identifies someone only as part of a record
GENERIC = "generic"  # clinical vocabulary also found in fee lists and job ads
SPECIFIC = "specific"  # clinical content about someone's mouth or health
PAYMENT = "payment"
MARKER = "marker"  # internal

IDENTIFIER, CLINICAL, PAYMENT_CAT, INTERNAL = "identifier", "clinical", "payment", "internal"


@dataclass(frozen=True, slots=True)
class PatternRow:
    detector: str
    variant: str
    category: str
    role: str
    regex: str

    @property
    def group(self) -> str:
        return f"{self.detector}__{self.variant}"


def _words(items: tuple[str, ...]) -> str:
    return r"(?i:\b(?:" + "|".join(items) + r")\b)"


_MONTH = (
    r"(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
DATE = (
    r"(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b|\d{4}-\d{2}-\d{2}\b"
    rf"|{_MONTH}\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}\b|\d{{1,2}} {_MONTH}\.?,? \d{{4}}\b)"
)
_PHONE = r"(?:\+?1[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}\b"
# Name letters: ASCII plus Latin-1 accented letters (accented given names and surnames); RE2 runs in UTF-8 mode.
_UP, _LO = "A-ZÀ-ÖØ-Þ", "a-zß-öø-ÿ"
_APOSTROPHE = "(?:'|\u2019)"
_NAME_WORD = rf"[{_UP}][{_UP}{_LO}'\-]+"
_NAME = rf"{_NAME_WORD}(?:,? {_NAME_WORD}){{0,2}}"


def _given(case_insensitive: bool) -> str:
    """Census given names as one alternation (RE2 compiles it to a trie)."""
    names = sorted(lexicons.GIVEN_NAMES)
    if case_insensitive:
        return r"(?i:\b(?:" + "|".join(names) + r"))"
    return r"\b(?:" + "|".join(n.capitalize() for n in names) + r")"


def _topic(kind: str) -> str:
    return _words(lexicons.TOPICS[kind])
_TOOTH = r"(?:3[0-2]|[12][0-9]|[1-9])"
_SURF = r"[MODBLFI]{1,5}"

RULES: tuple[PatternRow, ...] = (
    # --- look-alikes swallowed first so their digits cannot become teeth or ids; order and
    # ticket numbers also tell what the message is about (topics, see ``scoring``)
    PatternRow(
        "_topic",
        "vendor_ref",
        INTERNAL,
        MARKER,
        r"(?i:\b(?:order|invoice|inv|po|sku|tracking|item|lot|batch|rma|so)\.?)"
        r"\s?#?\s?[A-Z0-9-]*\d[A-Z0-9-]*",
    ),
    PatternRow(
        "_topic",
        "it_ref",
        INTERNAL,
        MARKER,
        r"(?i:\b(?:ticket|version|serial|build)\.?)\s?#?\s?[A-Z0-9-]*\d[A-Z0-9-]*",
    ),
    PatternRow(
        "case_number",
        "labelled",
        IDENTIFIER,
        NEAR_CLINICAL,
        r"(?i:\b(?:lab case|case|referral|ref)(?: number| no\.?| #|#| id)?)[\s:#.]{0,3}"
        r"[A-Z]{0,3}-?\d{3,12}\b",
    ),
    PatternRow(
        "_skip",
        "numbered",
        INTERNAL,
        MARKER,
        r"(?i:\b(?:room|suite|ste|unit|apt|box|no|row|section|seat|v|ext|extension|issue|"
        r"bay|page|step|line|gate|ref|case|model|tag|agreement|confirmation|flight|store)\.?)"
        r"\s?#?\s?[A-Z0-9-]*\d[A-Z0-9-]*",
    ),
    PatternRow(
        "_skip",
        "provider",
        INTERNAL,
        MARKER,
        rf"\b(?:Dr|Dra|Drs|Doctor|Doctora|Prof|Professor)\.? {_NAME_WORD}(?: {_NAME_WORD})?",
    ),
    PatternRow("_skip", "ip", INTERNAL, MARKER, r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b"),
    PatternRow(
        "_skip",
        "idiom",
        INTERNAL,
        MARKER,
        r"(?i:\b(?:pain[- ]free|painless|anxiety[- ]free|no more pain|growing pains|"
        r"a pain to|(?:a|such a|real|huge|big|total) pain\b|"
        r"(?:medical|health|dental) history forms?)\b)",
    ),
    # --- identifiers
    PatternRow(
        "ssn",
        "labelled",
        IDENTIFIER,
        STRONG,
        r"(?i:\b(?:ssn|ss#|ss ?no\.?|soc\.? ?sec\.?(?: no\.?| #)?|social security(?: number| "
        r"no\.?| #)?))"
        r"[^0-9\n]{0,8}\d{3}[- ]?\d{2}[- ]?\d{4}\b",
    ),
    PatternRow(
        "ssn_last4",
        "labelled",
        IDENTIFIER,
        STRONG,
        r"(?i:\b(?:(?:ssn|ss#|social security(?: number)?)\W{0,3}(?:last ?(?:4|four)|ending(?: "
        r"in)?)"
        r"|last ?(?:4|four)(?: digits)?(?: of)?(?: the)?(?: patient'?s)? (?:ssn|ss#|social(?: "
        r"security)?)(?: number| no\.?| #)?))"
        r"\W{0,3}\d{4}\b",
    ),
    PatternRow("ssn_last4", "masked", IDENTIFIER, STRONG, r"(?i:\bxxx-?xx-?)\d{4}\b"),
    PatternRow("ssn", "plain", IDENTIFIER, STRONG, r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b"),
    PatternRow(
        "dob",
        "labelled",
        IDENTIFIER,
        STRONG,
        r"(?i:\b(?:d\.o\.b\.?|dob\b|date of birth|birth ?date|birthday|born\b|b\.d\.|bday|"
        r"fecha de nacimiento|f\. ?nac\.?|nacid[oa]))"
        r"[^0-9\n]{0,15}" + DATE,
    ),
    PatternRow(  # a table row: "<First> <Last>, <date>" (a birth or visit date: a patient's record)
        "dob",
        "beside_name",
        IDENTIFIER,
        STRONG,
        rf"\b[{_UP}][{_LO}]+ [{_UP}][{_UP}{_LO}'\-]*[{_LO}][ \t]*[,;|\t][ \t]*" + DATE,
    ),
    PatternRow("npi", "labelled", IDENTIFIER, PROVIDER, r"(?i:\bnpi\b)[^0-9\n]{0,12}\d{10}\b"),
    PatternRow(
        "mrn",
        "labelled",
        IDENTIFIER,
        STRONG,
        r"(?i:\b(?:mrn|medical record(?: number| no\.?| #)?|chart(?: number| no\.?| id| ?#)?|"
        r"patient (?:number|no\.?|id|#)|pt\.? ?(?:#|id\b|no\.?)|patient account(?: number| "
        r"no\.?| #)?|"
        r"record (?:number|no\.?|#)))"
        r"[\s:#.]{0,4}[A-Z]{0,4}-?\d{3,12}\b",
    ),
    PatternRow(
        "member_id",
        "labelled",
        IDENTIFIER,
        STRONG,
        r"(?i:\b(?:member|subscriber|insured|policy(?:holder)?|medicaid|medicare|insurance|beneficiary)"
        r"(?: id| number| no\.?| #|#)|\bmbi\b|\bcert(?:ificate)? (?:number|no\.?|#))"
        r"[\s:#.]{0,4}[A-Za-z0-9][A-Za-z0-9-]{4,19}\b",
    ),
    PatternRow("member_id", "bare", IDENTIFIER, STRONG, r"\bID[\s:#]{1,3}[A-Z]{1,4}\d{6,12}\b"),
    PatternRow(
        "claim_id",
        "labelled",
        IDENTIFIER,
        NEAR_CLINICAL,
        r"(?i:\bclaim(?: number| no\.?| id| #|#)?)[\s:#.]{1,4}[A-Z0-9-]*\d[A-Z0-9-]{4,}\b",
    ),
    PatternRow(
        "group_id",
        "labelled",
        IDENTIFIER,
        NEAR_CLINICAL,
        r"(?i:\bgroup(?: number| no\.?| #| id|#)?)[\s:#.]{1,4}[A-Z]{0,5}-?\d[A-Z0-9-]{2,15}\b",
    ),
    PatternRow(
        "account_number",
        "labelled",
        IDENTIFIER,
        NEAR_CLINICAL,
        r"(?i:\b(?:account|acct)\.?(?: number| no\.?| #|#)?)[\s:#.]{0,4}\d{3,12}\b",
    ),
    PatternRow(
        "phone",
        "personal",
        IDENTIFIER,
        WEAK,
        r"(?i:\b(?:cell|cellphone|mobile|mob|home|home phone|cell phone|phone|ph|contact|from|"
        r"parent|"
        r"call ?back|call-back|callback number|(?:phone|cell|mobile|home|contact) (?:number|"
        r"no\.?|#)|"
        r"guardian|mom|dad|mother|father|spouse|wife|husband|number is|reach (?:her|him|them) at|"
        r"tel[eé]fono|celular|cel|tel|"
        r"call (?:her|him|them|the patient) at|text (?:her|him|them) at))\b"
        r"[^0-9\n]{0,25}" + _PHONE,
    ),
    PatternRow(
        "address",
        "street",
        IDENTIFIER,
        NEAR,
        r"\b\d{1,6} (?:[NSEW]\.? )?(?:[A-Z][a-z]+ ){1,3}(?:Street|St|Avenue|Ave|Road|Rd|"
        r"Boulevard|Blvd|"
        r"Drive|Dr|Lane|Ln|Way|Court|Ct|Circle|Cir|Place|Pl|Parkway|Pkwy|Terrace|Ter|Trail|Trl|"
        r"Highway|Hwy|Loop|Square|Sq|Run|Pike)\b\.?",
    ),
    PatternRow(
        "email_address",
        "labelled",
        IDENTIFIER,
        WEAK,
        r"(?i:\b(?:e-?mail|email "
        r"address)\b)[^@\n]{0,20}?\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
    ),
    PatternRow("address", "po_box", IDENTIFIER, NEAR, r"(?i:\bp\.?o\.? box)\s\d{1,6}\b"),
    PatternRow(  # Spanish order: "Domicilio: Calle <Name> 88"
        "address",
        "labelled",
        IDENTIFIER,
        NEAR,
        r"(?i:\b(?:domicilio|direcci[oó]n|home address|mailing address|new address is|adr))"
        r"[^\n\d]{0,40}\d{1,6}\b",
    ),
    PatternRow(
        "_salutation",
        "greeting",
        INTERNAL,
        MARKER,
        rf"(?i:\b(?:hi|hello|dear|hey|hola|good (?:morning|afternoon|evening))[ \t,]+"
        rf"(?:(?:dr|dra|mr|mrs|ms|miss|doctor)\.?[ \t]+)?)[{_UP}][{_LO}]+",
    ),
    PatternRow(
        "patient_name",
        "patient_label",
        IDENTIFIER,
        STRONG,
        r"(?i:\b(?:patient|pt|patient name|pt name|subscriber/patient|patient/subscriber|"
        r"(?:records?|x-?rays?|images?|radiographs?|films?|chart|referral|summary|treatment plan|"
        r"narrative|claim|statement|pre-?auth(?:orization)?|predetermination|lab slip|lab case|"
        r"case|rx|"
        r"crown|denture|bridge|night ?guard|implant|aligners|retainer|impressions?|models?) for))"
        r"[ \t]{0,3}[:\-/]?[ \t]{0,3}" + _NAME,
    ),
    PatternRow(
        "patient_name",
        "label",
        IDENTIFIER,
        WEAK,
        r"(?i:\b(?:name|first name|last name|full name|applicant|subscriber|insured|guarantor|"
        r"nombre|paciente|fn|debtor|caller|"
        r"parent/guardian|parent|guardian|child|son|daughter|re|regarding|from))"
        r"[ \t]{0,3}[:\-][ \t]{0,3}" + _NAME,
    ),
    PatternRow("patient_name", "title", IDENTIFIER, WEAK, rf"\b(?:Mr|Mrs|Ms|Miss|Mx)\.? {_NAME_WORD}"),
    PatternRow(
        "patient_name",
        "initial",
        IDENTIFIER,
        WEAK,
        _given(True) + r"[ ]{1,2}[A-Za-z]\b\.?",
    ),
    PatternRow(  # any capitalised word + initial and a full stop: "<First> S." (names beyond the census)
        "patient_name",
        "initial_any",
        IDENTIFIER,
        WEAK,
        rf"\b[{_UP}][{_LO}]{{2,}} [A-Z](?:\.|\b)",
    ),
    PatternRow(
        "patient_name",
        "full",
        IDENTIFIER,
        NEAR,
        rf"\b[{_UP}][{_LO}]+(?: [A-Z]\.?)? [{_UP}][{_UP}{_LO}'\-]*[{_LO}](?:-[{_UP}][{_LO}]+)?\b",
    ),
    PatternRow(
        "patient_name",
        "possessive",
        IDENTIFIER,
        NEAR,
        rf"\b[{_UP}][{_LO}]+{_APOSTROPHE}s\b|\b[{_UP}][{_LO}]+s{_APOSTROPHE}(?:\s|$)",
    ),
    PatternRow("patient_name", "inverted", IDENTIFIER, NEAR, rf"\b[{_UP}][{_LO}]+, [{_UP}][{_LO}]+\b"),
    PatternRow(
        "patient_name",
        "scheduled",
        IDENTIFIER,
        NEAR,
        rf"(?m:^)[ \t*•-]*\d{{1,2}}(?::\d{{2}})?[ \t]?(?i:am|pm|a\.m\.|p\.m\.)?[ \t]*[-–:|]?[ "
        rf"\t]*[{_UP}][{_LO}]+\b",
    ),
    PatternRow(
        "patient_name",
        "reported",
        IDENTIFIER,
        NEAR,
        rf"\b[{_UP}][{_LO}]+ (?:called|texted|emailed|phoned|said|says|mentioned|asked|"
        rf"complained|complains|"
        r"reported|came in|stopped by|is coming|is complaining|cancel(?:l)?ed|rescheduled|left "
        r"a (?:voice ?)?message|"
        r"felt|feels|still has|still feels|is here|is in|was in|is waiting|is asking|wants|needs|"
        r"would like|has (?:a|an|some|her|his)|is scheduled|was seen|is due|"
        r"llam[oó]|dice|pregunta|tiene)\b",
    ),
    PatternRow("_salutation", "line", INTERNAL, MARKER, rf"(?m:^)[{_UP}][{_LO}]+(?:,|[ \t]?-{{1,2}}|:)"),
    PatternRow("patient_name", "given", IDENTIFIER, NEAR, _given(False) + r"\b"),
    PatternRow("phone", "bare", IDENTIFIER, RECORD, _PHONE),
    # --- clinical content
    PatternRow(
        "tooth_surface",
        "tooth",
        CLINICAL,
        SPECIFIC,
        rf"(?:#\s?{_TOOTH}|(?i:\btooth) #?{_TOOTH})[ ,-]{{1,2}}{_SURF}\b",
    ),
    PatternRow(
        "tooth_surface",
        "material",
        CLINICAL,
        SPECIFIC,
        rf"\b{_SURF} (?i:amalgam|composite|resin|filling|restoration|onlay|inlay)\b",
    ),
    PatternRow("tooth_surface", "labelled", CLINICAL, SPECIFIC, rf"(?i:\bsurfaces?)[\s:]+{_SURF}\b"),
    PatternRow(
        "tooth_number",
        "hash",
        CLINICAL,
        SPECIFIC,
        rf"#\s?{_TOOTH}\b(?:\s?(?:-|,|&|/|(?i:and|to))\s?#?\s?{_TOOTH}\b)*",
    ),
    PatternRow(
        "tooth_number",
        "word",
        CLINICAL,
        SPECIFIC,
        r"(?i:\b(?:tooth|teeth|molars?|premolars?|bicuspids?|incisors?|canines?|cuspids?)"
        r"(?: no\.?| number| #)?) ?#?(?:" + _TOOTH + r"\b|[A-T]\b)",
    ),
    PatternRow(
        "quadrant",
        "named",
        CLINICAL,
        SPECIFIC,
        r"(?i:\b(?:upper|lower) (?:left|right)(?: quadrant| molars?| premolars?| side| teeth)?\b)",
    ),
    PatternRow(
        "quadrant",
        "code",
        CLINICAL,
        SPECIFIC,
        r"\b(?:UR|UL|LR|LL|Q[1-4])\b ?(?i:quad(?:rant)?s?\b|srp\b)|(?i:\bquad(?:rant)?s?) "
        r"?(?:[1-4]|UR|UL|LR|LL)\b",
    ),
    PatternRow(
        "perio_charting",
        "depths",
        CLINICAL,
        SPECIFIC,
        r"(?i:\bpockets?(?: depths?)?\b[^\n.]{0,40}?\b\d{1,2} ?mm\b|\b\d{1,2}(?: ?- ?\d{1,2})? ?mm "
        r"(?:pockets?|probing|depths?|bone loss|recession|attachment loss)|\bprobing depths?\b|"
        r"\bbop\b|"
        r"\bbleeding on probing\b|\bfurcation\b|\bclinical attachment loss\b|"
        r"\bperio(?:dontal)? chart(?:s|ing)?\b)",
    ),
    PatternRow("perio_charting", "site", CLINICAL, SPECIFIC, r"\b\d{1,2} ?mm #" + _TOOTH + r"\b"),
    PatternRow("cdt_code", "code", CLINICAL, GENERIC, r"\bD[0-9]{4}\b"),
    PatternRow(
        "icd10_code",
        "labelled",
        CLINICAL,
        SPECIFIC,
        r"(?i:\bicd[- ]?(?:10)?(?:-cm)?)[^A-Za-z0-9\n]{0,12}"
        r"[A-TV-Z]\d[0-9AB](?:\.?[0-9A-Z]{1,4})?\b",
    ),
    PatternRow("icd10_code", "dotted", CLINICAL, SPECIFIC, r"\b[A-TV-Z]\d[0-9AB]\.[0-9A-Z]{1,4}\b"),
    PatternRow("medication", "word", CLINICAL, SPECIFIC, _words(lexicons.MEDICATIONS)),
    PatternRow("diagnosis", "medical", CLINICAL, SPECIFIC, _words(lexicons.MEDICAL)),
    PatternRow("diagnosis", "spanish", CLINICAL, SPECIFIC, _words(lexicons.SPANISH)),
    PatternRow("medication", "general", CLINICAL, GENERIC, _words(lexicons.MEDICATION_WORDS)),
    PatternRow("diagnosis", "word", CLINICAL, SPECIFIC, _words(lexicons.DIAGNOSES)),
    PatternRow("procedure", "word", CLINICAL, GENERIC, _words(lexicons.PROCEDURES)),
    PatternRow("procedure", "anatomy", CLINICAL, GENERIC, _words(lexicons.ANATOMY)),
    PatternRow("payment", "word", PAYMENT_CAT, PAYMENT, _words(lexicons.PAYMENT)),
    PatternRow("payment", "spanish", PAYMENT_CAT, PAYMENT, _words(lexicons.SPANISH_PAYMENT)),
    # --- markers
    # topic phrases first: "her patients", "my shift" are topics before they are pronouns
    *(PatternRow("_topic", kind, INTERNAL, MARKER, _topic(kind)) for kind in lexicons.TOPICS),
    PatternRow(  # the writer's own health ("I have a fever", "my colonoscopy"), not a patient's
        "_self",
        "word",
        INTERNAL,
        MARKER,
        r"(?i:\b(?:i have|i've got|i had|i've had|i got|i'm having|i am having|i'm getting|"
        r"i am getting|for my own|my own|for my)\b)",
    ),
    PatternRow("_their", "word", INTERNAL, MARKER, r"(?i:\b(?:her|his|their)\b)"),
    PatternRow("_your", "word", INTERNAL, MARKER, r"(?i:\byour\b|\bsus?\b|\btus?\b)"),
    PatternRow(
        "_you", "word", INTERNAL, MARKER, r"(?i:\byou(?:'re|'ve|'ll|'d)?\b|\bu\b|\busted\b|\ble\b)"
    ),
    PatternRow(
        "_me",
        "word",
        INTERNAL,
        MARKER,
        r"(?i:\b(?:i|i'm|i've|i'd|my|me|myself|mine|mi|mis|tengo|estoy|siento)\b)",
    ),
    PatternRow("_amount", "dollars", INTERNAL, MARKER, r"\$ ?\d[\d,]*(?:\.\d\d)?"),
)


def _alternation(rules: tuple[PatternRow, ...], groups: bool) -> str:
    """``rules`` as one alternation, a group per rule (``groups``) or none."""
    return "|".join(f"(?P<{r.group}>{r.regex})" if groups else f"(?:{r.regex})" for r in rules)


_NO_MATCH = (-1, -1)
PART_CHARS = 6_000  # regex characters per partition (the census-name rules stand alone)


def latin1_program(pattern: bytes):
    """An RE2 program that reads bytes as Latin-1, one character a byte, as the standard
    library's engine reads bytes (RE2's default is UTF-8: there a byte sequence that is
    not UTF-8 matches no character class, not even a negated one)."""
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    return re2.compile(pattern, options)


def _compile(rules: tuple[PatternRow, ...], groups: bool):
    options = re2.Options()
    options.max_mem = 64 << 20
    program = re2.compile(_alternation(rules, groups).encode(), options)
    if program.groups != (len(rules) if groups else 0):
        raise ValueError("a rule regex has a capturing group; use (?:...)")
    return program


def _inside_set(rules: tuple[PatternRow, ...]):
    """``(text[start - 1 : end + 1]) -> indexes of the rules`` that match exactly
    ``text[start:end]`` where the text goes on both sides: an ``re2.Set`` of the rules, each
    between one byte of context either side, all anchored. RE2's empty-width assertions
    (``\\b``, ``^``, ``$``) read one byte beyond the span, so that byte is all the context a
    rule can see. Calls the binding under the wrapper, as ``_spans`` does."""
    options = re2.Options()
    options.max_mem = 64 << 20
    rule_set = re2.Set.FullMatchSet(options)
    for rule in rules:
        rule_set.Add(rb"\C(?:" + rule.regex.encode() + rb")\C")
    rule_set.Compile()
    return getattr(rule_set, "_set", rule_set).Match


def _spans(program, anchor: str):
    """``(text, pos, endpos) -> [group spans]`` (``_NO_MATCH`` first when nothing matches),
    with ``text`` as the context for ``\\b`` and ``$`` outside ``pos..endpos``. Calls the
    binding under google-re2's wrapper, whose Python costs as much as a small match; the
    public methods serve another release."""
    raw = getattr(program, "_regexp", None)
    kind = getattr(getattr(re2, "_Anchor", None), anchor, None)
    if raw is not None and kind is not None:
        return partial(raw.Match, kind)
    method = {"UNANCHORED": program.search, "ANCHOR_BOTH": program.fullmatch}[anchor]

    def public(text: bytes, pos: int, endpos: int) -> list[tuple[int, int]]:
        found = method(text, pos, endpos)
        if found is None:
            return [_NO_MATCH] * (program.groups + 1)
        return [found.span(i) for i in range(program.groups + 1)]

    return public


class Matcher:
    """Every rule as ONE google-re2 alternation without groups: a DFA pass that finds where the
    rules match (the same spans as with a group per rule, ~10x cheaper: asking RE2 for the
    groups of a 45,000-instruction program costs ~20 us per match). Which rule matched is the
    first rule that matches exactly that span (leftmost-first alternation). Inside a text, one
    ``re2.Set`` pass over the span and the byte on either side says which rules match it
    (~1 us); at the text's edges (and should the Set's DFA run out of memory) the rules are
    tried by partitions in order: a DFA test per partition, then the groups of the one small
    partition that matches (~10 us)."""

    def __init__(self, rules: tuple[PatternRow, ...] = ()):
        rules = rules or RULES
        if len({r.group for r in rules}) != len(rules):
            raise ValueError("duplicate rule group")
        self._rules = rules
        self._find = _spans(_compile(rules, groups=False), "UNANCHORED")
        self._inside = _inside_set(rules)
        self._parts = []
        for part in _partitions(rules):
            exact = _spans(_compile(part, groups=False), "ANCHOR_BOTH")
            which = _spans(_compile(part, groups=True), "ANCHOR_BOTH") if len(part) > 1 else None
            self._parts.append((part, exact, which))

    def rule_at(self, text: bytes, start: int, end: int) -> PatternRow:
        """The rule the alternation chose for its match ``text[start:end]``."""
        rule = self._first(text, start, end)
        if rule is None:
            raise LookupError("no rule matches the span the alternation matched")
        return rule

    def _first(self, text: bytes, start: int, end: int) -> PatternRow | None:
        """The first rule that matches exactly ``text[start:end]`` (in its context)."""
        if 0 < start and end < len(text):
            found = self._inside(text[start - 1 : end + 1])
            if found:
                return self._rules[min(found)]
        for part, exact, which in self._parts:
            if exact(text, start, end)[0] != _NO_MATCH:
                if which is None:
                    return part[0]
                spans = which(text, start, end)
                return part[spans.index(spans[0], 1) - 1]
        return None

    def finditer(self, text: bytes, pos: int = 0, endpos: int | None = None):
        """``(rule, start, end)`` of each match, as ``re2`` ``finditer`` finds them.
        The rule of a match depends only on its bytes and the byte on either side (all that
        RE2's empty-width assertions read), so a repeated word or number is looked up once per
        call (the cache lives as long as this one pass over one text)."""
        size = len(text)
        endpos = size if endpos is None else min(endpos, size)
        rules: dict[object, PatternRow] = {}
        find = self._find
        while pos <= endpos:
            start, end = find(text, pos, endpos)[0]
            if start < 0:
                return
            if 0 < start and end < size:
                key: object = text[start - 1 : end + 1]
            else:  # at an edge of the text: say which, and what is beside the other end
                key = (start == 0, end == size, text[start - (start > 0) : end + 1])
            rule = rules.get(key)
            if rule is None:
                rule = rules[key] = self.rule_at(text, start, end)
            yield rule, start, end
            pos = end if end > pos else pos + 1  # an empty match: step past it

    def search(self, text: bytes, pos: int = 0, endpos: int | None = None):
        """The first ``(rule, start, end)`` from ``pos``, or None."""
        return next(self.finditer(text, pos, endpos), None)

    def fullmatch(self, text: bytes) -> PatternRow | None:
        """The rule the alternation chooses when it must match all of ``text``, or None."""
        return self._first(text, 0, len(text))


def _partitions(rules: tuple[PatternRow, ...]) -> list[tuple[PatternRow, ...]]:
    """Consecutive rules, up to ``PART_CHARS`` of regex each."""
    parts: list[list[PatternRow]] = []
    size = 0
    for rule in rules:
        if not parts or size + len(rule.regex) > PART_CHARS:
            parts.append([])
            size = 0
        parts[-1].append(rule)
        size += len(rule.regex)
    return [tuple(p) for p in parts]


@lru_cache(maxsize=1)
def matcher() -> Matcher:
    """The compiled rules (``Matcher``), once per process."""
    return Matcher()


def separate_stdlib() -> list[tuple[PatternRow, re.Pattern[bytes]]]:
    """Every rule as its own stdlib pattern (benchmark comparison only)."""
    return [(r, re.compile(r.regex.encode())) for r in RULES]


# ---------------------------------------------------------------- validation


def ssn_is_valid(digits: str) -> bool:
    """SSA rules: no 000/666/9xx area, no 00 group, no 0000 serial."""
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def ssn_labelled_is_plausible(digits: str) -> bool:
    """A number labelled SSN counts even in the never-issued 9xx range (test and synthetic
    SSNs are still meant as SSNs); only all-zero fields are rejected."""
    return len(digits) == 9 and digits[:3] != "000" and digits[3:5] != "00" and digits[5:] != "0000"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def npi_is_valid(npi: str) -> bool:
    """An NPI is 10 digits whose Luhn check runs over the prefix 80840 + the number."""
    return len(npi) == 10 and npi[0] in "12" and luhn_ok("80840" + npi)


_SURFACE_OK = re.compile(r"[MODBLFI]+")


def surfaces_ok(letters: str) -> bool:
    return bool(_SURFACE_OK.fullmatch(letters)) and len(set(letters)) == len(letters)


_ICD_CHAPTER_OK = set("ABCDEFGHIJKLMNOPQRSTVWXYZ")


def icd10_is_plausible(code: str) -> bool:
    """ICD-10-CM shape: letter (not U), two digits (or digit + A/B for a few chapters),
    optional dot and 1-4 characters; a code of 3+ characters after the dot must be
    alphanumeric and must not look like a version number."""
    code = code.strip().upper()
    if len(code) < 3 or code[0] not in _ICD_CHAPTER_OK or not code[1].isdigit():
        return False
    head, dot, tail = code.partition(".")
    if not dot:
        head, tail = code[:3], code[3:]
    if len(head) != 3 or not (head[2].isdigit() or head[2] in "AB"):
        return False
    return len(tail) <= 4
