"""What the step machine asks a driver to do, and what it hands back: the records of one decision.

The step machine (:mod:`failpath.guard.decide`) yields a :class:`CallStep` or a :class:`SleepStep`; the
sync or async driver performs it and sends back a :class:`CallResult` (a list of them for a step that
draws several samples). When the machine has decided, it returns a :class:`Resolution`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, TypeAlias

from failpath.core import Outcome

__all__ = ["CallStep", "SleepStep", "CallResult", "Resolution", "Step", "Route", "NO_VOTE", "SAMPLE"]


@dataclass(frozen=True, slots=True)
class CallStep:
    """Call ``system`` on the input, each call for at most ``limit`` seconds (None: no limit).

    ``limit_is_deadline``: the limit is what is left of the policy's deadline, not the ``Timeout`` rule's.
    ``count`` None: one call, its ``CallResult`` is sent back; an integer: that many calls, a list is sent back.
    ``feedback``: an ``fp.Feedback`` to pass as ``system(input, feedback=...)`` (a re-ask), or None.
    """

    system: Any
    is_async: bool
    limit: float | None
    limit_is_deadline: bool
    count: int | None = None
    feedback: Any = None

    def bound(self) -> Any:
        """What to call with the input alone: ``system``, or ``system`` with ``feedback=`` bound for a re-ask."""
        if self.feedback is None:
            return self.system
        return functools.partial(self.system, feedback=self.feedback)


@dataclass(frozen=True, slots=True)
class SleepStep:
    """Wait ``seconds`` before the next call (a retry's backoff)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class CallResult:
    """What one system call did: its value, or its exception, or that it ran out of time.

    For a call cut by its time limit, ``limit`` and ``limit_is_deadline`` repeat the step's.
    """

    value: Any
    error: Exception | None
    latency_ms: float
    timed_out: bool = False
    limit: float | None = None
    limit_is_deadline: bool = False


@dataclass(frozen=True, slots=True)
class Resolution:
    """How a call ended: its outcome, or the exception a ``Raise`` action raises (with its cause)."""

    outcome: Outcome | None
    exception: BaseException | None = None
    cause: BaseException | None = None


Step: TypeAlias = "CallStep | SleepStep"

#: Where a call goes: (state, rule index or None, explanation, True when an input check found it).
Route: TypeAlias = "tuple[str, int | None, Any, bool]"

#: A sample that does not vote (it failed, or its key function raised).
NO_VOTE = object()
#: Returned by the step machine's reader instead of a route: "compare the answer with more samples first".
SAMPLE = object()
