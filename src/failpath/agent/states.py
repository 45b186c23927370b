"""The failure states of an agent run: rules on them are written ``fp.on(state).do(...)`` like any other.

Tool-side states look at one tool call (``ToolError``, ``InvalidToolArgs``, ``ToolOutputInjection``,
``RiskyToolCall``, ``ToolOutcomeUnknown``); ``LoopDetected`` looks at the whole run. A spent budget of
the run is the guard's own ``fp.BudgetExceeded()``; the model step's failures are the guard's states
(``ProviderError``, ``Timeout``, ``InvalidOutput``, ``Unexpected``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from failpath.core import ProviderFailure
from failpath.guard.input_states import InjectionSuspected
from failpath.guard.states import FailureState, parameter_error

__all__ = ["ToolError", "InvalidToolArgs", "ToolOutputInjection", "RiskyToolCall", "LoopDetected", "ToolOutcomeUnknown"]


class ToolError(FailureState):
    """A tool raised. With exception types, only those (and ``ProviderFailure``); with none, any exception.

    A ``ProviderFailure`` whose status is not transient (400, 404, ...) is not retried by ``Retry``, as in the guard.
    """

    name = "tool_error"
    stage = "tool"

    def __init__(self, *exception_types: type[BaseException]):
        for kind in exception_types:
            if not (isinstance(kind, type) and issubclass(kind, Exception)):
                raise parameter_error(f"ToolError({kind!r})", "each argument must be an Exception subclass, such as ConnectionError")
        self.exception_types = tuple(exception_types)
        self._claimed = (ProviderFailure, *exception_types) if exception_types else (Exception,)

    def claims(self, exc: BaseException) -> bool:
        """True when this rule handles the exception a tool raised."""
        return isinstance(exc, self._claimed)

    def subsumes(self, other: FailureState) -> bool:
        if not isinstance(other, ToolError):
            return False
        if not self.exception_types:
            return True
        return bool(other.exception_types) and all(issubclass(k, self._claimed) for k in other.exception_types)

    def _params(self) -> dict[str, Any]:
        return {"types": self.exception_types or None}

    def __repr__(self) -> str:
        return f"ToolError({', '.join(k.__name__ for k in self.exception_types)})"


class InvalidToolArgs(FailureState):
    """The model called a tool that does not exist, or with arguments that do not fit the tool's schema."""

    name = "invalid_tool_args"
    stage = "tool"


class ToolOutputInjection(FailureState):
    """A tool's output carries instructions aimed at the model: the ``InjectionSuspected`` detector, run on tool output.

    The keyword arguments are ``InjectionSuspected``'s (``phrases``, ``invisible``, ``role_markers``).
    """

    name = "tool_output_injection"
    stage = "tool"

    def __init__(self, *, phrases: Sequence[str] = (), invisible: bool = True, role_markers: bool = True):
        try:
            # A tool's output (a web page, a file) is often long: scanned whole, not refused for its length.
            self.detector = InjectionSuspected(phrases=phrases, invisible=invisible, role_markers=role_markers, max_chars=None)
        except Exception as exc:
            raise parameter_error("ToolOutputInjection(...)", str(exc).split(": ", 1)[-1]) from None

    def check_output(self, text: str) -> str | None:
        """The explanation when the output looks like an injection, else None."""
        return self.detector.check_input(text, text)

    def _params(self) -> dict[str, Any]:
        return self.detector._params()


class RiskyToolCall(FailureState):
    """A person must approve the call first: the tool is declared ``risky`` (for these arguments), or
    ``predicate(tool_name, arguments)`` says so. A predicate that raises counts as risky."""

    name = "risky_tool_call"
    stage = "tool"

    def __init__(self, predicate: Callable[[str, dict[str, Any]], Any] | None = None):
        if predicate is not None and not callable(predicate):
            raise parameter_error(f"RiskyToolCall({predicate!r})", "predicate must be a callable (tool_name, arguments) -> bool")
        self.predicate = predicate

    def check_call(self, tool_name: str, arguments: dict[str, Any]) -> str | None:
        """The explanation when the predicate says the call is risky, else None."""
        if self.predicate is None:
            return None
        try:
            hit = self.predicate(tool_name, arguments)
        except Exception as exc:
            return f"the risky predicate raised {type(exc).__name__}: {exc}; treated as risky"
        if not hit:
            return None
        return hit if isinstance(hit, str) else f"{tool_name} with these arguments needs approval"

    def _params(self) -> dict[str, Any]:
        return {"predicate": self.predicate}


class LoopDetected(FailureState):
    """The run repeats itself: the same (tool, canonical arguments) called again, counted over the whole run.

    At ``warn`` calls of one fingerprint the call runs and the model is told it repeats itself; at
    ``block`` calls the state fires (the call has not run). With ``stall``, the state also fires when
    that many tool calls in a row brought back nothing the run had not seen (no progress).
    """

    name = "loop_detected"
    stage = "run"

    def __init__(self, *, warn: int | None = 3, block: int = 5, stall: int | None = None):
        for field_name, value in (("block", block), ("warn", warn), ("stall", stall)):
            if value is None and field_name != "block":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise parameter_error(f"LoopDetected({field_name}={value!r})", f"{field_name} must be an integer of at least 2")
        if warn is not None and warn >= block:
            raise parameter_error(f"LoopDetected(warn={warn}, block={block})", "warn must be below block (or None for no warning)")
        self.warn = warn
        self.block = block
        self.stall = stall

    def _params(self) -> dict[str, Any]:
        return {"warn": self.warn, "block": self.block, "stall": self.stall}


class ToolOutcomeUnknown(FailureState):
    """A call of a tool not declared idempotent started but the run stopped (a crash) before it finished:
    nobody knows whether it ran. On resume the call is not run again; this state decides what happens."""

    name = "tool_outcome_unknown"
    stage = "tool"
