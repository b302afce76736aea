"""YAML → validated models, with errors that name the YAML path and the fix.

``load_config`` reads the main config; ``load_yaml_model`` is reused for any
other YAML file phigate reads (policies, the users file) so that every file
reports its mistakes the same way:

    config.yaml: upstream.port: must be 1-65535 (got 70000)
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from gateway.config.models import Config

M = TypeVar("M", bound=BaseModel)

# Config keys that name secrets: they must be files only their owner can read.
SECRET_FILES = ("upstream.password_file", "listen.submission.tls.key")


class ConfigError(Exception):
    """One or more problems in a YAML file; each names its path and the fix."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _fix(err: dict, model: type[BaseModel]) -> str:
    kind = err["type"]
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        parent = _model_at(model, err["loc"][:-1])
        known = ", ".join(sorted(parent.model_fields)) if parent else ""
        return f"unknown key; valid keys here: {known}" if known else "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "model_type":
        return "must be a mapping of keys (key: value)"
    text = msg[0].lower() + msg[1:] if msg else kind
    if "input" in err and not isinstance(err["input"], (dict, list)):
        text += f" (got {err['input']!r})"
    return text


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that holds the keys at ``loc`` (for 'valid keys' hints)."""
    current: object = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return None
        annotation = fields[part].annotation
        current = _first_model(annotation)
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _first_model(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def read_yaml(path: Path) -> object:
    """Parse a YAML file; syntax errors become ConfigError with line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read ({exc.__class__.__name__})"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "?"
        raise ConfigError([f"{path}: YAML syntax error at {where}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: YAML syntax error: {exc}"]) from None


def load_yaml_model(path: Path, model: type[M], data: object = None) -> M:
    """Validate YAML ``data`` (read from ``path`` when None) against ``model``."""
    if data is None:
        data = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys (key: value)"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [f"{path}: {_loc(e['loc'])}: {_fix(e, model)}" for e in exc.errors()]
        raise ConfigError(problems) from None


def _resolve(model: BaseModel, base: Path) -> BaseModel:
    """Return ``model`` with every relative Path field joined onto ``base``."""
    update = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path) and not value.is_absolute():
            update[name] = base / value
        elif isinstance(value, BaseModel):
            update[name] = _resolve(value, base)
        elif isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
            update[name] = [v if v.is_absolute() else base / v for v in value]
        elif isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
            update[name] = [_resolve(v, base) if isinstance(v, BaseModel) else v for v in value]
    return model.model_copy(update=update) if update else model


def _get(model: BaseModel, dotted: str):
    value: object = model
    for part in dotted.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def _secret_paths(config: Config):
    """(YAML path, file) of every secret file the config names."""
    for key in SECRET_FILES:
        yield key, _get(config, key)
    for i, mailbox in enumerate(config.inbound.mailboxes):
        yield f"inbound.mailboxes[{i}].password_file", mailbox.password_file


def check_secret_files(config: Config, source: str) -> list[str]:
    problems = []
    for key, path in _secret_paths(config):
        if path is None:
            continue
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            problems.append(f"{source}: {key}: file {path} not found; create it or fix the path")
            continue
        if stat.S_IMODE(mode) & 0o077:
            problems.append(f"{source}: {key}: {path} is readable by others "
                            f"(mode {stat.S_IMODE(mode):04o}); run chmod 600 {path}")
    return problems


def _check_consistency(config: Config, source: str) -> list[str]:
    problems = []
    up = config.upstream
    if up.password_file and not up.username:
        problems.append(f"{source}: upstream.username: required when upstream.password_file is set")
    if up.username and not up.password_file:
        problems.append(f"{source}: upstream.password_file: required when upstream.username is set")
    names = [m.name for m in config.inbound.mailboxes]
    for i, mailbox in enumerate(config.inbound.mailboxes):
        if names.index(mailbox.name) != i:
            problems.append(f"{source}: inbound.mailboxes[{i}].name: {mailbox.name!r} is used "
                            "twice; give each mailbox its own name")
        if mailbox.archive_folder in mailbox.folders:
            problems.append(f"{source}: inbound.mailboxes[{i}].archive_folder: must not be one "
                            "of the watched folders; choose another folder")
    if up.username and up.tls == "none":
        problems.append(f"{source}: upstream.tls: AUTH over a plaintext connection is refused; "
                        "use starttls or implicit")
    for i, anchor in enumerate(config.direct.anchors):
        if not anchor.is_file():
            problems.append(f"{source}: direct.anchors[{i}]: file {anchor} not found; "
                            "give a PEM file with the Direct trust anchor certificates")
    return problems


def load_config(path: Path | None) -> Config:
    """Load and validate the config (``None`` = the embedded defaults)."""
    if path is None:
        config, base, source = Config(), Path.cwd(), "(defaults)"
    else:
        path = Path(path)
        config, base, source = load_yaml_model(path, Config), path.resolve().parent, str(path)
    config = _resolve(config, base)
    problems = check_secret_files(config, source) + _check_consistency(config, source)
    if problems:
        raise ConfigError(problems)
    return config
