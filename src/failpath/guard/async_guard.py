"""The async driver: runs the step machine for an ``async def`` system with ``await``."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Generator
from typing import Any

from failpath.core import Answered, Outcome, Trace
from failpath.guard.decide import check_input, read_result, read_value, steps
from failpath.guard.guarded import GuardedBase, GuardPolicy
from failpath.guard.resolve import internal_error
from failpath.guard.run import Run
from failpath.guard.steps import CallResult, CallStep, Resolution, Step
from failpath.guard.stores import StoreHandle

__all__ = ["AsyncGuardedSystem"]

_perf = time.perf_counter


class AsyncGuardedSystem(GuardedBase):
    """An ``async def`` system under a policy: ``await guarded(input)`` always returns one outcome."""

    def __init__(self, policy: GuardPolicy, system: Callable[[Any], Any], *, name: str | None = None, store: StoreHandle | None = None):
        super().__init__(policy, system, name=name, store=store)
        self._timed = self._table.uses_timeout

    async def __call__(self, input: Any) -> Outcome:
        """Guard one call: ``Answered``, ``Clarify``, ``Escalated``, ``Abstained`` or ``Defaulted``."""
        return (await self.call_traced(input))[0]

    async def call_traced(self, input: Any) -> tuple[Outcome, Trace]:
        """Guard one call and return its outcome together with its trace."""
        run = self._new_run(input, True)
        outcome = None
        try:
            route = check_input(run) if self._input_checks else None
            if route is None:
                route = await self._first_call(run, input)
            if route is None:
                outcome = Answered(run.answer, run.answer_confidence, run.degraded, state=run.decided, trace_id=run.trace_id)
            else:
                resolution = await self._drive(steps(run, route), input)
        except Exception as exc:
            outcome = None
            resolution = internal_error(run, exc)
        if outcome is not None:
            return self._finish_answered(run, outcome)
        return self._finish(run, resolution)

    async def _first_call(self, run: Run, input: Any) -> Any:
        """Make the first call here rather than through the step machine (most calls end with it): as ``read_result``."""
        if self._timed:
            return read_result(run, await _call_async(run.call_step(), input), "call")
        started = _perf()  # what _call_async does for an async system with no time limit, inline
        try:
            raw = await self.system(input)
        except Exception as exc:
            return read_result(run, CallResult(None, exc, (_perf() - started) * 1000.0), "call")
        run.calls = 1
        return read_value(run, raw, (_perf() - started) * 1000.0, "call")

    async def _drive(self, machine: Generator[Step, Any, Resolution], input: Any) -> Resolution:
        """Perform the steps the policy asks for until it decides (samples are drawn concurrently)."""
        try:
            step = machine.send(None)
            while True:
                if type(step) is CallStep:
                    if step.count is None:
                        answer: Any = await _call_async(step, input)
                    else:
                        import asyncio  # here, not at the top: it costs 35 ms at import, and only async users need it

                        answer = list(await asyncio.gather(*(_call_async(step, input) for _ in range(step.count))))
                else:
                    import asyncio

                    await asyncio.sleep(step.seconds)
                    answer = None
                step = machine.send(answer)
        except StopIteration as stop:
            return stop.value


async def _call_async(step: CallStep, input: Any) -> CallResult:
    """One call of ``step.system``: awaited (cancelled at its time limit); a sync one (a fallback) is called
    inline when nothing limits its time, else in a worker thread, so it never holds the event loop past
    the limit (the thread itself runs on until the function returns: Python cannot stop it)."""
    started = _perf()
    system = step.bound()
    if not step.is_async and step.limit is not None:
        return await _call_in_thread(step, input, started)
    if not step.is_async:  # a sync fallback under an async guard, with no time limit: called inline
        try:
            value = system(input)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            return CallResult(None, exc, (_perf() - started) * 1000.0)
        return CallResult(value, None, (_perf() - started) * 1000.0)
    if step.limit is None:
        try:
            value = await system(input)
        except Exception as exc:
            return CallResult(None, exc, (_perf() - started) * 1000.0)
        return CallResult(value, None, (_perf() - started) * 1000.0)
    import asyncio

    timer = asyncio.timeout(step.limit)
    try:
        async with timer:
            value = await system(input)
    except Exception as exc:
        if timer.expired():
            return CallResult(None, None, (_perf() - started) * 1000.0, True, step.limit, step.limit_is_deadline)
        return CallResult(None, exc, (_perf() - started) * 1000.0)
    return CallResult(value, None, (_perf() - started) * 1000.0)


async def _call_in_thread(step: CallStep, input: Any, started: float) -> CallResult:
    """A sync system's call under a time limit, run in a worker thread while the event loop goes on."""
    import asyncio

    timer = asyncio.timeout(step.limit)
    try:
        async with timer:
            value = await asyncio.to_thread(step.bound(), input)
            if inspect.isawaitable(value):
                value = await value
    except Exception as exc:
        if timer.expired():
            return CallResult(None, None, (_perf() - started) * 1000.0, True, step.limit, step.limit_is_deadline)
        return CallResult(None, exc, (_perf() - started) * 1000.0)
    return CallResult(value, None, (_perf() - started) * 1000.0)
