"""Score a classifier against a labelled folder: ``DIR/labels.csv`` (``file,phi,...``) + the files.

Used by ``phigate policy eval DIR`` and by the corpus tests. The result holds the
confusion matrix, precision, recall and the names of the files classified wrongly
(file names only; the messages themselves are never printed).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.model import Verdict


class Classifier(Protocol):
    def classify(self, raw: bytes) -> Verdict: ...


@dataclass
class EvalResult:
    true_positive: int = 0
    false_positive: int = 0
    true_negative: int = 0
    false_negative: int = 0
    false_positives: list[str] = field(default_factory=list)
    false_negatives: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # files whose verdict carried errors

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


def read_labels(directory: Path) -> list[tuple[str, bool]]:
    path = directory / "labels.csv"
    if not path.is_file():
        raise LabelsError(f"{path}: not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"file", "phi"} <= set(reader.fieldnames):
            raise LabelsError(f"{path}: needs the columns file,phi")
        labels = []
        for line, row in enumerate(reader, start=2):
            value = (row["phi"] or "").strip().lower()
            if value not in ("0", "1", "true", "false", "yes", "no"):
                raise LabelsError(f"{path}:{line}: phi must be 0 or 1")
            labels.append((row["file"].strip(), value in ("1", "true", "yes")))
    return labels


def evaluate(directory: str | Path, classifier: Classifier) -> EvalResult:
    directory = Path(directory)
    result = EvalResult()
    for name, labelled in read_labels(directory):
        message = directory / name
        if not message.is_file():
            raise LabelsError(f"{message}: listed in labels.csv but not found")
        verdict = classifier.classify(message.read_bytes())
        if verdict.errors:
            result.errors.append(name)
        if verdict.phi and labelled:
            result.true_positive += 1
        elif verdict.phi:
            result.false_positive += 1
            result.false_positives.append(name)
        elif labelled:
            result.false_negative += 1
            result.false_negatives.append(name)
        else:
            result.true_negative += 1
    return result
