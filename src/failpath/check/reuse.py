"""The raw answers the check's fit already has, given to the execute stage instead of asking the system again.

Fitting ``AnomalousInput(fit="check")`` calls the raw system on every realistic variant of the
calibration half (:func:`failpath.check.fitting.fit_detectors`); the execute stage then sends the very
same requests through the guard, whose first call asks the system the very same input. The fit keeps
what each call returned as a :class:`RecordedAnswer`, under the request's key
(:func:`failpath.check.plan.request_key`); the execute stage gives that request's guard
:func:`answered_once`: the system, except that its first call, made with the request's input alone,
returns the recorded answer. Every other call of the request goes to the system: a retry, a re-ask with
feedback, a fallback's own system. A call that raised during the fit is not recorded, so it is made again.

The answer is reused only where it is the answer the check would have got: the system answers an input
the same way each time. A policy with a rule for ``inconsistent`` declares the opposite (it samples the
system again on purpose, because a second answer may differ), so :func:`reuses_answers` says no and every
call is made, as it always was. When the policy puts a time limit on calls (``Timeout(after=...)`` or a
``deadline``), whether a call runs past it is part of what is checked: the recorded answer then comes
back after as long as its call took during the fit (:func:`replays_time`), so the guard times it as it
would have timed the call.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["RecordedAnswer", "reuses_answers", "replays_time", "answered_once"]


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    """What the raw system returned for ``input`` during the fit (a value or a ``Prediction``), and how long it took."""

    input: Any
    output: Any
    seconds: float


def reuses_answers(policy: Any) -> bool:
    """True when the check may answer a request's first call from the fit's call with the same input.

    False for a policy with a rule for ``inconsistent`` (the system is declared stochastic) and for a
    policy-like object of your own (nothing says how it calls the system).
    """
    if getattr(policy, "table", None) is None:
        return False
    return "inconsistent" not in set(policy.handled_states())


def replays_time(policy: Any) -> bool:
    """True when the policy limits how long a call may take: a reused answer then takes as long as its call did."""
    return bool(getattr(getattr(policy, "table", None), "uses_timeout", False))


def _same_input(given: Any, recorded: Any) -> bool:
    if given is recorded:
        return True
    try:
        return type(given) is type(recorded) and bool(given == recorded)
    except Exception:  # noqa: BLE001 - an input that cannot be compared is not reused
        return False


def answered_once(system: Callable[..., Any], recorded: RecordedAnswer, *, in_time: bool = False) -> Callable[..., Any]:
    """``system``, except that its first call, when made with ``recorded.input`` alone, returns ``recorded.output``.

    Later calls, and a first call with anything else (another input, a ``feedback=`` keyword), go to
    ``system``. ``in_time``: the recorded answer comes back after ``recorded.seconds`` (see
    :func:`replays_time`). The result is sync or async as ``system`` is, and carries its name and
    signature (traces name the system alike; ``fp.Reask`` sees whether it takes feedback).
    """
    lock = threading.Lock()
    first = [True]

    def take(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        with lock:
            was_first, first[0] = first[0], False
        return was_first and not kwargs and len(args) == 1 and _same_input(args[0], recorded.input)

    if inspect.iscoroutinefunction(system) or inspect.iscoroutinefunction(getattr(system, "__call__", None)):

        async def answering_async(*args: Any, **kwargs: Any) -> Any:
            if take(args, kwargs):
                if in_time:
                    await asyncio.sleep(recorded.seconds)
                return recorded.output
            return await system(*args, **kwargs)

        answering: Callable[..., Any] = answering_async
    else:

        def answering_sync(*args: Any, **kwargs: Any) -> Any:
            if take(args, kwargs):
                if in_time:
                    time.sleep(recorded.seconds)
                return recorded.output
            return system(*args, **kwargs)

        answering = answering_sync
    from failpath.guard.guarded import system_name

    name = system_name(system, None)
    try:
        functools.update_wrapper(answering, system, updated=())
    except (AttributeError, TypeError):  # pragma: no cover - exotic callables
        answering.__wrapped__ = system  # type: ignore[attr-defined]
    answering.__name__ = getattr(system, "__name__", name)
    answering.__qualname__ = getattr(system, "__qualname__", name)
    return answering
