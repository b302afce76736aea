"""The detector names a policy or ``classifier.shadow`` may use, without loading the
classifier (its patterns and word lists): the daemon checks names in its own process
and classifies in child processes. ``tests/unit/test_classifier.py`` checks that this
list is exactly what ``patterns.RULES`` and the attachment checks report."""
from __future__ import annotations

from collections.abc import Iterable

DETECTORS: frozenset[str] = frozenset({
    "account_number", "address", "case_number", "cdt_code", "claim_id", "diagnosis",
    "dicom", "dob", "email_address", "group_id", "icd10_code", "medication", "member_id",
    "mrn", "npi", "patient_name", "payment", "perio_charting", "phone", "procedure",
    "quadrant", "radiograph", "recipient_addressed", "ssn", "ssn_last4", "tooth_number",
    "tooth_surface",
})


def check_shadow(shadow: Iterable[str]) -> frozenset[str]:
    """``shadow`` as a set, or ValueError naming the unknown detectors."""
    shadow = frozenset(shadow)
    unknown = shadow - DETECTORS
    if unknown:
        raise ValueError(f"unknown detector(s) for shadow mode: {', '.join(sorted(unknown))}")
    return shadow
