"""The federated package uses other packages through their public names only: generators
through the federable protocol and their public API, never a private hook."""

from __future__ import annotations

import ast
from pathlib import Path

import fedsynth.federated

PACKAGE = Path(fedsynth.federated.__file__).parent


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _private(name: str) -> bool:
    # Dunder names (``__version__``) are public by convention.
    return name.startswith("_") and not _dunder(name)


def _violations(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fedsynth"):
            if node.module.startswith("fedsynth.federated"):
                continue
            public_names = all(not _private(a.name) for a in node.names)
            private_module = any(_private(part) for part in node.module.split("."))
            if not public_names or (
                private_module and any(a.name != "__version__" for a in node.names)
            ):
                names = ", ".join(a.name for a in node.names)
                found.append(f"{path.name}:{node.lineno}: from {node.module} import {names}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "fedsynth" and any(_private(p) for p in parts):
                    found.append(f"{path.name}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in {"self", "cls"}):
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_federated_modules_use_no_private_name_of_another_package():
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) > 10
    problems = [v for module in modules for v in _violations(module)]
    assert not problems, "private names used in fedsynth.federated:\n" + "\n".join(problems)


def test_the_check_finds_a_private_import_and_a_private_hook(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from fedsynth.tabular.generators._neural import resolve_device\n"
        "from fedsynth.tabular.generators.base import _plain\n"
        "def f(generator):\n    return generator._modules()\n"
    )
    assert len(_violations(bad)) == 3
