"""Policy: the "decide" half of a submission.

``classifiers`` turns raw bytes into an explainable ``Verdict``; ``loader``
reads a policy YAML (``rules`` describes its shape) into a ``Policy``;
``engine.PolicyEngine.decide`` turns (envelope, verdict, raw) into a ``Plan``
with one ``Decision`` per recipient and a trace of every rule tried, using
the cheap local checks in ``conditions``. Nothing here performs an action or
touches the network; ``gateway.app`` wires ``classify`` and ``decide`` into
the Submission, which stores the Plan with the message before the 250.
"""
from gateway.policy.engine import Policy, PolicyEngine
from gateway.policy.loader import load_policy

__all__ = ["Policy", "PolicyEngine", "load_policy"]
