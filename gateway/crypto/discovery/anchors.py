"""Read ``direct.anchors``: PEM files holding one or more CA certificates each."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from gateway.crypto.discovery.trust import certificates_in


class AnchorError(ValueError):
    """An anchor file that is missing, unreadable or holds no certificate;
    the message names the config key (``direct.anchors[i]``) and the fix."""


def load_anchors(paths: Sequence[Path]) -> list[x509.Certificate]:
    anchors: list[x509.Certificate] = []
    for i, path in enumerate(paths):
        key = f"direct.anchors[{i}]"
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise AnchorError(f"{key}: cannot read {path} ({exc.strerror}); "
                              "give a PEM file with the Direct trust anchors") from None
        found = certificates_in(data)
        if not found:
            raise AnchorError(f"{key}: {path} holds no certificate; "
                              "give a PEM file with the Direct trust anchors")
        anchors += [c for c in found if c not in anchors]
    return anchors
