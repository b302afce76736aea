"""Policy: the "decide" half of a submission.

``classifiers`` turns raw bytes into an explainable ``Verdict``; ``loader``
reads a policy YAML (``rules`` describes its shape) into a ``Policy``;
``engine.PolicyEngine.decide`` turns (envelope, verdict, raw) into a ``Plan``
with one ``Decision`` per recipient and a trace of every rule tried, using
the cheap local checks in ``conditions``. Nothing here performs an action or
touches the network; ``gateway.app`` wires ``classify`` and ``decide`` into
the Submission, which stores the Plan with the message before the 250.
"""

__all__ = ["Policy", "PolicyEngine", "load_policy"]

_LAZY = {"Policy": "gateway.policy.engine", "PolicyEngine": "gateway.policy.engine",
         "load_policy": "gateway.policy.loader"}


def __getattr__(name: str):
    """Resolved on first use, so the classifier child (which imports only
    ``gateway.policy.classifiers``) does not load the engine, pydantic and the config."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
