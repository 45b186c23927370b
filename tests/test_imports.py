"""Imports run one way: down the layers of DESIGN.md, with no circles.

Every ``import`` of the package is read from the source (module level and inside functions alike,
since an import moved into a function still ties the two modules together). A module may import
its own layer and the layers listed above it in ``LAYERS``; it may not import a layer below it, and
no set of modules may import each other in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "failpath"

# From the ground up: each layer may import only itself and the layers before it.
LAYERS = [
    "core",
    "stats",
    "chaos",
    "store",
    "guard",
    "llm",
    "agent",
    "check",
    "report",
    "watch",
    "serve",
    "testing",
    "examples",
    "cli",
]


# The bundled examples are written as a user writes code, against the public names (``import failpath as fp``).
ROOT_USERS = {"examples"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _resolve(importer: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if path.name != "__init__.py":
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """The package's modules that ``name`` imports, with the line of each import."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "failpath"]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, path, node)
            if target.split(".")[0] != "failpath":
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.append((submodule if submodule in MODULES else target, node.lineno))
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_part_of_the_package_has_a_layer():
    unknown = sorted({_layer(m) for m in MODULES if _layer(m) is not None and _layer(m) not in LAYERS})
    assert not unknown, f"place {unknown} in LAYERS (and in DESIGN.md's list) before using it"


def test_no_module_imports_a_layer_above_it():
    upward = []
    for importer, targets in GRAPH.items():
        own = _layer(importer)
        if own is None or own not in LAYERS:
            continue  # failpath/__init__.py re-exports every layer
        for target, line in targets:
            theirs = _layer(target)
            if theirs is None and own not in ROOT_USERS:
                upward.append(f"{importer}:{line} imports the package root (import the module that defines the name)")
            elif theirs is not None and theirs in LAYERS and LAYERS.index(theirs) > LAYERS.index(own):
                upward.append(f"{importer}:{line} ({own}) imports {target} ({theirs}), a layer above it")
    assert not upward, "\n".join(upward)


def _circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, _ in GRAPH.get(node, []):
            if target not in GRAPH or target == node:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def test_no_modules_import_each_other():
    circles = _circles()
    assert not circles, "modules that import each other: " + "; ".join(" <-> ".join(c) for c in circles)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from failpath.check.api import check\n", "failpath.check.api"),
        ("from ..store import base\n", "failpath.store.base"),
        ("def f():\n    import failpath.watch.otel\n", "failpath.watch.otel"),
    ],
)
def test_the_reader_sees_every_kind_of_import(tmp_path, source, expected):
    # The walk above is only as good as its reader: relative, nested and submodule imports all count.
    module = tmp_path / "probe.py"
    module.write_text(source)
    assert expected in [target for target, _ in _imports("failpath.guard.probe", module)]


def test_the_backend_neutral_store_modules_import_no_backend():
    # What a second backend (PostgreSQL) shares must not pull in SQLite's.
    neutral = ("base", "queued", "writer", "records", "common", "migrations", "values", "jsonsafe")
    for name in neutral:
        backends = [t for t, _ in GRAPH[f"failpath.store.{name}"] if t.startswith("failpath.store.sqlite")]
        assert not backends, f"failpath.store.{name} imports {backends}"
