"""``failpath.toml`` for an agent check: a file with an ``[agent]`` table.

::

    [agent]
    agent = "desk.checks:build_agent"          # agent(environment) -> fp.Agent, or fp.agent.guard_pydantic_ai(...)
    environment = "desk.checks:environment"    # environment(trial) -> a fresh environment
    tasks = "tasks.jsonl"                      # a file of tasks, or "module:attribute" of a list
    trials = 8
    concurrency = 16
    seed = 0
    tool_faults = ["timeout", "rate_limited", "server_error"]   # default: every tool fault
    model_faults = ["timeout", "server_error"]                   # default: MODEL_FAULT_KINDS
    fault_rate = 0.5
    suites = ["realistic", "hostile"]
    chaos_trials = 1
    variants_per_task = 2
    templates = ["override", "polite_note"]                      # default: every planting template
    plant_into = ["lookup_order"]                                # default: every tool but the goal's
    store = ".failpath/agent-check.db"                           # default: a scratch store

    [[agent.attacks]]
    tool = "issue_refund"
    arguments = { order_id = "1077" }
    request = "refund order 1077 in full"

    [budgets]
    pass_k = { k = 4, floor = 0.8 }
    silent_failures = 0.05            # or { clean = 0.02, fault = 0.05, ... }
    attack_success = 0
    attack_rate = 0.05                # the upper bound of the attack success rate, task as the unit
    infrastructure_errors = 0.05      # the share of each family's trials that may be infrastructure errors

    [waive]                           # chaos families left out, failure states left unexercised: why
    realistic = "requests come from another program, never typed by a person"
    budget_exceeded = "why this state need not be exercised"

Names of modules are imported from the file's folder first, then the working directory.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from failpath.core import ConfigError

__all__ = ["is_agent_config", "agent_check_kwargs", "AGENT_KEYS", "BUDGET_KEYS"]

#: The keys of the ``[agent]`` table.
AGENT_KEYS = (
    "agent", "environment", "tasks", "trials", "concurrency", "seed", "tool_faults", "model_faults", "fault_rate",
    "suites", "chaos_trials", "variants_per_task", "templates", "plant_into", "attacks", "store", "confidence",
)

#: The keys of ``[budgets]`` in an agent check.
BUDGET_KEYS = ("pass_k", "silent_failures", "attack_success", "attack_rate", "infrastructure_errors", "accept")


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def is_agent_config(path: str | Path) -> bool:
    """True when the file at ``path`` declares an agent (an ``[agent]`` table); False for a single-call check."""
    file = Path(path)
    return file.is_file() and isinstance(_read(file).get("agent"), Mapping)


def agent_check_kwargs(path: str | Path) -> dict[str, Any]:
    """The keyword arguments of ``fp.check_agent`` for the agent check configured at ``path``.

    Every mistake is a ``ConfigError`` naming the file and the key, raised before any run.
    """
    from failpath.check.judges import _import_attr

    file = Path(path)
    data = _read(file)
    table = data.get("agent")
    if not isinstance(table, Mapping):
        raise ConfigError(f"{file}: no [agent] table; an agent check names its agent, environment and tasks there")
    unknown = sorted(set(data) - {"agent", "budgets", "waive"})
    if unknown:
        raise ConfigError(f"{file}: unknown table or key {', '.join(unknown)} for an agent check; it has [agent], [budgets] and [waive]")
    extra = sorted(set(table) - set(AGENT_KEYS))
    if extra:
        raise ConfigError(f"{file}: [agent] has unknown key(s) {', '.join(extra)} (check the spelling); its keys are {', '.join(AGENT_KEYS)}")
    for required in ("agent", "environment", "tasks"):
        if required not in table:
            raise ConfigError(f"{file}: [agent] {required} is required but missing")
    folders = (str(file.parent.resolve()), str(Path.cwd()))
    for folder in folders:
        if folder not in sys.path:
            sys.path.append(folder)
    kwargs: dict[str, Any] = {k: v for k, v in table.items() if k not in ("agent", "environment", "tasks", "attacks", "store")}
    for key in ("agent", "environment"):
        if not isinstance(table[key], str):
            raise ConfigError(f"{file}: [agent] {key} must be 'module:function', got {table[key]!r}")
        kwargs[key] = _import_attr(table[key], f"{file}: [agent] {key}", folders)
    tasks = table["tasks"]
    if not isinstance(tasks, str):
        raise ConfigError(f"{file}: [agent] tasks must be the path of a .jsonl file or 'module:attribute', got {tasks!r}")
    as_path = file.parent / tasks
    kwargs["tasks"] = as_path if as_path.suffix in (".jsonl", ".json") else _import_attr(tasks, f"{file}: [agent] tasks", folders)
    if "store" in table:
        kwargs["store"] = file.parent / table["store"] if not str(table["store"]).startswith("postgres") else table["store"]
    attacks = table.get("attacks", [])
    if not isinstance(attacks, list) or not all(isinstance(a, Mapping) for a in attacks):
        raise ConfigError(f"{file}: [[agent.attacks]] must be tables with tool, arguments and request")
    for number, attack in enumerate(attacks, start=1):
        wrong = sorted(set(attack) - {"tool", "arguments", "request"})
        if wrong or "tool" not in attack:
            raise ConfigError(f"{file}: attack {number} needs a tool and may give arguments and request; unknown: {', '.join(wrong) or 'none'}")
    kwargs["attacks"] = [dict(a) for a in attacks]
    budgets = data.get("budgets", {})
    if not isinstance(budgets, Mapping):
        raise ConfigError(f"{file}: [budgets] must be a table")
    extra = sorted(set(budgets) - set(BUDGET_KEYS))
    if extra:
        raise ConfigError(f"{file}: [budgets] has key(s) {', '.join(extra)} an agent check does not read; its budgets are {', '.join(BUDGET_KEYS)}")
    kwargs["budgets"] = dict(budgets)
    waive = data.get("waive", {})
    if not isinstance(waive, Mapping):
        raise ConfigError(f"{file}: [waive] must be a table of a chaos family or failure state = \"the reason\"")
    if waive:
        kwargs["waive"] = {str(name): reason for name, reason in waive.items()}
    return kwargs
