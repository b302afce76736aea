"""Import direction (``gateway/__init__.py``): model imports nothing of
ours; policy only model; the ingress edge never imports actions or delivery;
the portal shares only model with the rest. Policy and portal may also use
the config/audit infrastructure (YAML errors, logging).

Over all of that, the layers of ``gateway/__init__.py`` (``LAYERS`` below,
lowest first): every import, at module level or inside a function, goes to
the importer's own package or to a lower layer, never up and never sideways
to a peer in the same layer; so there is no import cycle between packages.
A new package or top-level module must be placed in a layer."""
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


# Lowest first. queue.safeio (atomic write + fsync) is the file-safety utility
# everything that writes state uses; the rest of the queue sits higher up.
# Units named here that this checkout lacks are placed for branches being
# merged (Direct transport: gateway.direct, its wiring gateway.direct.service;
# inbound IMAP: gateway.imapconn, gateway.inbound_state).
LAYERS = [
    {"gateway.model"},                                                      # pure data
    {"gateway.config", "gateway.audit", "gateway.metrics", "gateway.sdnotify",
     "gateway.queue.safeio", "gateway.malloc", "gateway.crlf"},            # infrastructure
    {"gateway.policy", "gateway.crypto", "gateway.auth", "gateway.tlsutil",
     "gateway.health", "gateway.delivery",
     "gateway.imapconn", "gateway.inbound_state"},                         # services
    {"gateway.queue"},                                    # the spool and its dispatcher
    {"gateway.portal", "gateway.direct"},                 # the portal; Direct's spool, MDNs
    {"gateway.submission", "gateway.ingress"},            # the commit point and its edges
    {"gateway.actions"},                                  # what the dispatcher runs
    {"gateway.supervisor", "gateway.direct.service",
     "gateway.cluster"},                                  # worker processes; Direct's wiring; nodes
    {"gateway.app"},                                      # the only wiring
    {"gateway.cli"},                                      # the command line
    {"gateway.__main__"},                                 # python -m gateway
]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "gateway" and node.level == 0:
            found.update(f"gateway.{a.name}" for a in node.names)     # from gateway import x
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


def unit_of(module: str) -> str:
    """The layered unit a module belongs to: its package (``gateway.policy``),
    a top-level module (``gateway.app``), or one of the modules layered apart
    from their package (``gateway.queue.safeio``, ``gateway.direct.service``)."""
    for own in ("gateway.queue.safeio", "gateway.direct.service"):
        if module == own or module.startswith(own + "."):
            return own
    return package_of(module)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(unit: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if unit in layer), None)


def test_every_package_has_a_layer():
    units = {unit_of(module_name(p)) for p in ROOT.rglob("*.py")} - {"gateway"}
    unplaced = sorted(u for u in units if layer_of(u) is None)
    assert not unplaced, f"place these in LAYERS (tests/unit/test_layering.py): {unplaced}"


def test_no_import_goes_up_or_sideways():
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        unit = unit_of(module_name(path))
        if unit == "gateway":
            continue
        for module in imports_of(path):
            target = unit_of(module)
            if target in (unit, "gateway"):
                continue
            mine, theirs = layer_of(unit), layer_of(target)
            if theirs is None or mine is None or theirs >= mine:
                where = "a layer above" if theirs is not None and theirs > mine else "its own layer"
                problems.append(f"{path.relative_to(ROOT.parent)} ({unit}) imports {module} "
                                f"from {where if theirs is not None else 'no layer'}")
    assert not problems, "\n".join(problems)
