"""``fp.resume(run_id)``: continue an agent run from its last checkpoint, in any process."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from failpath.core import ConfigError, Outcome, StoreError

__all__ = ["resume", "load_agent"]


def load_agent(ref: str) -> Any:
    """The agent at ``"module:attribute"`` (imported now); ``ConfigError`` naming what is missing."""
    from failpath.agent.runner import Agent

    module_name, sep, attribute = ref.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"{ref!r}: write the agent as module:attribute, e.g. refunds.app:agent")
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # so the project's own modules are found, as `failpath lint` does
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} to find the agent {ref!r}: {exc}; run from the directory that holds it") from None
    agent = module
    for part in attribute.split("."):
        agent = getattr(agent, part, None)
        if agent is None:
            raise ConfigError(f"{module_name!r} has no {attribute!r}: give the agent as 'module:attribute'")
    if not isinstance(agent, Agent):
        raise ConfigError(f"{ref!r} is a {type(agent).__name__}, not an fp.Agent")
    return agent


def resume(run_id: str, *, agent: Any = None, store: Any = None) -> Outcome:
    """Continue run ``run_id`` from its last completed step, and return its outcome.

    ``agent`` is the ``fp.Agent`` (or ``"module:attribute"``) the run belongs to; without it, the agent
    is imported from the ``ref`` the run recorded (``fp.Agent(..., ref="module:attribute")``). ``store``
    is where to find the run when the agent is not given (a path; default ``.failpath/failpath.db``).
    """
    if isinstance(agent, str):
        agent = load_agent(agent)
    if agent is None:
        from failpath.store import open_store

        opened = open_store(store)
        try:
            checkpoints = opened.checkpoints(run_id)
        finally:
            opened.close()
        if not checkpoints:
            raise StoreError(f"no agent run {run_id!r} in {store or '.failpath/failpath.db'}; `failpath runs` lists the runs")
        ref = checkpoints[0][2].get("ref")
        if not ref:
            raise ConfigError(
                f"run {run_id!r} recorded no agent to import: pass agent=... or build the agent with fp.Agent(..., ref='module:attribute')"
            )
        agent = load_agent(ref)
    return agent.resume(run_id)
