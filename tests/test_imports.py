"""Imports run one way (DESIGN.md): the store imports no layer above it, its backend-neutral modules
import no backend, and no two modules of a package import each other (at the top or inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "failpath"



def imported_modules(path: Path) -> set[str]:
    """Every failpath module ``path`` imports, at the top or inside a function.

    ``from package import submodule`` counts as importing the submodule only (the package's
    ``__init__`` is loaded first in any case); ``from package import name`` as importing the package.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("failpath"):
            base = SRC.parent.joinpath(*node.module.split("."))
            for alias in node.names:
                is_module = (base / f"{alias.name}.py").exists() or (base / alias.name / "__init__.py").exists()
                found.add(f"{node.module}.{alias.name}" if is_module else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("failpath"))
    return found


def module_graph(*packages: str) -> dict[str, set[str]]:
    """Module name -> the modules of ``packages`` it imports."""
    files = {}
    for package in packages:
        for file in (SRC / package).rglob("*.py"):
            parts = file.relative_to(SRC.parent).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return {name: {m for m in imported_modules(file) if m in files and m != name} for name, file in files.items()}


def test_the_store_imports_no_layer_above_it():
    above = ("guard", "llm", "agent", "check", "report", "watch", "serve", "cli", "examples")
    for file in (SRC / "store").rglob("*.py"):
        wrong = {m for m in imported_modules(file) if m.split(".")[1] in above}
        assert not wrong, f"{file.relative_to(SRC)} imports {sorted(wrong)}"


def test_the_backend_neutral_store_modules_import_no_backend():
    neutral = ("base", "queued", "writer", "records", "common", "migrations", "values", "jsonsafe")
    for name in neutral:
        imports = imported_modules(SRC / "store" / f"{name}.py")
        assert not {m for m in imports if m.startswith("failpath.store.sqlite")}, name


@pytest.mark.parametrize("package", ["store", "chaos"])
def test_no_two_modules_import_each_other(package):
    graph = module_graph(package)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(target):] + [target]))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
