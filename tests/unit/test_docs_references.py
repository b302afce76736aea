"""The documents name only things that exist.

Scanned: README.md and docs/*.md, every `inline code` span and every line of
a fenced block. Checked, each against the code itself (never a copied list):

- repository paths (``gateway/…``, ``tests/…``, ``docs/…``, ``policies/…``,
  ``systemd/…``, ``bench/…``, ``.ci/…``, ``config.example.yaml``) and bare
  ``*.py`` / ``*.md`` file names exist;
- dotted settings whose first part is a top-level config key
  (``queue.retry.min``, ``smime.crl: hard``) are fields of the config models
  (or name a module, as ``queue.dispatcher`` does);
- ``gateway.x.y`` names import (and their attributes exist);
- ``phigate …`` command lines use commands, sub-commands and ``--options``
  that the real argument parser has.
"""
from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from gateway.cli import build_parser
from gateway.config.models import Config

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REPO_PATH = re.compile(r"^(gateway|tests|docs|policies|systemd|bench|\.ci)/[\w./*-]*$")
BARE_FILE = re.compile(r"^[\w.-]+\.(py|md)$")
SETTING = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+)(?::.*)?$")
PYTHON_NAME = re.compile(r"^gateway(\.\w+)+$")
COMMAND = re.compile(r"(?:^|[\s`'\"(])(?:\S*/bin/)?phigate((?:\s+\S+)*)")


def snippets(path: Path) -> list[str]:
    """Inline code spans and fenced-block lines of one document."""
    text = path.read_text()
    found: list[str] = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
        found += [line.split(" #", 1)[0].strip() for line in block.splitlines()]
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    found += re.findall(r"`([^`\n]+)`", prose)
    return [s for s in found if s]


ALL = [(doc, s) for doc in DOCS for s in snippets(doc)]


def ids(items):
    return [doc.name for doc, _ in items]


def test_docs_are_scanned():
    assert len(DOCS) > 5 and len(ALL) > 300


# ---- files ------------------------------------------------------------------

def test_repository_paths_exist():
    names = {p.name for p in ROOT.rglob("*") if ".venv" not in p.parts}
    missing = []
    for doc, text in ALL:
        token = text.rstrip(".,;:")
        if REPO_PATH.match(token) or token == "config.example.yaml":
            if not (list(ROOT.glob(token.rstrip("/"))) if "*" in token
                    else (ROOT / token).exists()):
                missing.append(f"{doc.name}: {token}")
        elif BARE_FILE.match(token) and token not in names:
            missing.append(f"{doc.name}: {token}")
    assert not missing, "files the docs name that do not exist:\n" + "\n".join(missing)


# ---- settings ---------------------------------------------------------------

def setting_exists(parts: list[str]) -> bool:
    model: type[BaseModel] | None = Config
    for part in parts:
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates
                      if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return True


def module_exists(parts: list[str]) -> bool:
    base = ROOT / "gateway" / Path(*parts)
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def test_settings_exist():
    missing = []
    for doc, text in ALL:
        m = SETTING.match(text.strip())
        if not m:
            continue
        parts = m.group(1).split(".")
        if parts[0] not in Config.model_fields or "." + parts[-1] in {".md", ".py", ".yaml"}:
            continue
        if not (setting_exists(parts) or module_exists(parts)):
            missing.append(f"{doc.name}: {m.group(1)}")
    assert not missing, "settings the docs name that do not exist:\n" + "\n".join(missing)


def test_python_names_exist():
    missing = []
    for doc, text in ALL:
        token = text.strip().rstrip("()")
        if not PYTHON_NAME.match(token):
            continue
        parts = token.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(f"{doc.name}: {token}")
            break
        else:
            missing.append(f"{doc.name}: {token}")
    assert not missing, "Python names the docs use that do not exist:\n" + "\n".join(missing)


# ---- commands ---------------------------------------------------------------

def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def check_command(words: list[str]) -> str | None:
    """None when ``phigate WORDS`` names an existing command and options."""
    parser = build_parser()
    global_options = options(parser)
    while words and words[0] in global_options:
        words = words[2:] if words[0] in ("-c", "--config") else words[1:]
    if not words or not re.fullmatch(r"[a-z][a-z-]+", words[0]):
        return None                           # not a command line (a path, a user name)
    for depth, word in enumerate(words):
        commands = subcommands(parser)
        if not commands:
            break
        if word not in commands:
            return f"unknown command {' '.join(words[:depth + 1])!r}"
        parser = commands[word]
    unknown = [w.split("=", 1)[0] for w in words
               if w.startswith("--") and w.split("=", 1)[0] not in options(parser)]
    return f"unknown option(s) {unknown}" if unknown else None


def test_commands_exist():
    problems = []
    for doc, text in ALL:
        for match in COMMAND.finditer(text):
            words = []
            for word in match.group(1).split():
                if word in {"|", "&&", ";", "||"}:
                    break                     # the next command of a shell line
                words.append(word.strip("`'\")[]"))
            words = [w for w in words if w and w != "\\"]
            problem = check_command(words)
            if problem:
                problems.append(f"{doc.name}: phigate{match.group(1)}: {problem}")
    assert not problems, "commands the docs show that do not exist:\n" + "\n".join(problems)


@pytest.mark.parametrize("line", [
    "phigate queue frobnicate ID",
    "phigate -c CFG certs import --fro x@y.example FILE",
    "/opt/phigate/bin/phigate polcy check",
])
def test_the_command_check_catches_mistakes(line):
    match = COMMAND.search(line)
    assert check_command(match.group(1).split()) is not None
