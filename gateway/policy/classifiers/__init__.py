"""PHI classifier: raw message bytes in, an explainable ``Verdict`` out.

Pure, synchronous and deterministic; imports only ``gateway.model`` and libraries.
``build_classifier(shadow=...)`` returns a ``MessageClassifier`` whose ``classify(raw)``
walks the message (``extract``), runs one combined RE2 pass per text segment
(``patterns``), and applies the combination rules (``scoring``). Findings carry
detector, category, location and count — never matched text.

Detectors named in ``shadow`` are still run and reported (``Finding.shadow=True``)
but do not count toward ``phi``. Any failure inside the classifier gives
``Verdict(phi=True, errors=("<detector>: <ExceptionClass>",))``: fail closed.

Coverage: every part the extractor could not read (broken MIME tree, unknown
encoding, a limit, the deadline, an encrypted or unsupported file…) becomes an
``unreadable`` finding (category ``unreadable``) with the reason
"unreadable (<why>) in <location>"; such a message is PHI whatever else it
says, and shadow mode never applies to it. Segment locations: ``subject``,
``header`` (values of headers a person or practice system added), ``body``,
``attachment:<n>`` (its text, file names and attached-message headers) and
``raw`` (the raw bytes of a broken tree, decoded best-effort); an unreadable
finding may also sit at ``message`` (the whole message: a worker limit).

The daemon runs the classifier in worker processes (``isolated``) that are killed
past the deadline or a memory allowance; ``policy test`` runs it in-process.

Detector names: ssn, ssn_last4, dob, mrn, member_id, claim_id, group_id,
account_number, npi, phone, email_address, address, patient_name, recipient_addressed
(identifiers);
cdt_code, icd10_code, tooth_number, tooth_surface, quadrant, procedure, diagnosis,
medication, perio_charting (clinical); payment; radiograph, dicom (attachment);
unreadable (coverage: a part that could not be read).
"""

from __future__ import annotations

from gateway.policy.classifiers.detectors import DETECTORS, check_shadow

__all__ = ["DETECTORS", "MessageClassifier", "build_classifier", "check_shadow"]
_LAZY = ("MessageClassifier", "build_classifier")


def __getattr__(name: str):
    """The classifier on first use: importing the package (the daemon does, for the
    detector names and the isolated runner) does not load its patterns and word lists."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from gateway.policy.classifiers import classifier

    value = getattr(classifier, name)
    globals()[name] = value
    return value
