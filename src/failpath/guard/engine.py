"""The guard: runs one call through a policy and always ends in one outcome and one trace.

How it is built, from the bottom up:

- :mod:`~failpath.guard.table`: the policy compiled for the guard (detectors sorted by when they look);
- :mod:`~failpath.guard.run`: one call's record while it is decided;
- :mod:`~failpath.guard.decide`: the step machine, a generator that decides a call without doing I/O,
  with :mod:`~failpath.guard.resolve` for the actions that end a call;
- :mod:`~failpath.guard.tracing`: the call's ``Trace``;
- :mod:`~failpath.guard.sync_guard` and :mod:`~failpath.guard.async_guard`: the drivers that perform the
  machine's steps (with :mod:`~failpath.guard.workers` for sync systems under a time limit).

This module picks the driver for a system.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from failpath.core import PolicyError
from failpath.guard.actions import Fallback, Reask, _is_async, takes_feedback
from failpath.guard.async_guard import AsyncGuardedSystem
from failpath.guard.guarded import GuardedBase, GuardPolicy, system_name
from failpath.guard.stores import StoreHandle
from failpath.guard.sync_guard import GuardedSystem

__all__ = ["GuardedSystem", "AsyncGuardedSystem", "make_guarded"]


def make_guarded(policy: GuardPolicy, system: Callable[[Any], Any], *, name: str | None, store: StoreHandle) -> Any:
    """The guarded twin of ``system``: async for an ``async def`` system, sync otherwise."""
    if isinstance(system, GuardedBase):
        raise PolicyError(f"{system!r} is guarded already; wrap the original system (guarded.system)")
    if not callable(system):
        raise PolicyError(f"policy {policy.name!r}: cannot guard {system!r}; give a callable input -> output")
    _check_feedback(policy, system, name)
    for detector, _ in policy.table.input_checks:
        if getattr(detector, "fitted", True) is False:  # AnomalousInput(fit="check") before a check fitted it
            raise PolicyError(f"policy {policy.name!r}: {detector.not_fitted()}")
    if _is_async(system):
        return AsyncGuardedSystem(policy, system, name=name, store=store)
    for fallback in policy.table.fallbacks():
        if fallback.is_async:
            raise PolicyError(
                f"policy {policy.name!r}: {fallback!r} is async, but {system_name(system, name)} is sync; "
                "a sync guarded system can only fall back to a sync system"
            )
    return GuardedSystem(policy, system, name=name, store=store)


def _check_feedback(policy: GuardPolicy, system: Callable[[Any], Any], name: str | None) -> None:
    """Refuse a policy whose ``Reask`` would call a system (the primary, or the fallback before it in its
    chain) that takes no ``feedback`` keyword: the re-ask could never run."""
    for number, rule in enumerate(policy.table.rules, start=1):
        current, current_name = system, system_name(system, name)
        for action in rule.actions:
            if isinstance(action, Fallback):
                current, current_name = action.system, action.system_name
            elif isinstance(action, Reask) and not takes_feedback(current):
                raise PolicyError(
                    f"policy {policy.name!r}, rule {number} on {rule.state.name}: {action!r} calls {current_name} again "
                    "with feedback=fp.Feedback(...), but it takes no feedback keyword argument; "
                    "add one (def system(input, feedback=None)), or use fp.Retry to call it again unchanged"
                )
