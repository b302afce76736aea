"""The classifier against labelled sets: the shared development corpus and phigate's own
(tests/corpus, written separately). Thresholds from issue 3: recall >= 0.99, precision >= 0.95."""

from pathlib import Path

import pytest

from gateway.policy.classifiers import build_classifier
from gateway.policy.classifiers.evaluate import EvalResult, LabelsError, evaluate

ROOT = Path(__file__).resolve().parents[2]
OWN = ROOT / "tests" / "corpus"
DEV = ROOT.parent / "shared" / "corpus" / "phi-dev"


@pytest.fixture(scope="module")
def classifier():
    return build_classifier()


def check_thresholds(result: EvalResult) -> None:
    assert result.recall >= 0.99, result.format()
    assert result.precision >= 0.95, result.format()
    assert not result.errors, result.format()


def test_own_corpus_meets_thresholds(classifier):
    result = evaluate(OWN, classifier)
    assert result.total >= 40
    assert result.true_positive + result.false_negative >= 20  # both kinds well represented
    assert result.true_negative + result.false_positive >= 20
    check_thresholds(result)


@pytest.mark.skipif(not DEV.is_dir(), reason="shared development corpus not present")
def test_development_corpus_meets_thresholds(classifier):
    result = evaluate(DEV, classifier)
    assert result.total == 60
    check_thresholds(result)


def write_set(tmp_path, rows, files):
    (tmp_path / "labels.csv").write_text("file,phi,category\n" + "".join(f"{r}\n" for r in rows))
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


def test_labels_problems_are_reported(tmp_path, classifier):
    with pytest.raises(LabelsError, match="not found"):
        evaluate(tmp_path, classifier)
    write_set(tmp_path, ["gone.eml,1,x"], {})
    with pytest.raises(LabelsError, match="gone.eml"):
        evaluate(tmp_path, classifier)
    write_set(tmp_path, ["a.eml,maybe,x"], {"a.eml": CLEAN})
    with pytest.raises(LabelsError, match="0 or 1"):
        evaluate(tmp_path, classifier)
