"""Which private tokens a message a test received shows, as a reader would see them.

A notice or a delivery report carries identifiers made at random (a Message-ID,
a MIME boundary, a queue id, a link's token). A plain substring test would find
a date's year or a chart number inside such a run of digits by chance, and fail
one run in a few hundred. A token counts as shown when it starts a word (no
letter or digit just before it) and, if it ends in a digit, ends a number (no
digit just after it): ``DOB 03/14/1982`` and ``crowns`` show their tokens, a
random ``…41982289…`` does not.
"""
from __future__ import annotations

import re


def shown_tokens(text: str | bytes, tokens) -> list[str]:
    """The tokens that ``text`` shows, case-insensitively (see the module)."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    found = []
    for token in tokens:
        tail = r"(?![0-9])" if token[-1:].isdigit() else ""
        if re.search(rf"(?<![0-9a-z]){re.escape(token)}{tail}", text, re.IGNORECASE):
            found.append(token)
    return found
