"""The sync driver: runs the step machine for a sync system, calling it directly or in a worker thread."""

from __future__ import annotations

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

__all__ = ["GuardedSystem"]

_perf = time.perf_counter


class GuardedSystem(GuardedBase):
    """A sync system under a policy: calling it always returns one outcome (or raises through ``Raise``)."""

    def __init__(self, policy: GuardPolicy, system: Callable[[Any], Any], *, name: str | None = None, store: StoreHandle | None = None):
        super().__init__(policy, system, name=name, store=store)
        self._threaded = self._table.uses_timeout
        self._pool = policy._worker_pool() if self._threaded else None

    def __call__(self, input: Any) -> Outcome:
        """Guard one call: ``Answered``, ``Clarify``, ``Escalated``, ``Abstained`` or ``Defaulted``."""
        return self.call_traced(input)[0]

    def call_traced(self, input: Any) -> tuple[Outcome, Trace]:
        """Guard one call and return its outcome together with its trace."""
        run = self._new_run(input, False)
        outcome = None
        try:
            route = check_input(run) if self._input_checks else None
            if route is None:
                route = self._first_call(run, input)
            if route is None:
                outcome = Answered(run.answer, run.answer_confidence, run.degraded, state=run.decided, trace_id=run.trace_id)
            else:
                resolution = self._drive(steps(run, route), input)
        except Exception as exc:
            outcome = None
            resolution = internal_error(run, exc)
        if outcome is not None:
            return self._finish_answered(run, outcome)
        return self._finish(run, resolution)

    def _first_call(self, run: Run, input: Any) -> Any:
        """Make the first call here rather than through the step machine (most calls end with it): as ``read_result``."""
        if self._threaded:
            return read_result(run, self._call(run.call_step(), input), "call")
        started = _perf()
        try:
            raw = self.system(input)
        except Exception as exc:
            return read_result(run, CallResult(None, exc, (_perf() - started) * 1000.0), "call")
        run.calls = 1
        return read_value(run, raw, (_perf() - started) * 1000.0, "call")

    def _drive(self, machine: Generator[Step, Any, Resolution], input: Any) -> Resolution:
        """Perform the steps the policy asks for until it decides."""
        try:
            step = machine.send(None)
            while True:
                if type(step) is CallStep:
                    if step.count is None:
                        answer: Any = self._call(step, input)
                    else:
                        answer = [self._call(step, input) for _ in range(step.count)]
                else:
                    time.sleep(step.seconds)
                    answer = None
                step = machine.send(answer)
        except StopIteration as stop:
            return stop.value

    def _call(self, step: CallStep, input: Any) -> CallResult:
        """One call of ``step.system``: in a worker thread when it has a time limit, else directly."""
        if step.limit is None or self._pool is None:
            return _call_direct(step.bound(), input)
        started = _perf()
        job = self._pool.submit(step.bound(), input)
        if not job.wait(step.limit):
            return CallResult(None, None, (_perf() - started) * 1000.0, True, step.limit, step.limit_is_deadline)
        error = job.error
        if error is None:
            return CallResult(job.value, None, (_perf() - started) * 1000.0)
        if not isinstance(error, Exception):
            raise error  # KeyboardInterrupt, SystemExit: they propagate
        return CallResult(None, error, (_perf() - started) * 1000.0)


def _call_direct(system: Any, input: Any) -> CallResult:
    started = _perf()
    try:
        value = system(input)
    except Exception as exc:
        return CallResult(None, exc, (_perf() - started) * 1000.0)
    return CallResult(value, None, (_perf() - started) * 1000.0)
