"""The classifier child process (``python -m gateway.policy.classifiers.child``),
started and watched by ``isolated.IsolatedClassifier`` in the daemon.

It reads frames from stdin — 8-byte big-endian length, then a raw message —
and answers each with a frame holding the verdict as JSON; an empty frame
first says it is ready. It writes nothing else on its stdout (logs go to
stderr). It imports only the classifier (no asyncio, no config, no policy
engine): its memory is the interpreter, the compiled patterns and the one
message at hand.
"""

from __future__ import annotations

import gc
import json
import os
import struct
import sys

from gateway.model import Finding, Verdict

HEADER = struct.Struct(">Q")


def limit_verdict(why: str) -> Verdict:
    return Verdict(
        phi=True,
        findings=(Finding("unreadable", "unreadable", "message"),),
        errors=(f"classifier: {why} limit",),
        reasons=(f"unreadable (classifier {why} limit) in message",),
    )


def _read_exactly(stream, n: int) -> bytes | None:
    data = stream.read(n)
    return data if len(data) == n else None


def _serve(config: dict) -> None:
    """The child: classify frames from stdin until it closes."""
    import resource

    from gateway.policy.classifiers import build_classifier

    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed (logs) goes to stderr, never into the reply stream
    classifier = build_classifier(config["shadow"], timeout=config["timeout"])
    try:  # a hard ceiling where the sandbox lets us lower it (the parent watches RSS anyway)
        with open("/proc/self/status", "rb") as status:
            size = next(
                int(line.split()[1]) * 1024 for line in status if line.startswith(b"VmSize:")
            )
        limit = size + 2 * config["memory"]  # address space runs ahead of resident memory
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (OSError, ValueError, StopIteration):
        pass
    gc.collect()  # the interpreter and the classifier stay for good: full collections
    gc.freeze()   # walk only what came since (as the daemon does, gateway.malloc)
    replies.write(HEADER.pack(0))  # ready
    replies.flush()
    while (head := _read_exactly(requests, HEADER.size)) is not None:
        raw = _read_exactly(requests, HEADER.unpack(head)[0])
        if raw is None:
            return
        try:
            verdict = classifier.classify(raw)
        except MemoryError:
            verdict = limit_verdict("memory")
        del raw
        reply = json.dumps(verdict.to_json()).encode()
        replies.write(HEADER.pack(len(reply)) + reply)
        replies.flush()


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
