"""``phigate policy test|eval|check|detectors``: how admins tune policies.

``test`` classifies one message and shows every rule tried per recipient and
the decision; ``eval`` scores the classifier on a labelled folder (its tuning and
evaluation halves side by side when labels.csv has a ``split`` column); ``check``
validates a policy file and lists its rules; ``detectors`` lists the names
that ``classifier.shadow`` and ``when.detector`` accept. Output never holds
message text: detectors, categories, places, rule names and decisions only.
"""
from __future__ import annotations

from pathlib import Path

from gateway.cli.output import add_json_flag, fail, load_config_or_exit, print_json, print_table
from gateway.config import ConfigError
from gateway.model import Envelope


def register(sub) -> None:
    policy = sub.add_parser("policy", help="test, evaluate and check the PHI policy")
    commands = policy.add_subparsers(dest="policy_command", metavar="ACTION")
    commands.required = True

    test = commands.add_parser("test", help="explain the decision for one message")
    test.add_argument("message", type=Path, help="the message (.eml)")
    test.add_argument("--from", dest="sender", required=True, help="envelope sender")
    test.add_argument("--to", dest="recipients", action="append", required=True,
                      help="a recipient (repeat for several)")
    test.add_argument("--auth-user", default=None, help="the SMTP AUTH user, if rules use it")
    test.add_argument("--policy", type=Path, default=None, help="a policy file other than the "
                      "config's (try an edit before reloading)")
    add_json_flag(test)
    test.set_defaults(func=cmd_test)

    evaluate = commands.add_parser(
        "eval", help="score the classifier on DIR/labels.csv (tuning and evaluation halves)")
    evaluate.add_argument("directory", type=Path)
    add_json_flag(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    check = commands.add_parser("check", help="validate a policy file and list its rules")
    check.add_argument("--policy", type=Path, default=None, help="default: the config's policy")
    add_json_flag(check)
    check.set_defaults(func=cmd_check)

    detectors = commands.add_parser("detectors", help="list the classifier's detector names")
    add_json_flag(detectors)
    detectors.set_defaults(func=cmd_detectors)


def _load(args, policy_path: Path | None):
    """(config, classify, engine) or SystemExit(2) listing the problems."""
    from gateway.app import build_certstore, build_policy

    config = load_config_or_exit(args)
    if policy_path is not None:
        config = config.model_copy(update={"policy": policy_path})
    try:
        classify, decide = build_policy(config, build_certstore(config))
    except ConfigError as exc:
        raise SystemExit(fail("policy error:\n  " + "\n  ".join(exc.problems), 2)) from None
    return config, classify, decide


def cmd_test(args) -> int:
    _, classify, decide = _load(args, args.policy)
    try:
        raw = args.message.read_bytes()
    except OSError as exc:
        return fail(f"cannot read {args.message}: {exc.strerror}")
    envelope = Envelope(args.sender, tuple(args.recipients), auth_user=args.auth_user,
                        source="local")
    verdict = classify(raw)
    plan = decide(envelope, verdict, raw)
    recipients = []
    for decision, trace in zip(plan.decisions, plan.trace):
        recipients.append({
            "address": decision.recipient, "action": decision.action.value,
            "rule": decision.rule, "fallbacks": [a.value for a in decision.fallbacks],
            "reason": decision.reason, "options": decision.options, "tried": trace["tried"]})
    result = {"phi": verdict.phi, "verdict": verdict.to_json(),
              "policy_version": plan.policy_version, "recipients": recipients}
    if args.json:
        print_json(result)
    else:
        _print_test(result)
    return 0


def _print_test(result: dict) -> None:
    verdict = result["verdict"]
    print(f"PHI: {'yes' if result['phi'] else 'no'}")
    for reason in verdict["reasons"]:
        print(f"  because {reason}")
    for error in verdict["errors"]:
        print(f"  classifier error: {error}")
    print()
    print_table(["detector", "category", "where", "count", "shadow"],
                [(f["detector"], f["category"], f["location"], f["count"],
                  "yes" if f["shadow"] else "") for f in verdict["findings"]],
                empty="no findings")
    for r in result["recipients"]:
        fallbacks = f" then {', '.join(r['fallbacks'])}" if r["fallbacks"] else ""
        print(f"\n{r['address']}: {r['action'].upper()}{fallbacks}  (rule {r['rule']})")
        if r["reason"]:
            print(f"  {r['reason']}")
        for step in r["tried"]:
            mark = "matched" if step["matched"] else f"no: {step['failed']}"
            print(f"    {step['rule']:<32} {mark}")


def cmd_eval(args) -> int:
    from gateway.policy.classifiers import build_classifier
    from gateway.policy.classifiers.evaluate import LabelsError, evaluate_halves, format_halves

    config = load_config_or_exit(args)
    try:
        halves = evaluate_halves(args.directory, build_classifier(config.classifier.shadow))
    except (LabelsError, ValueError) as exc:
        return fail(str(exc), 2)
    if args.json:
        print_json({"halves": {name: result.to_json() for name, result in halves.items()}})
    else:
        print(format_halves(halves))
    return 0


def cmd_check(args) -> int:
    _, _, engine = _load(args, args.policy)
    policy = engine.policy
    rows = [(rule.name, rule.action, ", ".join(rule.fallbacks) or "-", _conditions(rule.when))
            for rule in policy.file.rules]
    rows.append(("default", policy.file.default.action,
                 ", ".join(policy.file.default.fallbacks) or "-", "(anything else)"))
    if args.json:
        print_json({"ok": True, "source": str(policy.source), "version": policy.version,
                    "rules": [{"name": n, "action": a, "fallbacks": f, "when": w}
                              for n, a, f, w in rows]})
        return 0
    print(f"{policy.source}: OK (version {policy.version})")
    print_table(["rule", "action", "fallbacks", "when"], rows)
    return 0


def _conditions(when) -> str:
    parts = []
    for key, value in when.model_dump(exclude_none=True).items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        parts.append(f"{key}={shown}")
    return "; ".join(parts) or "(always)"


def cmd_detectors(args) -> int:
    from gateway.policy.classifiers import DETECTORS

    names = sorted(DETECTORS)
    if args.json:
        print_json(names)
    else:
        print("\n".join(names))
    return 0
