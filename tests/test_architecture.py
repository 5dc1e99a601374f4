"""The package layout holds: no import cycle between packages, and each layer imports only the
layers below it (``docs/architecture.md``).

Imports are read from the source (the AST, lazy imports inside functions included), so a cycle
that only a rarely taken code path would close is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "fedsynth"

#: What each package may import (besides itself, ``fedsynth.exceptions`` and ``fedsynth._version``).
#: The front door (``fedsynth/__init__.py``, ``fedsynth/datasets.py``) may import anything.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "tabular": {"core"},
    "imaging": {"core"},
    "text": {"core"},
    "release": {"core"},
    "federated": {"core", "tabular", "imaging"},
    "experiments": {"core", "tabular", "federated"},
    "cli": {
        "core",
        "tabular",
        "imaging",
        "text",
        "federated",
        "experiments",
        "release",
        "web",
        "front",
    },
    "web": {"core", "tabular", "imaging", "text", "federated", "experiments", "release", "front"},
}
#: Top-level modules shared by every package.
SHARED = {"exceptions", "_version", "__version__"}
#: Top-level modules that make up the front door.
FRONT = {"__init__", "datasets"}


def _package_of(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else Path(parts[0]).stem


def _imported_packages(path: Path) -> set[str]:
    """Top-level fedsynth packages (or ``front``) that a module imports, lazily or not."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "fedsynth":
                names = [f"fedsynth.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] != "fedsynth":
                continue
            top = parts[1] if len(parts) > 1 else "__init__"
            found.add("front" if top in FRONT else top)
    return found - SHARED


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        package = _package_of(path)
        package = "front" if package in FRONT else package
        if package in SHARED:
            continue
        graph.setdefault(package, set()).update(_imported_packages(path) - {package})
    return graph


def test_every_package_is_placed_in_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages <= set(ALLOWED), f"add {sorted(packages - set(ALLOWED))} to ALLOWED"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below(package):
    imported = _graph().get(package, set())
    assert imported <= ALLOWED[package], (
        f"fedsynth.{package} imports {sorted(imported - ALLOWED[package])}, "
        f"which it may not (allowed: {sorted(ALLOWED[package])})"
    )


def test_no_import_cycle_between_packages():
    graph = {k: v - {"front"} for k, v in _graph().items() if k != "front"}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
