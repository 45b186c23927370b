"""What a run does between two checkpoints, how a step ends the run, and the checkpoint write itself.

The agent's model step, tool step and approvals (:mod:`failpath.agent.modelstep`,
:mod:`failpath.agent.toolstep`, :mod:`failpath.agent.approvals`) collect what they do in a
:class:`Segment`; :func:`commit` writes it as the run's next checkpoint. A step that ends the run
raises :class:`Ended` with the outcome, which the driver in :mod:`failpath.agent.runner` catches.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

from failpath.agent.record import RunRecord
from failpath.agent.states import (
    InvalidToolArgs,
    LoopDetected,
    RiskyToolCall,
    ToolError,
    ToolOutcomeUnknown,
    ToolOutputInjection,
)
from failpath.core import FailpathError, Outcome
from failpath.guard.actions import Abstain, ClarifyAction, Default, Escalate, Raise
from failpath.guard.states import BudgetExceeded, Unexpected

__all__ = ["RunBusy", "Ended", "Segment", "TERMINAL", "begin", "commit", "write_held", "awaited", "is_async", "agent_rules"]

perf = time.perf_counter

# The actions that end a run (every other action settles a state and lets the run go on).
TERMINAL = (Abstain, Default, ClarifyAction, Escalate, Raise)


class RunBusy(FailpathError):
    """Another process continued this run first (it wrote the step this one was about to write); this one stopped."""


class Ended(Exception):
    """Internal: the run ended with this outcome (raised through the step functions)."""

    def __init__(self, outcome: Outcome | None, exception: BaseException | None = None, *, quiet: bool = False):
        self.outcome = outcome
        self.exception = exception
        self.quiet = quiet  # nothing new happened (a run still waiting): no checkpoint, no trace


class Segment:
    """What the driver has done since its last checkpoint (the next checkpoint carries it)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.states: list[str] = []
        self.actions: list[str] = []
        self.notes: list[str] = []
        self.explanations: dict[str, Any] = {}
        self.usage: dict[str, float] = {}
        self.model_calls = 0
        self.tool_runs = 0
        self.tool_failures = 0

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("steps", "states", "actions", "notes", "explanations", "usage"):
            value = getattr(self, key)
            if value:
                out[key] = value
        for key in ("model_calls", "tool_runs", "tool_failures"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


def begin(record: RunRecord, store: Any, config: dict[str, Any], start: dict[str, Any]) -> bool:
    """Register a new run in the store and write its ``start`` checkpoint, in one store call; fold it into the record.

    False, writing nothing, when the store has a run with that id already.
    """
    now = perf()
    payload = {**start, "active": now - record.segment_start}
    if not store.begin_run(record.run_id, kind="agent", config=config, first_checkpoint=("start", payload)):
        return False
    record.apply(0, "start", payload)
    record.segment_start = now
    return True


def commit(record: RunRecord, store: Any, seg: Segment, kind: str, data: dict[str, Any], *, summary: dict[str, Any] | None = None,
           hold: bool = False) -> None:
    """Write the next checkpoint (claiming its number) and fold it into the record.

    With ``summary`` (the ``end`` checkpoint), the store marks the run finished in the same write.

    ``hold``: nothing outside the run depends on this checkpoint until the next one is written (a model
    turn; the claim and the result of an idempotent tool, which may safely run again), so, with a store
    that writes several checkpoints at once (``writes_earlier_checkpoints``), it is held in the record and
    written in the same transaction as the next checkpoint that is not held, or by :func:`write_held` when
    the run returns. What is on disk is always the run's first checkpoints, in order: what a crash a moment
    earlier would have left. So a tool that is not idempotent is claimed on disk before it runs, the run's
    end and an approval it waits for are on disk before the run returns, and a crash repeats at most
    model turns and idempotent tool calls.
    """
    now = perf()
    payload = {**data, **seg.data(), "active": now - record.segment_start}
    if store is not None and record.checkpointed:
        batched = getattr(store, "writes_earlier_checkpoints", False)
        if hold and batched and summary is None:
            record.held.append((record.seq, kind, payload))
        else:
            _write(record, store, [*record.held, (record.seq, kind, payload)], summary)
    record.apply(record.seq, kind, payload)
    record.segment_start = now
    if seg is record.current:
        record.current = Segment()


def write_held(record: RunRecord, store: Any) -> None:
    """Write the checkpoints :func:`commit` held back (when a run returns or stops without a checkpoint of its own)."""
    if record.held and store is not None:
        _write(record, store, list(record.held))


def _write(record: RunRecord, store: Any, checkpoints: list[tuple[int, str, dict[str, Any]]], summary: dict[str, Any] | None = None) -> None:
    """Write ``checkpoints`` (the held ones, then the last) in one store call; with ``summary``, the last ends the run.

    The held checkpoints are let go only once written: a write that raised keeps them, so no number is skipped.
    """
    last, earlier = checkpoints[-1], checkpoints[:-1]
    extra = {"earlier": earlier} if earlier else {}
    if summary is None:
        written = store.add_checkpoint(record.run_id, *last, **extra)
    else:
        written = store.end_run(record.run_id, last_checkpoint=last, summary=summary, **extra)
    record.held = []
    if not written:
        raise RunBusy(f"run {record.run_id}: another process continued it (a checkpoint up to {last[0]} exists); this one stopped")


def is_async(fn: Any) -> bool:
    """True for an ``async def`` function or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


async def _await(awaitable: Any) -> Any:
    return await awaitable


def awaited(record: RunRecord, value: Any) -> Any:
    """``value``, or what it resolves to when it is awaitable (awaited on the run's event loop)."""
    if not inspect.isawaitable(value):
        return value
    if record.loop is None:
        if inspect.iscoroutine(value):
            value.close()
        raise TypeError("the model step or tool returned an awaitable in a sync run; run the agent with `await agent.arun(...)`")
    return asyncio.run_coroutine_threadsafe(_await(value), record.loop).result()


def agent_rules(policy: Any) -> dict[str, list[tuple[Any, int]]]:
    """``{state name: [(detector, rule index), ...]}`` for the rules an agent reads itself, in rule order."""
    kinds = (ToolError, InvalidToolArgs, ToolOutputInjection, RiskyToolCall, LoopDetected, ToolOutcomeUnknown, BudgetExceeded, Unexpected)
    rules: dict[str, list[tuple[Any, int]]] = {}
    for index, rule in enumerate(policy.rules):
        if isinstance(rule.state, kinds):
            rules.setdefault(rule.state.name, []).append((rule.state, index))
    for name in ("provider_error", "timeout", "invalid_output"):
        for index, rule in enumerate(policy.rules):
            if rule.state.name == name:
                rules.setdefault(name, []).append((rule.state, index))
    return rules
