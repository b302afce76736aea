"""Score a classifier against a labelled folder: ``DIR/labels.csv`` (``file,phi,...``) + the files.

Used by ``phigate policy eval DIR`` and by the corpus tests. The result holds the
confusion matrix, precision, recall and the names of the files classified wrongly
(file names only; the messages themselves are never printed). A ``split`` column
(``tune``/``eval``) divides the set into a tuning half and an evaluation half, scored
separately by ``evaluate_halves`` so they can be shown side by side.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.model import Verdict


class Classifier(Protocol):
    def classify(self, raw: bytes) -> Verdict: ...


TUNE, EVAL, ALL = "tune", "eval", "all"
HALVES = (TUNE, EVAL)


@dataclass
class EvalResult:
    true_positive: int = 0
    false_positive: int = 0
    true_negative: int = 0
    false_negative: int = 0
    false_positives: list[str] = field(default_factory=list)
    false_negatives: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # files whose verdict carried errors

    def add(self, name: str, labelled: bool, verdict: Verdict) -> None:
        if verdict.errors:
            self.errors.append(name)
        if verdict.phi and labelled:
            self.true_positive += 1
        elif verdict.phi:
            self.false_positive += 1
            self.false_positives.append(name)
        elif labelled:
            self.false_negative += 1
            self.false_negatives.append(name)
        else:
            self.true_negative += 1

    def merge(self, other: EvalResult) -> None:
        self.true_positive += other.true_positive
        self.false_positive += other.false_positive
        self.true_negative += other.true_negative
        self.false_negative += other.false_negative
        self.false_positives += other.false_positives
        self.false_negatives += other.false_negatives
        self.errors += other.errors

    @property
    def total(self) -> int:
        return self.true_positive + self.false_positive + self.true_negative + self.false_negative

    @property
    def precision(self) -> float:
        flagged = self.true_positive + self.false_positive
        return self.true_positive / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        actual = self.true_positive + self.false_negative
        return self.true_positive / actual if actual else 1.0

    @property
    def wrong(self) -> list[str]:
        return sorted(self.false_positives + self.false_negatives)

    def to_json(self) -> dict:
        return {
            "total": self.total,
            "confusion": {
                "tp": self.true_positive,
                "fp": self.false_positive,
                "tn": self.true_negative,
                "fn": self.false_negative,
            },
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "false_positives": sorted(self.false_positives),
            "false_negatives": sorted(self.false_negatives),
            "errors": sorted(self.errors),
        }

    def format(self) -> str:
        lines = [
            f"messages: {self.total}",
            "                 labelled phi   labelled not",
            f"  flagged phi    {self.true_positive:>12}   {self.false_positive:>12}",
            f"  not flagged    {self.false_negative:>12}   {self.true_negative:>12}",
            f"precision: {self.precision:.3f}   recall: {self.recall:.3f}",
        ]
        if self.false_negatives:
            lines.append(
                "missed (labelled phi, not flagged): " + ", ".join(sorted(self.false_negatives))
            )
        if self.false_positives:
            lines.append(
                "over-flagged (labelled not phi): " + ", ".join(sorted(self.false_positives))
            )
        if self.errors:
            lines.append("classifier errors on: " + ", ".join(sorted(self.errors)))
        return "\n".join(lines)


class LabelsError(ValueError):
    """labels.csv is missing, lacks the file/phi columns, or names a file that is not there."""


@dataclass(frozen=True)
class Label:
    file: str
    phi: bool
    split: str = ALL  # "tune", "eval", or ALL when the set is not split


def read_labels(directory: Path) -> list[Label]:
    path = directory / "labels.csv"
    if not path.is_file():
        raise LabelsError(f"{path}: not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"file", "phi"} <= set(reader.fieldnames):
            raise LabelsError(f"{path}: needs the columns file,phi")
        split = "split" in reader.fieldnames
        labels = []
        for line, row in enumerate(reader, start=2):
            value = (row["phi"] or "").strip().lower()
            if value not in ("0", "1", "true", "false", "yes", "no"):
                raise LabelsError(f"{path}:{line}: phi must be 0 or 1")
            half = (row["split"] or "").strip().lower() if split else ALL
            if split and half not in HALVES:
                raise LabelsError(f"{path}:{line}: split must be one of {', '.join(HALVES)}")
            labels.append(Label(row["file"].strip(), value in ("1", "true", "yes"), half))
    return labels


def evaluate_halves(directory: str | Path, classifier: Classifier) -> dict[str, EvalResult]:
    """One result per half (``tune`` then ``eval``), or ``{"all": ...}`` for an unsplit set."""
    directory = Path(directory)
    results: dict[str, EvalResult] = {}
    for label in read_labels(directory):
        message = directory / label.file
        if not message.is_file():
            raise LabelsError(f"{message}: listed in labels.csv but not found")
        verdict = classifier.classify(message.read_bytes())
        results.setdefault(label.split, EvalResult()).add(label.file, label.phi, verdict)
    order = [h for h in (*HALVES, ALL) if h in results]
    return {half: results[half] for half in order}


def evaluate(directory: str | Path, classifier: Classifier) -> EvalResult:
    """The whole labelled set as one result, halves merged."""
    merged = EvalResult()
    for result in evaluate_halves(directory, classifier).values():
        merged.merge(result)
    return merged


def format_halves(results: dict[str, EvalResult]) -> str:
    """A side-by-side table of the halves, then the wrongly classified files of each."""
    names = list(results)
    rows = [
        ("messages", [str(r.total) for r in results.values()]),
        ("labelled phi", [str(r.true_positive + r.false_negative) for r in results.values()]),
        ("labelled not", [str(r.true_negative + r.false_positive) for r in results.values()]),
        ("true positive", [str(r.true_positive) for r in results.values()]),
        ("false positive", [str(r.false_positive) for r in results.values()]),
        ("true negative", [str(r.true_negative) for r in results.values()]),
        ("false negative", [str(r.false_negative) for r in results.values()]),
        ("precision", [f"{r.precision:.3f}" for r in results.values()]),
        ("recall", [f"{r.recall:.3f}" for r in results.values()]),
        ("classifier errors", [str(len(r.errors)) for r in results.values()]),
    ]
    width = max(len(label) for label, _ in rows)
    columns = [max(len(n), 8) for n in names]
    lines = ["".ljust(width) + "  " + "  ".join(n.upper().rjust(w) for n, w in zip(names, columns))]
    for label, values in rows:
        lines.append(
            label.ljust(width) + "  " + "  ".join(v.rjust(w) for v, w in zip(values, columns))
        )
    for name, result in results.items():
        if result.false_negatives:
            lines.append(f"{name}: missed (labelled phi, not flagged): "
                         + ", ".join(sorted(result.false_negatives)))
        if result.false_positives:
            lines.append(f"{name}: over-flagged (labelled not phi): "
                         + ", ".join(sorted(result.false_positives)))
        if result.errors:
            lines.append(f"{name}: classifier errors on: " + ", ".join(sorted(result.errors)))
    return "\n".join(lines)
