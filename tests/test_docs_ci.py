"""docs/ci.md stays true: its workflow is valid YAML and every failpath option it uses exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from failpath.cli import app

DOC = Path(__file__).resolve().parents[1] / "docs" / "ci.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def _failpath_commands() -> list[list[str]]:
    text = "\n".join(_blocks("bash") + _blocks("yaml")).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = line.split(" # ")[0].strip()
        if line.startswith("failpath "):
            commands.append(shlex.split(line.replace('"${baseline[@]}"', "")))
    return commands


def test_the_workflow_is_valid_yaml_with_the_steps_the_page_describes():
    yaml = pytest.importorskip("yaml")
    (workflow,) = _blocks("yaml")
    parsed = yaml.safe_load(workflow)
    steps = parsed["jobs"]["check"]["steps"]
    names = [step.get("name") for step in steps]
    assert "failpath check" in names and "Comment on the pull request" in names
    after_check = steps[names.index("failpath check") + 1:]
    assert all(step.get("if", "").startswith("always()") for step in after_check)


def test_every_failpath_option_in_the_page_exists():
    commands = _failpath_commands()
    assert {c[1] for c in commands} == {"check", "compare"}
    for command in commands:
        shown = CliRunner().invoke(app, [command[1], "--help"], env={"COLUMNS": "300"})
        for option in (arg for arg in command if arg.startswith("--")):
            assert option in shown.output, (command, option)
