"""Config loading: defaults, and a corpus of bad configs each refused with a
message that names the YAML path and the fix (tests/configs/bad/*.yaml, the
expected text is on the file's first line)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from gateway.config.models import Config

BAD = sorted((Path(__file__).parent.parent / "configs" / "bad").glob("*.yaml"))


def materialize(src: Path, tmp_path: Path) -> tuple[Path, str]:
    secret = tmp_path / "secret.pass"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    open_secret = tmp_path / "open.pass"
    open_secret.write_text("s3cret\n")
    open_secret.chmod(0o644)
    text = src.read_text().replace("@SECRET@", str(secret)).replace("@OPEN_SECRET@", str(open_secret))
    expected = text.splitlines()[0].removeprefix("# expect: ")
    path = tmp_path / src.name
    path.write_text(text)
    return path, expected


@pytest.mark.parametrize("src", BAD, ids=[p.stem for p in BAD])
def test_bad_config_is_refused_with_path_and_fix(src, tmp_path):
    path, expected = materialize(src, tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert expected in message
    assert message.startswith(str(path))


def test_bad_config_corpus_is_not_empty():
    assert len(BAD) >= 20


@pytest.mark.parametrize("src", BAD[:3], ids=[p.stem for p in BAD[:3]])
def test_check_config_exits_non_zero(src, tmp_path):
    path, expected = materialize(src, tmp_path)
    run = subprocess.run([sys.executable, "-m", "gateway", "-c", str(path), "check-config"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert expected in run.stderr


def test_defaults_and_relative_paths(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("queue: {give_up_after: 2h}\n")
    config = load_config(path)
    assert config.queue.give_up_after == 7200
    assert config.queue.dir == tmp_path / "var" / "spool"
    assert config.state_dir == tmp_path / "var"
    assert config.upstream.tls == "starttls" and config.upstream.verify is True


def test_example_config_is_valid_and_documents_every_key():
    root = Path(__file__).parent.parent.parent
    example = root / "config.example.yaml"
    text = example.read_text()
    import yaml
    data = yaml.safe_load(text)
    data.pop("policy", None)     # the example points at the shipped policy
    Config.model_validate(data)

    def keys(model, prefix=""):
        for name, field in model.model_fields.items():
            yield prefix + name
            if hasattr(field.annotation, "model_fields"):
                yield from keys(field.annotation, prefix + name + ".")

    flat = set()

    def walk(d, prefix=""):
        for k, v in d.items():
            flat.add(prefix + k)
            if isinstance(v, dict):
                walk(v, prefix + k + ".")

    walk(yaml.safe_load(text))
    commented = {line.split("#", 1)[1].split(":")[0].strip() for line in text.splitlines()
                 if line.lstrip().startswith("#") and ":" in line}
    missing = [k for k in keys(Config) if k not in flat and k.rsplit(".", 1)[-1] not in commented]
    assert not missing, f"config.example.yaml lacks: {missing}"


def test_check_config_prints_effective_config_with_secrets_redacted(tmp_path):
    secret = tmp_path / "up.pass"
    secret.write_text("hunter2-never-printed\n")
    os.chmod(secret, 0o600)
    path = tmp_path / "c.yaml"
    path.write_text(f"upstream: {{host: mail.example, username: u, password_file: {secret}}}\n")
    run = subprocess.run([sys.executable, "-m", "gateway", "-c", str(path), "check-config"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert "host: mail.example" in run.stdout
    assert "hunter2" not in run.stdout
