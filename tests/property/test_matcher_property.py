"""Hypothesis property of the pattern pass: ``patterns.matcher()`` (a group-less RE2 pass, then
the rule looked up per partition) finds exactly what one alternation with a named group per
rule finds — the same (rule, start, end) for ``finditer``, ``search`` from any position to any
end, and ``fullmatch`` — on random text built from pieces the rules care about (names,
clinical and payment words, numbers, dates, phone-like runs, labels, punctuation, line breaks
and non-ASCII bytes)."""

from __future__ import annotations

import re2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.policy.classifiers import patterns

_OPTIONS = re2.Options()
_OPTIONS.max_mem = 64 << 20
REFERENCE = re2.compile(patterns._alternation(patterns.RULES, groups=True).encode(), _OPTIONS)
MATCHER = patterns.matcher()

PIECES = [
    b"Patient:", b"Pt", b"DOB", b"SSN", b"MRN", b"chart", b"Member ID:", b"NPI", b"Hi", b"Dear",
    b"Mrs.", b"Dr.", b"Ana", b"Ruiz", b"Yusuf", b"A.", b"O'Neil", b"Jos\xc3\xa9", b"\xc3\x81lvarez",
    b"crown", b"abscess", b"#14", b"#3", b"MOD", b"D2740", b"K02.52", b"amoxicillin", b"500 mg",
    b"5 mm", b"UL", b"balance", b"$88.40", b"$ 40", b"invoice", b"order", b"you", b"your", b"my",
    b"I", b"her", b"payroll", b"fictitious", b"555-201-3344", b"(555) 201-3344", b"+1 555 201 3344",
    b"219-09-9999", b"1234567893", b"03/14/1979", b"2026-12-05", b"March 3, 2024", b"4656",
    b"Birchbark Ct", b"PO Box 12", b"cell:", b"call us at", b"Dental", b"Clinic", b"LLC",
    b"a@b.example", b"x", b"12", b"0", b"9", b"-", b".", b",", b":", b"'", b"\xe2\x80\x99",
]
SEPARATORS = [b" ", b"", b"\n", b"\r\n", b", ", b"\n\n", b"\t", b"> ", b"\xff"]


def _rule(match):
    return patterns.RULES[match.lastindex - 1]


text_strategy = st.lists(
    st.tuples(st.sampled_from(PIECES), st.sampled_from(SEPARATORS)), max_size=40
).map(lambda parts: b"".join(piece + sep for piece, sep in parts))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text_strategy, data=st.data())
def test_matcher_finds_what_one_group_per_rule_finds(text, data):
    expected = [(_rule(m), *m.span()) for m in REFERENCE.finditer(text)]
    assert list(MATCHER.finditer(text)) == expected
    pos = data.draw(st.integers(0, len(text)))
    endpos = data.draw(st.integers(pos, len(text)))
    found = REFERENCE.search(text, pos, endpos)
    assert MATCHER.search(text, pos, endpos) == (
        None if found is None else (_rule(found), *found.span())
    )
    word = data.draw(st.sampled_from([*text.split(), b""]))
    whole = REFERENCE.fullmatch(word)
    assert MATCHER.fullmatch(word) == (None if whole is None else _rule(whole))
