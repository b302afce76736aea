"""Every YAML example in docs/policy.md is a policy phigate accepts."""
import re
from pathlib import Path

import pytest

from gateway.policy import load_policy

DOC = Path(__file__).resolve().parents[2] / "docs" / "policy.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_doc_example_loads(index, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(BLOCKS[index])
    assert load_policy(path).file.default.action
