"""Import direction (DESIGN.md "Package layout"): model imports nothing of
ours; policy only model; the ingress edge never imports actions or delivery;
the portal shares only model with the rest. Policy and portal may also use
the config/audit infrastructure (YAML errors, logging)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "gateway"
INFRA = {"gateway.audit", "gateway.config"}

RULES = {
    # package: (allowed gateway packages, or None = anything except `forbidden`), forbidden
    "gateway.model": ({"gateway.model"}, set()),
    "gateway.policy": ({"gateway.model", "gateway.policy"} | INFRA, set()),
    "gateway.ingress": (None, {"gateway.actions", "gateway.delivery", "gateway.queue"}),
    "gateway.portal": ({"gateway.model", "gateway.portal", "gateway.delivery"} | INFRA, set()),
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name == "gateway" or name.startswith("gateway.")}


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


@pytest.mark.parametrize("package", sorted(RULES))
def test_import_direction(package):
    allowed, forbidden = RULES[package]
    directory = ROOT / package.split(".")[1]
    if not directory.exists():
        pytest.fail(f"{package} missing")
    problems = []
    for path in sorted(directory.rglob("*.py")):
        for module in imports_of(path):
            pkg = package_of(module)
            if (allowed is not None and pkg not in allowed) or pkg in forbidden:
                problems.append(f"{path.relative_to(ROOT.parent)} imports {module}")
    assert not problems, "\n".join(problems)
