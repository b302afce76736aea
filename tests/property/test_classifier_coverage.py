"""Hypothesis property of the classifier's coverage: a random MIME tree carrying a PHI
sentence (patient label, name, date of birth, chart number, clinical detail — put together
from generic parts in ``tests/mimegen.py``) in a random place — body, HTML comment or
attribute, a file name at any level, an attached message sent base64 (nested), a calendar
invite, vCard, CSV or RTF, a quoted reply, or a tree with a broken boundary — is never
"no PHI": the verdict is PHI (found) or PHI-suspect (unreadable), and in a well-formed tree
it is found, not merely suspected."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.policy.classifiers import build_classifier
from tests import mimegen

CLASSIFIER = build_classifier()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(mimegen.PLACES), rng=st.randoms(use_true_random=False))
def test_phi_anywhere_is_never_no_phi(where, rng):
    phi = mimegen.phi_sentence(rng)
    raw = mimegen.wrapped(where, phi, rng)
    verdict = CLASSIFIER.classify(raw)
    assert verdict.phi, (where, verdict.reasons)
    found = {f.detector for f in verdict.findings if f.detector != "unreadable"}
    if where not in mimegen.BROKEN:
        assert "unreadable" not in verdict.categories, (where, verdict.reasons)
        assert {"patient_name", "mrn"} <= found, (where, verdict.reasons)
    assert phi.marker not in repr(verdict.to_json())
