"""The classifier itself (``MessageClassifier``, ``build_classifier``); the package
docstring says what it does. Imported on first use (``classifiers.__getattr__``)."""


from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from gateway.model import Finding, Verdict
from gateway.policy.classifiers import patterns
from gateway.policy.classifiers.attachments import Budget
from gateway.policy.classifiers.detectors import check_shadow
from gateway.policy.classifiers.extract import extract
from gateway.policy.classifiers.scoring import DetectorError, decide, scan

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


def build_classifier(shadow: Iterable[str] = (), timeout: float | None = None) -> MessageClassifier:
    """A classifier; ``shadow`` names detectors to record but not act on (unknown names raise).
    ``timeout`` (seconds) is the per-message deadline the extractor checks as it reads; give it
    a little less than the caller's own deadline so the worker thread stops by itself."""
    shadow = check_shadow(shadow)
    budget = Budget() if timeout is None else Budget(seconds=max(0.1, timeout * 0.8))
    return MessageClassifier(shadow, budget)
