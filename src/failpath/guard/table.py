"""A policy compiled for the guard: its settings, and its detectors sorted once by when they look.

``Policy`` checks what the user wrote and builds one :class:`PolicyTable`; the guard decides every call
from it and lint reads it. Neither needs the ``Policy`` class itself, so the imports run one way:
``policy`` imports the guard and lint, which import this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from failpath.core import OutputRejected, ProviderFailure
from failpath.guard.actions import Fallback
from failpath.guard.rules import Budget, Rule
from failpath.guard.schemas import output_json_schema
from failpath.guard.states import (
    BudgetExceeded,
    Inconsistent,
    InvalidOutput,
    LowConfidence,
    ProviderError,
    State,
    Timeout,
    Unexpected,
)

__all__ = ["PolicyTable"]

# Input checks run in a fixed order, most specific first, whatever the order of the rules (others: 2).
_INPUT_PRIORITY = {"empty_input": 0, "injection_suspected": 1, "anomalous_input": 3}


@dataclass(frozen=True, slots=True, eq=False)
class PolicyTable:
    """A policy's settings and compiled detector lists. Build it with :meth:`compile`.

    Each detector list holds ``(detector, rule index)`` pairs; an index points into ``rules``.
    Compared by identity, like the ``Policy`` it belongs to; ``classify_cache`` is its only mutable part.
    """

    name: str
    rules: tuple[Rule, ...]
    max_attempts: int | None
    deadline: float | None
    budget: Budget | None
    store_raw_inputs: bool
    exporters: tuple[Any, ...]
    waived: Mapping[str, str]
    input_checks: tuple[tuple[Any, int], ...]  # input-side states, in the order they run
    error_claims: tuple[tuple[Any, int], ...]  # states that claim exceptions, in rule order
    catch_all: int | None  # the first ProviderError() rule: claims any exception no other state claims
    invalid: tuple[tuple[InvalidOutput, int], ...]
    inconsistent: tuple[Inconsistent, int] | None
    output_checks: tuple[tuple[Any, int], ...]  # LowConfidence and output-side State rules, in rule order
    timeout_index: int | None
    timeout_after: float | None
    budget_index: int | None
    unexpected_index: int
    invalid_index: int | None
    #: The JSON Schema of the policy's declared output type (the first ``InvalidOutput(schema=Model)``
    #: rule's model), which its review tickets carry; None when it declares none.
    output_schema: Any = None
    classify_cache: dict[type, tuple[str, int | None]] = field(default_factory=dict, repr=False)

    @classmethod
    def compile(
        cls,
        name: str,
        rules: tuple[Rule, ...],
        *,
        max_attempts: int | None = None,
        deadline: float | None = None,
        budget: Budget | None = None,
        store_raw_inputs: bool = False,
        exporters: tuple[Any, ...] = (),
        waived: Mapping[str, str] | None = None,
    ) -> PolicyTable:
        """Sort the detectors of ``rules`` by when they look (the arguments are checked by ``Policy``)."""
        first: dict[type, int] = {}
        input_checks: list[tuple[Any, int]] = []
        error_claims: list[tuple[Any, int]] = []
        catch_all: int | None = None
        invalid: list[tuple[InvalidOutput, int]] = []
        inconsistent: tuple[Inconsistent, int] | None = None
        output_checks: list[tuple[Any, int]] = []
        for index, rule in enumerate(rules):
            state = rule.state
            first.setdefault(type(state), index)
            if state.stage == "input":
                input_checks.append((state, index))
            elif isinstance(state, (Timeout, ProviderError)):
                if isinstance(state, ProviderError) and state.catch_all and catch_all is None:
                    catch_all = index
                error_claims.append((state, index))  # a catch-all also claims ProviderFailure, in rule order
            elif isinstance(state, InvalidOutput):
                invalid.append((state, index))
                error_claims.append((state, index))
            elif isinstance(state, Inconsistent):
                if inconsistent is None:
                    inconsistent = (state, index)
            elif isinstance(state, (LowConfidence, State)):
                output_checks.append((state, index))
        input_checks.sort(key=lambda pair: _INPUT_PRIORITY.get(pair[0].name, 2))
        timeout_index = first.get(Timeout)
        timeout = rules[timeout_index].state if timeout_index is not None else None
        return cls(
            name=name,
            rules=rules,
            max_attempts=max_attempts,
            deadline=deadline,
            budget=budget,
            store_raw_inputs=store_raw_inputs,
            exporters=exporters,
            waived=dict(waived or {}),
            input_checks=tuple(input_checks),
            error_claims=tuple(error_claims),
            catch_all=catch_all,
            invalid=tuple(invalid),
            inconsistent=inconsistent,
            output_checks=tuple(output_checks),
            timeout_index=timeout_index,
            timeout_after=timeout.after if isinstance(timeout, Timeout) else None,
            budget_index=first.get(BudgetExceeded),
            unexpected_index=first[Unexpected],
            invalid_index=first.get(InvalidOutput),
            output_schema=_declared_schema(name, invalid),
        )

    def classify(self, exc: BaseException) -> tuple[str, int | None]:
        """The failure state an exception raised by a system is, and the index of the rule that claims it.

        Timeouts, ``OutputRejected`` and ``ProviderFailure`` and the exception types named by
        ``ProviderError(...)`` rules are claimed first (in rule order); then a ``ProviderError()`` rule
        claims any other exception. Unclaimed: ``(natural state, None)``.
        """
        kind = type(exc)
        cached = self.classify_cache.get(kind)
        if cached is not None:
            return cached
        result: tuple[str, int | None] | None = None
        for state, index in self.error_claims:
            if state.claims(exc):
                result = (state.name, index)
                break
        if result is None and self.catch_all is not None:
            result = ("provider_error", self.catch_all)
        if result is None:
            if isinstance(exc, TimeoutError):
                result = ("timeout", None)
            elif isinstance(exc, OutputRejected):
                result = ("invalid_output", None)
            elif isinstance(exc, ProviderFailure):
                result = ("provider_error", None)
            else:
                result = ("unexpected", None)
        if len(self.classify_cache) < 256:
            self.classify_cache[kind] = result
        return result

    @property
    def uses_timeout(self) -> bool:
        """True when sync systems are called in a worker thread (a ``Timeout(after=...)`` rule or a ``deadline``)."""
        return self.timeout_after is not None or self.deadline is not None

    @property
    def has_budget(self) -> bool:
        """True when something can end a call in ``budget_exceeded``: max_attempts, a deadline or a budget."""
        return self.max_attempts is not None or self.deadline is not None or self.budget is not None

    def fallbacks(self) -> list[Fallback]:
        """Every ``Fallback`` action in the rules."""
        return [action for rule in self.rules for action in rule.actions if isinstance(action, Fallback)]

    def handled_states(self) -> dict[str, tuple[str, ...]]:
        """Each failure state some rule handles, with the names of its actions (in the order they can run)."""
        handled: dict[str, list[str]] = {}
        for rule in self.rules:
            names = handled.setdefault(rule.state.name, [])
            for action in rule.actions:
                if action.name not in names:
                    names.append(action.name)
        return {state: tuple(names) for state, names in handled.items()}


def _declared_schema(name: str, invalid: list[tuple[InvalidOutput, int]]) -> Any:
    """The JSON Schema of the first ``InvalidOutput(schema=Model)`` rule's model, or None."""
    for state, _ in invalid:
        if state.schema is not None:
            return output_json_schema(state.schema, f"Policy({name!r}): InvalidOutput(schema={state.schema.__name__})")
    return None
