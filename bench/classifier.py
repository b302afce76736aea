"""PHI classifier benchmark (run by hand, not in CI): ``.venv/bin/python bench/classifier.py``.

Prints, in one run on the same input:
* MB/s of the pattern pass over plain clinical prose: ONE combined google-re2
  alternation on bytes (what the classifier uses) against the same rules as many
  separate stdlib ``re`` patterns;
* MB/s of ``classify()`` on a large plain-text message (MIME parse + scan + scoring);
* median ``classify()`` time for a 5 KB message;
* median ``classify()`` time for a ~1 MB message with a PDF attachment.
Goal from issue 3: >= 50 MB/s and < 1 ms median for 5 KB.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.policy.classifiers import build_classifier, patterns
from gateway.policy.classifiers.scoring import scan
from tests.corpus.build import make_pdf

FILLER = (
    "The hygiene team reviewed home care with the family and talked about brushing twice a day. "
    "We went over the schedule for the spring, the new parking arrangements and the front desk "
    "hours. "
    "Please remember that the office closes early on Fridays during the summer months. "
    "Our sterilization logs were reviewed and the autoclave spore test passed this week. "
)
PHI_TOKENS = (
    "Patient: Jane Doe, DOB 03/14/1979",
    "SSN 219-09-9999",
    "Member ID: XJ4471920",
    "D2740 on #14",
    "K02.52",
    "her cell is (555) 201-3344",
    "abscess on #31",
    "amoxicillin 500 mg",
    "5 mm pockets UL",
    "Mrs. Okafor's crown",
    "4656 Birchbark Ct",
    "chart PT28830",
    "NPI 1234567893",
    "balance of $88.40",
)


def prose(size: int, seed: int = 7) -> bytes:
    """Clinical-office prose with a PHI-like token every 1-3 KB."""
    rng = random.Random(seed)
    parts: list[str] = []
    length = 0
    while length < size:
        chunk = FILLER * rng.randint(3, 8) + rng.choice(PHI_TOKENS) + ".\n"
        parts.append(chunk)
        length += len(chunk)
    return "".join(parts).encode()[:size]


def message(body: bytes, pdf: bytes | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Desk <desk@cedarhollowdental.example>"
    msg["To"] = "Dr. Vik <avik@cedarhollowdental.example>"
    msg["Subject"] = "notes"
    msg.set_content(body.decode())
    if pdf is not None:
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="records.pdf")
    return bytes(msg)


def best_of(runs: int, func) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def median_of(runs: int, func) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    text = prose(10 << 20)
    mb = len(text) / 1e6
    combined = patterns.combined()
    separate = patterns.separate_stdlib()

    def combined_pass():
        return sum(1 for _ in combined.finditer(text))

    def separate_pass():
        return sum(1 for _, rx in separate for _ in rx.finditer(text))

    t_combined = best_of(3, combined_pass)
    t_scan = best_of(3, lambda: scan(text, "body"))
    sample = text[: 1 << 20]  # stdlib is slow: time 1 MB and scale
    t_separate = best_of(1, lambda: sum(1 for _, rx in separate for _ in rx.finditer(sample)))
    print(
        f"input: {mb:.1f} MB clinical prose, PHI-like token every 1-3 KB, "
        f"{len(patterns.RULES)} rules"
    )
    print(
        f"  one combined re2 pass (bytes):          {mb / t_combined:8.1f} MB/s  "
        f"({combined_pass()} matches)"
    )
    print(f"  combined pass + validation (scan()):    {mb / t_scan:8.1f} MB/s")
    print(
        f"  {len(separate)} separate stdlib re patterns:       "
        f"{len(sample) / 1e6 / t_separate:8.1f} MB/s  "
        f"(1 MB sample)"
    )

    classifier = build_classifier()
    big = message(text)
    t_big = best_of(3, lambda: classifier.classify(big))
    print(
        f"classify() on a {len(big) / 1e6:.1f} MB plain-text message: "
        f"{len(big) / 1e6 / t_big:8.1f} MB/s"
    )

    small = message(prose(5 * 1024, seed=11))
    classifier.classify(small)
    t_small = median_of(2000, lambda: classifier.classify(small))
    print(f"classify() median, {len(small) / 1024:.1f} KB message:        {t_small * 1e3:8.3f} ms")

    lines = prose(600 * 1024, seed=13).decode().splitlines()
    pdf = make_pdf(lines)
    with_pdf = message(prose(2 * 1024, seed=17), pdf)
    t_pdf = median_of(5, lambda: classifier.classify(with_pdf))
    print(
        f"classify() median, {len(with_pdf) / 1e6:.2f} MB message with a {len(pdf) / 1e6:.2f} "
        f"MB PDF: "
        f"{t_pdf * 1e3:8.1f} ms"
    )


if __name__ == "__main__":
    main()
