"""Distinct names for distinct things: no two modules of gateway/ define a
class or a type alias (``Outcome = A | B``) of the same name, so ``Decision``,
``Outcome`` or ``Rule`` each mean one thing wherever they are read."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "gateway"


def type_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if (isinstance(target, ast.Name) and target.id[:1].isupper()
                    and not target.id.isupper()):          # CamelCase alias, not a CONSTANT
                names.add(target.id)
        elif type(node).__name__ == "TypeAlias":              # `type X = …` (3.12+)
            names.add(node.name.id)
    return names


def test_every_type_name_is_defined_once():
    where = defaultdict(list)
    for path in sorted(ROOT.rglob("*.py")):
        for name in type_names(path):
            where[name].append(str(path.relative_to(ROOT.parent)))
    twice = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not twice, f"one name, several things (rename one): {twice}"
