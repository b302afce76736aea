"""Load a policy file: YAML → ``PolicyFile`` → semantic checks → ``Policy``.

Structural mistakes (unknown keys, wrong types) are reported by the shared
YAML loader; this module adds what only a whole policy can tell: unique rule
names, lists and detectors that exist, fallbacks only to equal or stronger
protection, PHI relayed in plaintext only where a rule says so. Every
problem names the YAML path and the fix, e.g.::

    policies/default.yaml: rules[3].fallbacks[0]: relay is weaker protection
    than smime; a fallback must protect at least as well (smime, direct, portal or hold)
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from gateway.config.load import ConfigError, load_yaml_model, read_yaml
from gateway.model import Action
from gateway.model.decision import PROTECTION_RANK
from gateway.policy.classifiers import DETECTORS
from gateway.policy.engine import Policy
from gateway.policy.rules import PolicyFile, Rule, Ruling

SHIPPED_DEFAULT = Path(__file__).resolve().parents[1] / "policies" / "default.yaml"


def load_policy(path: Path | None) -> Policy:
    """Load and check ``path`` (``None``: the shipped ``policies/default.yaml``)."""
    path = Path(path) if path is not None else SHIPPED_DEFAULT
    data = read_yaml(path)
    policy_file = load_yaml_model(path, PolicyFile, data if data is not None else {})
    problems = [f"{path}: {problem}" for problem in check(policy_file)]
    if problems:
        raise ConfigError(problems)
    version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return Policy(policy_file, version, path)


def check(policy: PolicyFile) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, rule in enumerate(policy.rules):
        where = f"rules[{index}]"
        if rule.name == "default":
            problems.append(f"{where}.name: 'default' is reserved for the default decision; "
                            "rename the rule")
        elif rule.name in seen:
            problems.append(f"{where}.name: {rule.name!r} is already used by "
                            f"rules[{seen[rule.name]}]; rule names must be unique")
        seen.setdefault(rule.name, index)
        problems += _check_when(rule, where, policy)
        problems += _check_ruling(rule, where)
        if rule.action == "relay" and rule.when.phi is True and not rule.allow_phi_plaintext:
            problems.append(f"{where}.action: rule {rule.name!r} relays PHI in plaintext; add "
                            "allow_phi_plaintext: true if that is intended (e.g. a partner "
                            "under a BAA over verified TLS) or choose smime, direct or portal")
        if rule.strip_subject_keyword and not rule.when.subject_keyword:
            problems.append(f"{where}.strip_subject_keyword: needs when.subject_keyword to know "
                            "what to strip")
    problems += _check_ruling(policy.default, "default")
    if policy.default.strip_subject_keyword:
        problems.append("default.strip_subject_keyword: only a rule with when.subject_keyword "
                        "can strip a keyword")
    return problems


def _check_when(rule: Rule, where: str, policy: PolicyFile) -> list[str]:
    problems = []
    for key in ("recipient_list", "sender_list"):
        for i, name in enumerate(getattr(rule.when, key) or ()):
            if name not in policy.lists:
                known = ", ".join(sorted(policy.lists)) or "none defined"
                problems.append(f"{where}.when.{key}[{i}]: no list named {name!r} under lists: "
                                f"(known: {known})")
    for i, name in enumerate(rule.when.detector or ()):
        if name not in DETECTORS:
            problems.append(f"{where}.when.detector[{i}]: unknown detector {name!r}; known: "
                            f"{', '.join(sorted(DETECTORS))}")
    return problems


def _check_ruling(ruling: Ruling, where: str) -> list[str]:
    problems = []
    action = Action(ruling.action)
    if ruling.allow_phi_plaintext and action is not Action.RELAY:
        problems.append(f"{where}.allow_phi_plaintext: only meaningful with action: relay; "
                        "remove it")
    if ruling.sign and action is not Action.RELAY:
        problems.append(f"{where}.sign: only for action: relay (smime and direct always sign); "
                        "remove it")
    if ruling.fallbacks and action in (Action.HOLD, Action.REJECT):
        problems.append(f"{where}.fallbacks: {action.value} cannot fail over; remove fallbacks")
        return problems
    seen = {action}
    for i, name in enumerate(ruling.fallbacks):
        fallback = Action(name)
        if fallback in seen:
            problems.append(f"{where}.fallbacks[{i}]: {name} is already tried; list each "
                            "action once")
        elif PROTECTION_RANK[fallback] < PROTECTION_RANK[action]:
            stronger = ", ".join(a.value for a, rank in PROTECTION_RANK.items()
                                 if rank >= PROTECTION_RANK[action])
            problems.append(f"{where}.fallbacks[{i}]: {name} is weaker protection than "
                            f"{action.value}; a fallback must protect at least as well "
                            f"({stronger})")
        seen.add(fallback)
    return problems
