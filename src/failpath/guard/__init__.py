"""The guard: wrap a model call so every call ends in one typed outcome and leaves one trace.

A :class:`Policy` maps failure states (detectors such as :class:`Timeout` or :class:`LowConfidence`) to
chains of actions (:class:`Retry`, :class:`Reask`, :class:`Fallback`, ``fp.Clarify``, :class:`Escalate`, :class:`Abstain`,
:class:`Default`, :class:`Raise`). ``policy.wrap(system)`` or ``@policy.guard`` gives the guarded system.

This package imports only the standard library and ``failpath.core``; pydantic, tenacity and the store
are imported when a policy first needs them, scikit-learn when an ``NgramScorer`` is fitted.
"""

from __future__ import annotations

from failpath.guard.actions import Abstain, Action, ClarifyAction, Default, Escalate, Fallback, Raise, Reask, Retry
from failpath.guard.anomaly import InputScorer, ProfileScorer, ToleratedReference, tolerated_reference
from failpath.guard.engine import AsyncGuardedSystem, GuardedSystem
from failpath.guard.input_states import AnomalousInput, EmptyInput, InjectionSuspected
from failpath.guard.lint import Finding, LintResult
from failpath.guard.ngram import NgramScorer
from failpath.guard.policy import Budget, On, Policy, Rule, on
from failpath.guard.states import (
    BudgetExceeded,
    FailureState,
    Inconsistent,
    InvalidOutput,
    LowConfidence,
    ProviderError,
    State,
    Timeout,
    Unexpected,
)

__all__ = [
    "Policy",
    "Rule",
    "On",
    "on",
    "Budget",
    "FailureState",
    "ProviderError",
    "Timeout",
    "InvalidOutput",
    "LowConfidence",
    "AnomalousInput",
    "InjectionSuspected",
    "Inconsistent",
    "EmptyInput",
    "BudgetExceeded",
    "Unexpected",
    "State",
    "Action",
    "Retry",
    "Reask",
    "Fallback",
    "ClarifyAction",
    "Escalate",
    "Abstain",
    "Default",
    "Raise",
    "GuardedSystem",
    "AsyncGuardedSystem",
    "LintResult",
    "Finding",
    "InputScorer",
    "ProfileScorer",
    "NgramScorer",
    "ToleratedReference",
    "tolerated_reference",
]
