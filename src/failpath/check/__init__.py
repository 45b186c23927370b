"""Check: the pre-ship run. Adversarial suites first, the clean-vs-chaos gap, guaranteed thresholds, the verdict.

``fp.check(system=..., cases=..., policy=..., judge=..., suites=[...])`` returns a frozen
:class:`CheckResult`; ``failpath check`` runs the same from a ``failpath.toml``. This module is itself
callable (``failpath.check(...)`` is :func:`check`), so ``fp.check`` works whether or not the
``failpath.check`` package has been imported.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_LAZY: dict[str, str] = {
    "check": "failpath.check.api",
    "DEFAULT_COSTS": "failpath.check.api",
    "CheckInterrupted": "failpath.check.api",
    "CheckResult": "failpath.check.result",
    "Verdict": "failpath.check.result",
    "Criterion": "failpath.check.result",
    "GroupFigures": "failpath.check.result",
    "FamilyBound": "failpath.check.result",
    "OverRefusal": "failpath.check.result",
    "RefusalFigures": "failpath.check.result",
    "PolicyFigures": "failpath.check.result",
    "ConfidenceQuality": "failpath.check.result",
    "StateCoverage": "failpath.check.result",
    "ThresholdReport": "failpath.check.result",
    "WorstCase": "failpath.check.result",
    "Reproduction": "failpath.check.result",
    "SCHEMA": "failpath.check.result",
    "load_cases": "failpath.check.datasets",
    "Judge": "failpath.check.judges",
    "Exact": "failpath.check.judges",
    "NormalizedText": "failpath.check.judges",
    "Fields": "failpath.check.judges",
    "TokenLabels": "failpath.check.judges",
    "NumericTolerance": "failpath.check.judges",
    "FunctionJudge": "failpath.check.judges",
    "get_judge": "failpath.check.judges",
    "load_config": "failpath.check.config",
    "check_agent": "failpath.check.agent_check",
    "acheck_agent": "failpath.check.agent_check",
    "AgentCheckResult": "failpath.check.agent_check",
    "AgentTask": "failpath.check.agent_tasks",
    "Trial": "failpath.check.agent_tasks",
    "sqlite_snapshot": "failpath.check.agent_tasks",
    "AgentBudgets": "failpath.check.agent_verdict",
    "CheckConfig": "failpath.check.config",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'failpath.check' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _CallableModule(types.ModuleType):
    """The ``failpath.check`` module, callable as :func:`failpath.check.api.check`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from failpath.check.api import check

        return check(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
