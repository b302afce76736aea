"""The shape of a policy file (pydantic models; semantic checks live in ``loader``).

A policy is an ordered list of named rules, first match wins per recipient,
and a mandatory ``default``. Every key of ``when`` must hold for a rule to
match (an absent key is no constraint); a key given a list matches when any
element does. Example::

    lists:
      practice_domains: [smiledental.example]
    rules:
      - name: internal
        description: Staff mail inside the practice stays on the practice's mail system
        when: {recipient_list: practice_domains}
        action: relay
        allow_phi_plaintext: true
    default: {action: relay}
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gateway.config.types import Size


def _as_list(value):
    """Let a single value stand where a list is expected (``recipient_domain: x.example``)."""
    return [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value


Names = Annotated[list[str], BeforeValidator(_as_list)]
Place = Literal["subject", "body", "attachment"]
Category = Literal["identifier", "clinical", "payment", "attachment", "error", "unreadable"]
ActionName = Literal["relay", "smime", "direct", "portal", "hold", "reject"]
FallbackName = Literal["relay", "smime", "direct", "portal", "hold"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class When(Strict):
    """Conditions of a rule; all given keys must hold."""
    recipient: Names | None = None           # exact addresses (compared without case)
    recipient_domain: Names | None = None    # "example.org" exact, "*.example.org" subdomains
    recipient_list: Names | None = None      # names of entries under ``lists:``
    sender: Names | None = None              # envelope sender address
    sender_domain: Names | None = None
    sender_list: Names | None = None
    auth_user: Names | None = None           # the SMTP AUTH user name
    recipient_has_certificate: bool | None = None   # a valid S/MIME certificate is on file
    phi: bool | None = None                  # the classifiers' verdict
    category: Annotated[list[Category], BeforeValidator(_as_list)] | None = None
    detector: Names | None = None            # detector names (see ``phigate policy detectors``)
    phi_in: Annotated[list[Place], BeforeValidator(_as_list)] | None = None
    subject_keyword: Names | None = None     # case-insensitive text in the Subject, e.g. "[secure]"
    header: dict[str, str] | None = None     # header name → text it contains ("*" = present)
    attachment_type: Names | None = None     # "application/pdf", "image/*", ".dcm"
    size_over: Size | None = None            # message larger than this (bytes or "10MB")
    size_under: Size | None = None


class Ruling(Strict):
    """What a matching rule (or the default) decides."""
    description: str = ""                    # shown to admins, in hold reasons and 550 replies
    action: ActionName
    fallbacks: Annotated[list[FallbackName], BeforeValidator(_as_list)] = []
    allow_phi_plaintext: bool = False        # relay only: PHI may go out unencrypted
    sign: bool = False                       # relay only: sign with the practice's S/MIME identity
    strip_subject_keyword: bool = False      # remove the matched subject_keyword before sending


class Rule(Ruling):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    when: When = When()


class PolicyFile(Strict):
    description: str = ""
    lists: dict[str, Names] = {}             # name → addresses and domains
    rules: list[Rule] = []
    default: Ruling
