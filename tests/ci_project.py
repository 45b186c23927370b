"""A small failpath project on disk (the toy world of ``test_check_toy``), for tests that run the
``failpath`` command in a child process the way CI does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

PROJECT = """
from failpath.chaos import register_suite
from test_check_toy import FAULTS, HOSTILE, REALISTIC, ToySystem, full_policy, partial_policy

for suite in (HOSTILE, REALISTIC, FAULTS):
    register_suite(suite, replace=True)

system = ToySystem()
policy = full_policy()
partial = partial_policy()
"""

CONFIG = """\
name = "toy project"
system = "toyproj:system"
policy = "toyproj:{policy}"
suites = ["toy-hostile", "toy-realistic", "toy-fault"]
seed = 7
concurrency = 4
store = "store.db"
worst_cases = 2
worst_case_seconds = 2

[dataset]
path = "cases.jsonl"
input = "text"
expected = "label"

[judge]
name = "text"

[budgets]
# 20 evaluation cases: with no failure at all, the case-level bounds at 95% are 13.9% (silent
# failures) and about 16% (over-refusal); budgets below those could never pass on so few cases.
silent_failure = 0.15
# No severity is configured, so every wrong answer counts as severe; 0.5% would need 598 evaluation cases.
severe_silent_failure = 0.15
false_alarm = 0.2

[budgets.accepted]
anomalous_input = "Inputs are short labels; an anomaly detector adds nothing here."
inconsistent = "The system is deterministic, so two samples always agree."
injection_suspected = "The # rule of this policy covers the only injection the toy knows."
empty_input = "Empty inputs are refused upstream by the form that calls this system."
budget_exceeded = "No deadline or token budget is set, so the budget cannot run out."
"""


def write_project(folder: Path, *, policy: str = "policy", n_cases: int = 40) -> Path:
    """Write ``toyproj.py``, ``cases.jsonl`` and ``failpath.toml`` into ``folder``; return the config path.

    ``policy="partial"`` leaves hostile ``#`` inputs unhandled: that check is READY TO DEMO.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toyproj.py").write_text(PROJECT, encoding="utf-8")
    lines = [json.dumps({"id": f"c{i:03d}", "text": f"item {i}", "label": f"ITEM {i}"}) for i in range(n_cases)]
    (folder / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = folder / "failpath.toml"
    config.write_text(CONFIG.format(policy=policy), encoding="utf-8")
    return config


def child_env(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a child process that can import the project and the toy world, without
    ``COLUMNS`` unless given in ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    paths = [str(TESTS), str(folder)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


def failpath(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``failpath ARGS`` in ``folder`` with stdout and stderr captured (pipes, as in CI)."""
    command = [sys.executable, "-c", "from failpath.cli import main; main()", *args]
    return subprocess.run(command, cwd=folder, env=child_env(folder, **env), capture_output=True, text=True, timeout=300)
