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

from collections.abc import Iterable
from dataclasses import replace

from gateway.model import Finding, Verdict
from gateway.policy.classifiers import patterns
from gateway.policy.classifiers.attachments import Budget
from gateway.policy.classifiers.extract import extract
from gateway.policy.classifiers.scoring import DetectorError, decide, scan

__all__ = ["DETECTORS", "MessageClassifier", "build_classifier", "check_shadow"]

DETECTORS: frozenset[str] = frozenset(
    {r.detector for r in patterns.RULES if not r.detector.startswith("_")}
    | {"recipient_addressed", "radiograph", "dicom"}
)
UNREADABLE = "unreadable"


class MessageClassifier:
    """Classifies raw RFC 5322 messages; safe to share between threads (no mutable state)."""

    def __init__(self, shadow: frozenset[str] = frozenset(), budget: Budget | None = None):
        self.shadow = shadow
        self._budget = budget or Budget()  # limits and deadline per message (``Budget.started``)
        patterns.matcher()  # compile now, not on the first message

    def classify(self, raw: bytes) -> Verdict:
        stage = "extract"
        try:
            extracted = extract(raw, self._budget.started())
            stage = "match"
            hits = [scan(seg.text, seg.location, extracted) for seg in extracted.segments]
            stage = "scoring"
            acted = decide(extracted, hits, excluded=self.shadow)
            findings = list(acted.findings)
            if self.shadow:
                full = decide(extracted, hits)
                findings += [
                    replace(f, shadow=True) for f in full.findings if f.detector in self.shadow
                ]
            findings += [Finding(UNREADABLE, UNREADABLE, loc) for loc in _places(extracted)]
            errors = tuple(extracted.errors)
            coverage = tuple(f"unreadable ({why}) in {loc}" for loc, why in extracted.unreadable)
            phi = acted.phi or bool(errors) or bool(coverage)
            reasons = (
                coverage
                + tuple(acted.reasons)
                + (("classifier error (fail closed)",) if errors else ())
            )
            return Verdict(phi=phi, findings=tuple(findings), errors=errors, reasons=reasons)
        except DetectorError as exc:
            _log_error(exc.detector, type(exc.cause).__name__)
            return Verdict(
                phi=True,
                errors=(f"{exc.detector}: {type(exc.cause).__name__}",),
                reasons=("classifier error (fail closed)",),
            )
        except Exception as exc:  # noqa: BLE001 — fail closed, record the type only (no content)
            _log_error(stage, type(exc).__name__)
            return Verdict(
                phi=True,
                errors=(f"{stage}: {type(exc).__name__}",),
                reasons=("classifier error (fail closed)",),
            )


def _log_error(detector: str, error: str) -> None:
    """structlog (with asyncio underneath) is imported only when there is an error to log:
    the classifier child stays small."""
    import structlog

    structlog.get_logger().warning("classifier_error", detector=detector, error=error)


def _places(extracted) -> list[str]:
    """Locations with at least one unreadable part, in order, once each."""
    return list(dict.fromkeys(loc for loc, _ in extracted.unreadable))


def check_shadow(shadow: Iterable[str]) -> frozenset[str]:
    """``shadow`` as a set, or ValueError naming the unknown detectors."""
    shadow = frozenset(shadow)
    unknown = shadow - DETECTORS
    if unknown:
        raise ValueError(f"unknown detector(s) for shadow mode: {', '.join(sorted(unknown))}")
    return shadow


def build_classifier(shadow: Iterable[str] = (), timeout: float | None = None) -> MessageClassifier:
    """A classifier; ``shadow`` names detectors to record but not act on (unknown names raise).
    ``timeout`` (seconds) is the per-message deadline the extractor checks as it reads; give it
    a little less than the caller's own deadline so the worker thread stops by itself."""
    shadow = check_shadow(shadow)
    budget = Budget() if timeout is None else Budget(seconds=max(0.1, timeout * 0.8))
    return MessageClassifier(shadow, budget)
