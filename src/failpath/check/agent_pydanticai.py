"""The agent check over a pydantic-ai agent: the trial's chaos as a pydantic-ai capability.

``fp.check_agent`` accepts, from the agent factory, either an ``fp.Agent`` or a pydantic-ai agent under
failpath's adapter (``fp.agent.guard_pydantic_ai(agent, policy)``). pydantic-ai drives its own loop, so
the check cannot swap an ``fp.Agent``'s tool functions and model; it gives each run one more capability,
inside failpath's (:func:`~failpath.agent.pydanticai.GuardedPydanticAgent.run` ``capabilities=``):

- its ``wrap_tool_execute`` runs each tool call the policy let through with the trial's chaos: the tool
  fault (transport faults raise before the tool runs, content faults spoil what it returned), the
  planted instruction added to the output, and a note of every call that executed (an attacker's goal
  is reached when its call executed). The same seeds as for ``fp.Agent``: one fault stream per tool,
  seeded by ``(trial seed, "tool", tool name)``.
- its ``get_wrapper_model`` wraps the model with the trial's model fault: a transport fault raises
  where the provider's request would be sent; a content fault spoils the response's text and tool
  arguments (``none_output`` is a response with nothing in it).

Approvals work as for ``fp.Agent``: the adapter defers a call its ``RequireApproval`` holds (pydantic-ai's
``ApprovalRequired``) and keeps the waiting run in the policy's store; the check answers the ticket as the
task's reviewer would and continues the run (:meth:`GuardedPydanticAgent.resume`), so an approved call
runs and a rejected one never does. ``tool_outcome_unknown`` (a tool call cut off by a crash) is not
asked of such an agent: failpath does not checkpoint a pydantic-ai run between steps, so it never arises.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from failpath.agent.pydanticai import GuardedPydanticAgent
from failpath.chaos.base import derive_rng, derive_seed, unit_interval
from failpath.chaos.faults import Fault
from failpath.chaos.tool_faults import planting

__all__ = ["is_pydantic_agent", "PydanticTrial", "UNREACHABLE_STATES"]

#: States the pydantic-ai adapter never detects (a tool call cut off by a crash needs checkpoints between steps).
UNREACHABLE_STATES = ("tool_outcome_unknown",)


def is_pydantic_agent(value: Any) -> bool:
    """True when ``value`` is a pydantic-ai agent under failpath's adapter (``fp.agent.guard_pydantic_ai``)."""
    return isinstance(value, GuardedPydanticAgent)


class _PolicyTool:
    """What the check asks of a tool of a pydantic-ai agent: whether a call is risky under the policy."""

    def __init__(self, name: str, guarded: GuardedPydanticAgent):
        self.name = name
        self._guarded = guarded

    def is_risky(self, arguments: Mapping[str, Any]) -> bool:
        return self._guarded.is_risky(self.name, arguments)


class PydanticTrial:
    """One trial's run of a guarded pydantic-ai agent, shaped as the check drives an ``fp.Agent``.

    ``run`` and ``resume`` drive the run on the check's event loop (``loop``) from the trial's worker
    thread, with the chaos capability (one for the whole run, so a resumed run continues its fault
    streams); ``executed`` receives ``(tool, arguments)`` for every tool call that ran.
    """

    is_async = True  # the check hands its event loop to run(), where pydantic-ai's run is awaited

    def __init__(self, guarded: GuardedPydanticAgent, plan: Any, executed: list[tuple[str, dict[str, Any]]]):
        self.guarded = guarded
        self.policy = guarded.policy
        self.name = guarded.name
        self.plan = plan
        self.executed = executed
        self.tools = {name: _PolicyTool(name, guarded) for name in guarded.tool_names()}
        self.chaos = _chaos_class()(plan=plan, executed=executed)

    def run(self, value: Any, *, run_id: str | None = None, loop: Any = None, observe: Callable[[Any], None] | None = None) -> Any:
        """Run the agent on ``value`` under the plan's chaos to one outcome."""
        if loop is None:
            return self.guarded.run_sync(value, run_id=run_id, capabilities=[self.chaos], observe=observe)
        return asyncio.run_coroutine_threadsafe(self.guarded.run(value, run_id=run_id, capabilities=[self.chaos], observe=observe), loop).result()

    def resume(self, run_id: str, *, loop: Any = None, observe: Callable[[Any], None] | None = None) -> Any:
        """Continue the run once its approvals are decided, under the same chaos."""
        if loop is None:
            return self.guarded.resume_sync(run_id, capabilities=[self.chaos], observe=observe)
        return asyncio.run_coroutine_threadsafe(self.guarded.resume(run_id, capabilities=[self.chaos], observe=observe), loop).result()


class _ModelFaults:
    """Which model requests of one trial a fault strikes: request ``i`` by ``(seed, i)`` alone, as ``Fault.wrap`` decides."""

    def __init__(self, fault: Fault, seed: int):
        self.fault = fault
        self.seed = seed
        self.requests = itertools.count()

    def strike(self) -> Fault | None:
        index = next(self.requests)
        if self.fault.rate < 1.0 and unit_interval(self.seed, index, "fault-rate") >= self.fault.rate:
            return None
        return self.fault.strike(derive_rng(self.seed, index, "fault-choice"))


def _with_rate(fault: Fault, rate: float) -> Fault:
    return fault if fault.rate == rate else dataclasses.replace(fault, rate=rate)


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _response_of(value: Any, model_name: str) -> Any:
    """The response a model fault gives instead of the model's: its text, or nothing at all (``None`` or ``""``)."""
    from pydantic_ai.messages import ModelResponse, TextPart

    return ModelResponse(parts=[TextPart(_as_text(value))] if value not in (None, "") else [], model_name=model_name)


def _spoiled(fault: Fault, response: Any) -> Any:
    """``response`` with ``fault.after_call`` applied to each text part's content and each tool call's arguments."""
    from pydantic_ai.messages import TextPart, ToolCallPart

    parts = []
    for part in response.parts:
        if isinstance(part, TextPart):
            part = dataclasses.replace(part, content=_as_text(fault.after_call(part.content)))
        elif isinstance(part, ToolCallPart):
            try:
                arguments = part.args_as_dict()
            except ValueError:  # the model's arguments are not JSON already: the fault spoils them as text
                arguments = part.args
            spoilt = fault.after_call(arguments)
            part = dataclasses.replace(part, args=spoilt if isinstance(spoilt, (str, dict)) else _as_text(spoilt))
        parts.append(part)
    return dataclasses.replace(response, parts=parts)


@functools.cache
def _chaos_class() -> type:
    """The chaos capability class (built on first use, so pydantic-ai is imported only when a check runs one)."""
    from pydantic_ai.capabilities import AbstractCapability
    from pydantic_ai.models.wrapper import WrapperModel

    class FaultyModel(WrapperModel):
        """The trial's model, misbehaving as its model fault says on the requests the fault strikes."""

        def __init__(self, wrapped: Any, faults: _ModelFaults):
            super().__init__(wrapped)
            self.faults = faults

        async def request(self, messages: Any, model_settings: Any, model_request_parameters: Any) -> Any:
            struck = self.faults.strike()
            if struck is None:
                return await super().request(messages, model_settings, model_request_parameters)
            if struck.delay:
                await asyncio.sleep(struck.delay)
            early = struck.before_call()  # a transport fault raises here, before anything is sent
            if early is not None:
                return _response_of(early.value, self.model_name)
            return _spoiled(struck, await super().request(messages, model_settings, model_request_parameters))

    @dataclass
    class TrialChaos(AbstractCapability):
        """One trial's chaos on a pydantic-ai run: tool faults, planted instructions, model faults; notes what executed."""

        plan: Any = None
        executed: list = field(default_factory=list)
        _tools: dict = field(default_factory=dict)
        _model: Any = None

        def __post_init__(self) -> None:
            plan = self.plan
            if plan.model_fault is not None:
                self._model = _ModelFaults(_with_rate(plan.model_fault, plan.fault_rate), derive_seed(plan.trial.seed, "model"))

        def get_wrapper_model(self, model: Any) -> Any:
            return None if self._model is None else FaultyModel(model, self._model)

        async def wrap_tool_execute(self, ctx: Any, *, call: Any, tool_def: Any, args: Any, handler: Any) -> Any:
            runner = self._tools.get(call.tool_name)
            if runner is None:
                runner = self._tools[call.tool_name] = _tool_runner(self.plan, call.tool_name, self.executed)
            return await runner(handler, args)

    return TrialChaos


def _tool_runner(plan: Any, name: str, executed: list[tuple[str, dict[str, Any]]]) -> Callable[..., Any]:
    """``runner(handler, args)``: one tool's calls under the plan's chaos, built as ``fp.Agent``'s tools are
    (the note of the call innermost, then the planted text, then the fault outermost)."""

    async def execute(handler: Any, args: Any) -> Any:
        executed.append((name, dict(args) if isinstance(args, Mapping) else {"args": args}))
        return await handler(args)

    runner: Callable[..., Any] = execute
    goal = plan.goal
    if plan.planted is not None and (name in plan.plant_into or (not plan.plant_into and (goal is None or name != goal.tool))):
        runner = planting(runner, plan.planted)
    if plan.tool_fault is not None:
        runner = _with_rate(plan.tool_fault, plan.fault_rate).wrap(runner, derive_seed(plan.trial.seed, "tool", name))
    return runner
