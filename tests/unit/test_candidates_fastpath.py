"""``candidates``' validation of phone numbers, street addresses and e-mail addresses against
the per-candidate logic it replaced.

The validators skip work that cannot change their answer: the line around a candidate is
cut out only where "location"/"organizer" occurs close by, and "call us at" is searched
for only where one of its words occurs within 40 bytes (``candidates.Spots``, one RE2 pass
per segment), and ``scan`` keeps every phone of a segment where none of those words occurs
without asking the validator. ``OLD`` below is the logic as it was before (every line cut out and
lowered, every business-phone search run, no per-segment shortcut at all). Both must
accept and reject the same candidates (rule, start, end): on every segment of the test
corpus, the shared development corpus and the generated messages of ``tests/mimegen.py``,
and on seeded random number-dense texts (phone numbers with and without business words
at every distance, LOCATION:/ORGANIZER lines, address blocks, e-mail addresses, names and
birth dates next to them, long lines past the line reach). The verdicts of every message
are compared too, and the comparison must notice each of the deliberately broken
shortcuts in ``MUTANTS``."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import re2

from gateway.policy.classifiers import build_classifier, candidates, patterns
from gateway.policy.classifiers.candidates import Context, Hit, names_org
from gateway.policy.classifiers.extract import extract
from gateway.policy.classifiers.patterns import RECORD
from tests import mimegen
from tests.unit.test_parse_fastpath import corpus, generated

CHECKED = ("phone", "address", "email_address")
OLD_BUSINESS_PHONE = (
    rb"(?i)\b(?:call(?: us| our office| the office)?(?: at| on)?|contact us(?: at)?|reach us(?: at)?|"
    rb"llame(?:nos)?(?: al)?|ll\xc3\xa1menos(?: al)?|fax|text us(?: at)?|questions\W*|office|"
    rb"main|toll[- ]free|helpdesk|help desk|support)[:\s]*$"
)


# ------------------------------------------------------------------ the logic before


def old_line_of(text: bytes, start: int, end: int, reach: int = 160) -> bytes:
    line_start = text.rfind(b"\n", max(0, start - reach), start) + 1 or max(0, start - reach)
    line_end = text.find(b"\n", end, end + reach)
    return text[line_start : line_end if line_end >= 0 else min(len(text), end + reach)]


def old_reason(text: bytes, start: int, end: int, block: bool = False) -> str | None:
    """Why the old ``_org_line`` said "a business's line" (None: it did not)."""
    line = old_line_of(text, start, end)
    if line.lstrip().lower().startswith((b"location", b"organizer")):
        return "calendar"
    if block:
        line = text[max(0, start - 100) : end + 100]
    return "business" if names_org(line) else None


def old_phone_reason(hit: Hit, ctx: Context) -> str | None:
    record = hit.rule.role == RECORD
    reason = old_reason(ctx.text, hit.start, hit.end, block=record)
    if reason is None and record:
        before = candidates._BUSINESS_PHONE_BEFORE.search(
            ctx.text, max(0, hit.start - 40), hit.start
        )
        reason = "call us" if before else None
    return reason


OLD = {
    "phone": lambda hit, span, ctx: old_phone_reason(hit, ctx) is None,
    "address": lambda hit, span, ctx: old_reason(ctx.text, hit.start, hit.end, block=True) is None
    and not candidates._BUSINESS_ADDRESS_BEFORE.search(ctx.text[max(0, hit.start - 40) : hit.start]),
    "email_address": lambda hit, span, ctx: (
        span.rsplit(b"@", 1)[1].decode("ascii", "replace").lower() not in ctx.domains
        and old_reason(ctx.text, hit.start, hit.end) is None
    ),
}


def context(text: bytes, extracted=None) -> Context:
    if extracted is None:
        return Context(text)
    return Context(
        text,
        extracted.sender_tokens,
        extracted.header_tokens,
        extracted.recipient_tokens,
        extracted.domains,
    )


def compare(text: bytes, extracted=None, tally: Counter | None = None) -> list[tuple]:
    """(rule, start, end, old, new) of every checked candidate the two disagree on: "new" is
    whether ``scan`` kept it (its per-segment shortcut for phones, then the validators)."""
    old_ctx = context(text, extracted)
    kept = {(h.rule.group, h.start, h.end) for h in candidates.scan(text, "body", extracted)}
    wrong = []
    for rule, start, end in patterns.matcher().finditer(text):
        if rule.detector not in CHECKED:
            continue
        hit, span = Hit(rule, "body", start, end), text[start:end]
        old = bool(OLD[rule.detector](hit, span, old_ctx))
        new = (rule.group, start, end) in kept
        if tally is not None:
            why = old_phone_reason(hit, old_ctx) if rule.detector == "phone" else None
            tally[(rule.detector, rule.role, old, why)] += 1
        if old != new:
            wrong.append((rule.group, start, end, old, new))
    return wrong


# ------------------------------------------------------------------ number-dense texts

BUSINESS = [
    "call us at ", "Call the office at: ", "CALL OUR OFFICE ON ", "contact us ", "Reach us at ",
    "fax: ", "FAX ", "Fax:\t", "Questions? ", "questions -- ", "Ll\u00e1menos al ", "llame al ",
    "LLAMENOS ", "text us at ", "Office: ", "office\r\n", "main ", "Main line ", "Toll-free ",
    "toll free: ", "Help Desk: ", "helpdesk ", "Support\t", "call ", "Call:\n",
]
LOOKALIKE = ["recall ", "domain ", "officer ", "supporter ", "faxed ", "calls ", "remains "]
PERSONAL = ["cell: ", "Mom ", "home phone ", "number is ", "reach her at ", "Tel. ", "ph "]
ORG = ["Smile Dental", "Acme Lab LLC", "Bright CLINIC", "dental", "the Office", "labels",
       "Practiceware", "our team", "Seguros", "Cl\u00ednica Sol"]
CALENDAR = ["LOCATION:", "Location: ", "  location ", "ORGANIZER;CN=", "organizer: ",
            "Locations ", "relocation ", "\tLOCATION:", "\r\nLOCATION:", "LOCATION"]
ADDRESS = ["123 Main Street", "4656 Birchbark Ct", "88 N. Elm Oak Ave.", "PO Box 12",
           "Domicilio: Calle Sol 88", "ship to 9 Pine Rd", "our office at 12 Oak Lane"]
PEOPLE = ["Patient: Ana Ruiz", "Yusuf Okafor, 03/14/1979", "DOB 03/14/1979", "Maria Lopez",
          "email: ana.ruiz@mail.example", "E-mail address: x.y@partner.test",
          "e-mail jo@smiledental.example"]
FILLER = ["La de da de da", "see below", "Thanks,", "re:", "claim", "x", "1234", "$88.40",
          "\u2014", "\xe9t\xe9"]
SEPARATORS = [" ", " ", "\r\n", "\n", ", ", "  ", "\t", "\r\n\r\n", ": "]


def phone(rng: random.Random) -> str:
    a, b, c = rng.randint(200, 999), rng.randint(200, 999), rng.randint(0, 9999)
    return rng.choice([
        f"{a}-{b}-{c:04d}", f"({a}) {b}-{c:04d}", f"+1 {a} {b} {c:04d}", f"{a}.{b}.{c:04d}",
        f"{a}{b}{c:04d}", f"1-{a}-{b}-{c:04d}",
    ])


def pad(rng: random.Random) -> str:
    """Filler of a random length, so that words fall on either side of every reach."""
    size = rng.choice([0, 1, 2, 5, 30, 35, 38, 39, 40, 41, 60, 95, 99, 100, 101, 150, 159, 160,
                       161, 200, rng.randint(0, 240)])
    return rng.choice([" ", "a", "de da ", "\u00e9", "-"]) * size if size else ""


def at_edge(rng: random.Random, word: str, reach: int) -> str:
    """``word`` and blanks up to ``reach`` bytes before what follows (give or take one)."""
    return word + " " * max(0, reach + rng.choice((-1, 0, 1)) - len(word.encode()))


def number_dense(rng: random.Random) -> bytes:
    pieces = []
    for _ in range(rng.randint(20, 70)):
        kind = rng.random()
        if kind < 0.45:
            before = rng.choice([BUSINESS, LOOKALIKE, PERSONAL, FILLER, [""]])
            gap = pad(rng) if rng.random() < 0.3 else ""
            pieces.append(rng.choice(before) + gap + phone(rng))
        elif kind < 0.5:
            pieces.append(at_edge(rng, rng.choice(BUSINESS), 40) + phone(rng))
        elif kind < 0.55:
            pieces.append(rng.choice(ORG))
        elif kind < 0.6:
            pieces.append(rng.choice(CALENDAR) + pad(rng))
        elif kind < 0.65:
            pieces.append(at_edge(rng, rng.choice(CALENDAR), 160) + phone(rng))
        elif kind < 0.75:
            pieces.append(rng.choice(ADDRESS))
        elif kind < 0.85:
            pieces.append(rng.choice(PEOPLE))
        elif kind < 0.93:
            pieces.append(pad(rng))
        else:
            pieces.append(rng.choice(FILLER))
        pieces.append(rng.choice(SEPARATORS))
    text = "".join(pieces)
    if rng.random() < 0.5:
        text = text.upper() if rng.random() < 0.3 else text.lower()
    return text.encode("utf-8")


def number_list(rng: random.Random) -> bytes:
    """A list of people's numbers (a recall list) with at most one business, calendar or
    call-us word somewhere in it: the texts where the whole segment has none, or just one."""
    lines = [rng.choice(PERSONAL + FILLER + [""]) + phone(rng) for _ in range(rng.randint(5, 40))]
    odd = rng.choice([None, BUSINESS, ORG, CALENDAR])
    if odd is not None:
        gap = pad(rng) if rng.random() < 0.5 else ""
        lines[rng.randrange(len(lines))] = rng.choice(odd) + gap + phone(rng)
    return rng.choice(["\r\n", "\n", ", "]).join(lines).encode("utf-8")


def synthetic() -> list[bytes]:
    rng = random.Random(20261205)
    return [number_dense(rng) for _ in range(400)] + [number_list(rng) for _ in range(200)]


def segments():
    """(text, extracted) of every segment of the corpus and generated messages."""
    for raw in corpus() + generated():
        extracted = extract(raw)
        for segment in extracted.segments:
            yield segment.text, extracted


# ------------------------------------------------------------------ the tests


def test_business_phone_pattern_is_unchanged():
    assert candidates._BUSINESS_PHONE_BEFORE.pattern == OLD_BUSINESS_PHONE


def test_number_dense_texts_are_validated_as_before():
    tally: Counter = Counter()
    for text in synthetic():
        assert compare(text, tally=tally) == [], text[:300]
    # the texts reach every branch: kept and rejected, for each reason
    for detector in CHECKED:
        assert tally.keys() & {(detector, r, True, None) for r in (RECORD, "weak", "near")}
        assert any(k[0] == detector and not k[2] for k in tally), detector
    reasons: Counter = Counter()
    for (detector, role, _, why), count in tally.items():
        if detector == "phone" and role == RECORD:
            reasons[why] += count
    assert reasons["calendar"] > 20 and reasons["business"] > 20 and reasons["call us"] > 20
    assert reasons[None] > 1000, reasons


def test_corpus_and_generated_segments_are_validated_as_before():
    tally: Counter = Counter()
    count = 0
    for text, extracted in segments():
        assert compare(text, extracted, tally) == [], text[:300]
        count += 1
    assert count > 450
    assert sum(n for k, n in tally.items() if k[0] == "phone") > 100, tally


def hits(pairs) -> list[list[tuple]]:
    """(rule, start, end) of every hit ``scan`` keeps, per (text, extracted) pair."""
    return [[(h.rule.group, h.start, h.end) for h in candidates.scan(t, "body", e)] for t, e in pairs]


def test_scan_keeps_the_same_hits_and_the_classifier_the_same_verdicts(monkeypatch):
    """``scan`` hit by hit on the synthetic texts and every corpus segment, and the verdict of
    every corpus and generated message (a number-dense one included), with the old
    validators put back."""
    rng = random.Random(7)
    dense = mimegen.headers() + b"\r\n" + b"\r\n".join(number_dense(rng) for _ in range(20))
    messages = corpus() + generated() + [dense]
    pairs = [(text, None) for text in synthetic()] + list(segments())
    classifier = build_classifier()
    ours = hits(pairs), [classifier.classify(raw) for raw in messages]
    for detector in CHECKED:
        monkeypatch.setitem(candidates.VALIDATORS, detector, OLD[detector])
    before = hits(pairs), [classifier.classify(raw) for raw in messages]
    for (text, _), kept, expected in zip(pairs, ours[0], before[0], strict=True):
        assert kept == expected, text[:300]
    for raw, verdict, expected in zip(messages, ours[1], before[1], strict=True):
        assert verdict == expected, raw[:200]
    assert sum(len(h) for h in ours[0]) > 5000
    assert sum(v.phi for v in ours[1]) > 100


def test_segments_with_more_spots_than_remembered_are_validated_as_before(monkeypatch):
    monkeypatch.setattr(candidates, "SPOTS_MAX", 2)
    for text in synthetic()[:100]:
        assert compare(text) == [], text[:300]


# ------------------------------------------------------------------ the comparison can fail


def _case_sensitive(words: bytes):
    return re2.compile(words)


def _meet_late(self, lo, hi):
    """Misses a short word ("fax", "LOCATION:") that starts just inside the window."""
    at = candidates.bisect_right(self._ends, lo + 8)
    return at < len(self._starts) and self._starts[at] < hi


MUTANTS = {
    "calendar words case-sensitive": lambda mp: mp.setattr(
        candidates, "_CALENDAR_ANYWHERE", _case_sensitive(b"location|organizer")
    ),
    "call-us words case-sensitive": lambda mp: mp.setattr(
        candidates, "_BUSINESS_PHONE_ANYWHERE", _case_sensitive(candidates._BUSINESS_PHONE_WORDS)
    ),
    "calendar words looked for 100 bytes around, not 160": lambda mp: mp.setattr(
        candidates, "LINE_REACH", 100
    ),
    "windows start 8 bytes late": lambda mp: mp.setattr(candidates.Spots, "meet", _meet_late),
    "too many spots counted as none": lambda mp: (
        mp.setattr(candidates, "SPOTS_MAX", 2), mp.setattr(candidates, "_EVERYWHERE", (0, 0))
    ),
    "no business-word check in the segment": lambda mp: mp.setattr(
        candidates, "_org_in_segment", lambda ctx: False
    ),
    "a segment with call-us words taken for one without business words": lambda mp: mp.setattr(
        candidates, "_BUSINESS_ANYWHERE", _words_of(CALENDAR_WORDS, ORG_WORDS)
    ),
    "a segment with calendar words taken for one without business words": lambda mp: mp.setattr(
        candidates, "_BUSINESS_ANYWHERE", _words_of(ORG_WORDS, CALL_US_WORDS)
    ),
    "a segment with business names taken for one without business words": lambda mp: mp.setattr(
        candidates, "_BUSINESS_ANYWHERE", _words_of(CALENDAR_WORDS, CALL_US_WORDS)
    ),
    "phones kept without asking whether the segment has business words": lambda mp: mp.setattr(
        candidates, "_no_business_words", lambda ctx: True
    ),
}
CALENDAR_WORDS = b"|".join(candidates._CALENDAR_LINE)
ORG_WORDS = candidates._ORG_ALTERNATION
CALL_US_WORDS = candidates._BUSINESS_PHONE_WORDS


def _words_of(*alternations: bytes):
    """The one-pass program ``_no_business_words`` asks, built from only some of the lists."""
    return candidates._anywhere(b"|".join(alternations))


def test_segments_without_business_words_take_the_shortcut_and_others_do_not():
    taken = Counter(
        candidates._no_business_words(Context(text)) for text in synthetic()
    )
    assert taken[True] > 20 and taken[False] > 400, taken


@pytest.mark.parametrize("name", list(MUTANTS))
def test_a_broken_shortcut_is_noticed(monkeypatch, name):
    MUTANTS[name](monkeypatch)
    assert any(compare(text) for text in synthetic()), name


def test_the_matcher_names_each_match_as_without_its_cache():
    """``Matcher.finditer`` names a repeated match from a cache keyed by its bytes and the byte
    on either side (and the text's edges): the same rules as looking each one up
    (``rule_at``)."""
    matcher = patterns.matcher()
    texts = synthetic()[:100] + [text for text, _ in segments()]
    count = 0
    for text in texts:
        expected = [
            (matcher.rule_at(text, start, end), start, end)
            for _, start, end in matcher.finditer(text)
        ]
        assert list(matcher.finditer(text)) == expected, text[:300]
        count += len(expected)
    assert count > 5_000


def test_the_rule_set_and_the_partitions_name_each_match_alike(monkeypatch):
    """Inside a text, ``Matcher`` asks one ``re2.Set`` pass which rules match a span exactly
    (with the byte on either side); at the text's edges, or should the Set find none (its DFA
    out of memory), the partitions answer. Both name every match alike."""
    matcher = patterns.matcher()
    spans = [
        (text, start, end)
        for text in synthetic()[:100] + [text for text, _ in segments()]
        for _, start, end in matcher.finditer(text)
    ]
    answers = []
    by_set = matcher._inside
    monkeypatch.setattr(
        matcher, "_inside", lambda span: answers.append(by_set(span)) or answers[-1]
    )
    named = [matcher.rule_at(text, start, end) for text, start, end in spans]
    monkeypatch.setattr(matcher, "_inside", lambda span: [])
    assert [matcher.rule_at(text, start, end) for text, start, end in spans] == named
    assert all(answers) and len(answers) > 5_000  # the Set answered every match inside a text
    assert len(answers) < len(spans)  # matches at a text's edges were not asked


def test_a_hit_is_an_immutable_value_read_by_name():
    rule = patterns.RULES[0]
    hit = candidates.Hit(rule, "body", 3, 9)
    assert (hit.rule, hit.location, hit.start, hit.end) == (rule, "body", 3, 9)
    assert (hit.detector, hit.role) == (rule.detector, rule.role)
    assert hit == candidates.Hit(rule, "body", 3, 9) and hit != candidates.Hit(rule, "body", 3, 8)
    assert hash(hit) == hash(candidates.Hit(rule, "body", 3, 9))
    with pytest.raises(AttributeError):
        hit.start = 4  # type: ignore[misc]
