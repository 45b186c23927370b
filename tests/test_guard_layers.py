"""The guard's code stays plain and its imports run one way.

Read from the source: every import counts, at module level, inside a function or under
``TYPE_CHECKING``, so no circle can hide behind a late import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import failpath.guard

GUARD = Path(failpath.guard.__file__).parent
MODULES = {f"failpath.guard.{path.stem}": path for path in sorted(GUARD.glob("*.py")) if path.stem != "__init__"}

# The layers of DESIGN.md listed below the guard: it must import none of them.
BELOW = ("failpath.llm", "failpath.agent", "failpath.check", "failpath.report", "failpath.watch", "failpath.serve", "failpath.cli")


def _imports(path: Path) -> set[str]:
    """Every failpath module ``path`` imports, wherever the import statement is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("failpath"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("failpath"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return found


GRAPH = {name: {target for target in _imports(path) if target.startswith("failpath.guard")} for name, path in MODULES.items()}


def test_the_graph_is_read_from_every_kind_of_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import failpath.core\n"
        "from failpath.guard import text\n"
        "if TYPE_CHECKING:\n"
        "    from failpath.guard.policy import Policy\n"
        "def f():\n"
        "    from failpath.guard.lint import lint_table\n"
    )
    assert _imports(module) == {"failpath.core", "failpath.guard.text", "failpath.guard.policy", "failpath.guard.lint"}
    assert "failpath.guard.table" in GRAPH["failpath.guard.lint"]
    assert "failpath.guard.anomaly" in GRAPH["failpath.guard.input_states"]
    assert "failpath.guard.engine" in GRAPH["failpath.guard.policy"]


def test_no_guard_module_imports_the_guard_package_or_a_layer_below_it():
    for name, path in MODULES.items():
        imported = _imports(path)
        assert "failpath.guard" not in imported, f"{name} imports failpath.guard, which imports every guard module"
        assert "failpath" not in imported, f"{name} imports the failpath package"
        below = sorted(target for target in imported if target.startswith(BELOW))
        assert not below, f"{name} imports {below}, a layer below the guard"


def test_guard_modules_import_each_other_without_a_circle():
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import circle: " + " -> ".join((*path[path.index(name):], name))
        if name in done:
            return
        for target in sorted(GRAPH.get(name, ())):
            visit(target, (*path, name))
        done.add(name)

    for name in GRAPH:
        visit(name, ())


def test_policy_is_above_the_guard_and_lint():
    """The policy builds guarded systems and lints itself; neither the drivers nor lint know the Policy class."""
    reachable: set[str] = set()
    todo = ["failpath.guard.engine", "failpath.guard.lint"]
    while todo:
        name = todo.pop()
        if name not in reachable:
            reachable.add(name)
            todo.extend(GRAPH.get(name, ()))
    assert "failpath.guard.policy" not in reachable


def test_no_generated_code_and_no_class_swapping():
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("exec", "eval", "compile"), f"{name}:{node.lineno} calls {node.func.id}"
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for target in targets:
                assert not (isinstance(target, ast.Attribute) and target.attr == "__class__"), f"{name}:{node.lineno} assigns __class__"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
                arguments = [a.value for a in node.args if isinstance(a, ast.Constant)]
                assert "__class__" not in arguments, f"{name}:{node.lineno} sets __class__"


def test_functions_and_files_stay_short():
    for name, path in MODULES.items():
        text = path.read_text()
        assert text.count("\n") <= 600, f"{name} has {text.count(chr(10))} lines; split it by job"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 80, f"{name}.{node.name} is {length} lines long"
