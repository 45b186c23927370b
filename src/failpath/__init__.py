"""failpath: what your AI feature does when the model is wrong.

Guard a model call so every call ends in a typed outcome, test it against messy and hostile input
before clean input, check it before shipping, and watch it in production.

``import failpath`` stays light: names are loaded from their module the first time they are used.
"""

from __future__ import annotations

import importlib
from typing import Any

from failpath.core import (
    AGENT_STATES,
    STATES,
    Abstained,
    AlreadyResolved,
    Answered,
    Attempt,
    Case,
    Feedback,
    Clarify,
    ConfigError,
    DatasetError,
    Defaulted,
    Escalated,
    FailpathError,
    InvalidAnswer,
    Outcome,
    OutputRejected,
    PolicyError,
    Prediction,
    ProviderFailure,
    StoreError,
    SystemTimeout,
    Ticket,
    TicketNotFound,
    TicketStatus,
    Trace,
    __version__,
)


# name -> module that defines it. Each part of the package lists its public names here.
_LAZY: dict[str, str] = {
    # --- store
    "Store": "failpath.store",
    "open_store": "failpath.store",
    # --- guard
    "Policy": "failpath.guard",
    "Rule": "failpath.guard",
    "on": "failpath.guard",
    "Budget": "failpath.guard",
    "ProviderError": "failpath.guard",
    "Timeout": "failpath.guard",
    "InvalidOutput": "failpath.guard",
    "LowConfidence": "failpath.guard",
    "AnomalousInput": "failpath.guard",
    "NgramScorer": "failpath.guard",
    "tolerated_reference": "failpath.guard",
    "InjectionSuspected": "failpath.guard",
    "Inconsistent": "failpath.guard",
    "EmptyInput": "failpath.guard",
    "BudgetExceeded": "failpath.guard",
    "Unexpected": "failpath.guard",
    "State": "failpath.guard",
    "Retry": "failpath.guard",
    "Reask": "failpath.guard",
    "Fallback": "failpath.guard",
    "Escalate": "failpath.guard",
    "Abstain": "failpath.guard",
    "Default": "failpath.guard",
    "Raise": "failpath.guard",
    "LintResult": "failpath.guard",
    "GuardedSystem": "failpath.guard",
    "AsyncGuardedSystem": "failpath.guard",
    # --- chaos
    "LabelContract": "failpath.chaos",
    "Suite": "failpath.chaos",
    "Variant": "failpath.chaos",
    "AttackGoal": "failpath.chaos.tool_faults",
    # --- agent
    "Agent": "failpath.agent",
    "RunBusy": "failpath.agent",
    "resume": "failpath.agent",
    "Tool": "failpath.agent",
    "tool": "failpath.agent",
    "ToolCall": "failpath.agent",
    "ModelTurn": "failpath.agent",
    "ToolError": "failpath.agent",
    "InvalidToolArgs": "failpath.agent",
    "ToolOutputInjection": "failpath.agent",
    "RiskyToolCall": "failpath.agent",
    "LoopDetected": "failpath.agent",
    "ToolOutcomeUnknown": "failpath.agent",
    "FeedBack": "failpath.agent",
    "Block": "failpath.agent",
    "Withhold": "failpath.agent",
    "RequireApproval": "failpath.agent",
    "Approve": "failpath.agent",
    "Reject": "failpath.agent",
    # --- check  (fp.check itself is the callable failpath.check module: see _SUBMODULES)
    "CheckResult": "failpath.check",
    "CheckInterrupted": "failpath.check",
    "Verdict": "failpath.check",
    "Criterion": "failpath.check",
    "load_cases": "failpath.check",
    "Exact": "failpath.check",
    "NormalizedText": "failpath.check",
    "Fields": "failpath.check",
    "TokenLabels": "failpath.check",
    "NumericTolerance": "failpath.check",
    "FunctionJudge": "failpath.check",
    "check_agent": "failpath.check",
    "acheck_agent": "failpath.check",
    "AgentCheckResult": "failpath.check",
    "AgentTask": "failpath.check",
    "AgentBudgets": "failpath.check",
    "sqlite_snapshot": "failpath.check",
    # --- report
    # --- watch
    "OTelExporter": "failpath.watch",
    "DriftReport": "failpath.watch",
    "DriftThresholds": "failpath.watch",
    "ReviewTicket": "failpath.watch",
    "TraceStats": "failpath.watch",
    # --- llm
}

# Subpackages reachable as attributes: fp.stats, fp.chaos, fp.review, fp.llm, ...
_SUBMODULES: dict[str, str] = {
    # ``fp.check(...)`` runs a check: the module is callable, so the name stays the module and
    # ``import failpath.check.api`` keeps working after ``fp.check`` was used.
    "check": "failpath.check",
    "stats": "failpath.stats",
    "chaos": "failpath.chaos",
    "store": "failpath.store",
    "guard": "failpath.guard",
    "report": "failpath.report",
    "watch": "failpath.watch",
    "review": "failpath.watch.review",
    "llm": "failpath.llm",
    "agent": "failpath.agent",
    "testing": "failpath.testing",
}

__all__ = [
    "AGENT_STATES",
    "STATES",
    "Abstained",
    "AlreadyResolved",
    "Answered",
    "Attempt",
    "Case",
    "Clarify",
    "Feedback",
    "ConfigError",
    "DatasetError",
    "Defaulted",
    "Escalated",
    "FailpathError",
    "InvalidAnswer",
    "Outcome",
    "OutputRejected",
    "PolicyError",
    "Prediction",
    "ProviderFailure",
    "StoreError",
    "SystemTimeout",
    "Ticket",
    "TicketNotFound",
    "TicketStatus",
    "Trace",
    "check",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(_SUBMODULES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module 'failpath' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
