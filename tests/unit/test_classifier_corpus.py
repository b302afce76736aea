"""The classifier against labelled sets, with the shipped policy's classifier settings.

tests/corpus is split once at random (seed in tests/corpus/author.py) into a tuning half and
an evaluation half; the detectors were tuned on the first only. Targets (issue 8) apply to
the evaluation half: recall >= 0.99, precision >= 0.97. The tuning half's figures and the
shared development set's (../shared/corpus/phi-dev, never tuned on since the split) are
printed next to them; phi-dev must keep recall >= 0.99 (nothing PHI gets through)."""

import csv
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.policy.classifiers import build_classifier
from gateway.policy.classifiers.evaluate import (
    LabelsError,
    evaluate,
    evaluate_halves,
    format_halves,
)
from tests.corpus import author

ROOT = Path(__file__).resolve().parents[2]
OWN = ROOT / "tests" / "corpus"
DEV = ROOT.parent / "shared" / "corpus" / "phi-dev"


@pytest.fixture(scope="module")
def classifier():
    """The classifier as the shipped configuration builds it (its shadow list included)."""
    config = load_config(ROOT / "config.example.yaml")
    return build_classifier(config.classifier.shadow)


@pytest.fixture(scope="module")
def halves(classifier):
    results = evaluate_halves(OWN, classifier)
    print("\n" + format_halves(results))
    return results


def test_corpus_is_split_once_by_the_recorded_seed():
    with (OWN / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    new = {r["file"]: r["split"] for r in rows if r["file"].startswith("msg-")}
    assert len(new) >= 300
    assert author.split(list(new)) == new  # the split is the seeded one, not picked by hand
    assert all(r["split"] == "tune" for r in rows if r["file"].startswith("own-"))
    for half in ("tune", "eval"):
        labels = [r["phi"] for r in rows if r["split"] == half and r["file"] in new]
        assert labels.count("1") >= 60 and labels.count("0") >= 60, half


def test_evaluation_half_meets_the_targets(halves):
    result = halves["eval"]
    assert result.total >= 150
    assert not result.errors, format_halves(halves)
    assert result.recall >= 0.99, format_halves(halves)
    assert result.precision >= 0.97, format_halves(halves)


def test_tuning_half_is_reported_and_classifies_without_errors(halves):
    assert list(halves) == ["tune", "eval"]
    assert halves["tune"].total >= 250 and not halves["tune"].errors


@pytest.mark.skipif(not DEV.is_dir(), reason="shared development corpus not present")
def test_development_corpus_lets_no_phi_through(classifier):
    result = evaluate(DEV, classifier)
    print(f"\nphi-dev: {result.format()}")
    assert result.total == 60
    assert not result.errors
    assert result.recall >= 0.99, result.format()


def write_set(tmp_path, rows, files, header="file,phi,category"):
    (tmp_path / "labels.csv").write_text(header + "\n" + "".join(f"{r}\n" for r in rows))
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)


PHI = b"From: a@b.example\nTo: c@d.example\nSubject: x\n\nPatient: Jane Doe, DOB 01/02/1980\n"
CLEAN = b"From: a@b.example\nTo: c@d.example\nSubject: x\n\nPotluck on Friday.\n"


def test_confusion_matrix_and_wrong_files(tmp_path, classifier):
    write_set(
        tmp_path,
        ["a.eml,1,x", "b.eml,0,x", "c.eml,0,x", "d.eml,1,x"],
        {"a.eml": PHI, "b.eml": CLEAN, "c.eml": PHI, "d.eml": CLEAN},
    )
    result = evaluate(tmp_path, classifier)
    assert (
        result.true_positive,
        result.false_positive,
        result.true_negative,
        result.false_negative,
    ) == (1, 1, 1, 1)
    assert result.wrong == ["c.eml", "d.eml"]
    assert result.precision == 0.5 and result.recall == 0.5
    data = result.to_json()
    assert data["confusion"] == {"tp": 1, "fp": 1, "tn": 1, "fn": 1}
    assert data["false_positives"] == ["c.eml"] and data["false_negatives"] == ["d.eml"]
    text = result.format()
    assert "precision: 0.500" in text and "c.eml" in text and "d.eml" in text
    assert "Jane" not in text


def test_halves_are_scored_apart_and_shown_side_by_side(tmp_path, classifier):
    write_set(
        tmp_path,
        ["a.eml,1,x,tune", "b.eml,0,x,tune", "c.eml,1,x,eval", "d.eml,0,x,eval"],
        {"a.eml": PHI, "b.eml": CLEAN, "c.eml": CLEAN, "d.eml": PHI},
        header="file,phi,category,split",
    )
    results = evaluate_halves(tmp_path, classifier)
    assert list(results) == ["tune", "eval"]
    assert (results["tune"].precision, results["tune"].recall) == (1.0, 1.0)
    assert results["eval"].false_negatives == ["c.eml"]
    assert results["eval"].false_positives == ["d.eml"]
    table = format_halves(results)
    assert table.splitlines()[0].split() == ["TUNE", "EVAL"]
    assert "recall" in table and "eval: missed (labelled phi, not flagged): c.eml" in table
    assert "Jane" not in table
    merged = evaluate(tmp_path, classifier)
    assert merged.total == 4 and merged.wrong == ["c.eml", "d.eml"]


def test_labels_problems_are_reported(tmp_path, classifier):
    with pytest.raises(LabelsError, match="not found"):
        evaluate(tmp_path, classifier)
    write_set(tmp_path, ["gone.eml,1,x"], {})
    with pytest.raises(LabelsError, match="gone.eml"):
        evaluate(tmp_path, classifier)
    write_set(tmp_path, ["a.eml,maybe,x"], {"a.eml": CLEAN})
    with pytest.raises(LabelsError, match="0 or 1"):
        evaluate(tmp_path, classifier)
    write_set(tmp_path, ["a.eml,1,x,both"], {"a.eml": CLEAN}, header="file,phi,category,split")
    with pytest.raises(LabelsError, match="split must be one of tune, eval"):
        evaluate(tmp_path, classifier)


def test_unsplit_set_is_one_half(tmp_path, classifier):
    write_set(tmp_path, ["a.eml,1,x"], {"a.eml": PHI})
    assert list(evaluate_halves(tmp_path, classifier)) == ["all"]

