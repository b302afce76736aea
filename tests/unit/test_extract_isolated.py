"""The classifier in worker processes (what the daemon runs): same verdicts as in-process,
and the hard bounds — a child over its memory allowance or past the deadline is killed and
the message counts as PHI (unreadable); a dead child is replaced."""

from __future__ import annotations

import random

import pytest

from gateway.policy.classifiers import build_classifier
from gateway.policy.classifiers.isolated import IsolatedClassifier
from tests import mimegen

RNG_SEED = 11


def big_message() -> bytes:
    rng = random.Random(RNG_SEED)
    return mimegen.message(mimegen.multipart("mixed", [
        mimegen.text("See attached."),
        mimegen.attachment("application/octet-stream", "scan.bin", rng.randbytes(8 << 20))],
        "bb"))


@pytest.fixture
async def isolated():
    classifier = IsolatedClassifier(timeout=30.0)
    yield classifier
    await classifier.close()


async def test_same_verdicts_as_in_process(isolated):
    local = build_classifier()
    rng = random.Random(RNG_SEED)
    for where in ("body", "html_comment", "rfc822_base64", "broken_boundary"):
        raw = mimegen.place(where, mimegen.phi_sentence(rng), rng)
        assert await isolated.classify(raw) == local.classify(raw)
    harmless = mimegen.place("body", mimegen.Phi("Lunch is on Friday.", "0"), rng)
    assert await isolated.classify(harmless) == local.classify(harmless)
    assert not (await isolated.classify(harmless)).phi


async def test_memory_over_the_allowance_kills_the_child_and_counts_as_phi():
    classifier = IsolatedClassifier(timeout=30.0, memory=8 << 20)
    try:
        verdict = await classifier.classify(big_message())
        assert verdict.phi and verdict.reasons == (
            "unreadable (classifier memory limit) in message",)
        assert "unreadable" in verdict.categories
    finally:
        await classifier.close()


async def test_deadline_kills_the_child_and_counts_as_phi():
    classifier = IsolatedClassifier(timeout=0.05)
    try:
        verdict = await classifier.classify(big_message())
        assert verdict.phi and verdict.errors in (("classifier: time limit",),
                                                   ("classifier: start limit",))
    finally:
        await classifier.close()


async def test_a_dead_child_is_replaced(isolated):
    rng = random.Random(RNG_SEED)
    raw = mimegen.place("body", mimegen.phi_sentence(rng), rng)
    assert (await isolated.classify(raw)).phi
    (worker,) = isolated._idle
    worker.proc.kill()
    await worker.proc.wait()
    verdict = await isolated.classify(raw)
    assert verdict.phi and "unreadable" not in verdict.categories
    assert isolated._idle[0] is not worker
