"""Edges that turn a protocol into (Envelope, bytes) for the core
(``Submission.accept`` in ``gateway/submission.py``, passed in by ``app``).
``smtp`` is the staff submission listener. Edges never deliver: they must not
import ``actions``, ``delivery`` or ``queue`` (a test checks the direction)."""
