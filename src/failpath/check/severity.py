"""Severity: how bad a wrong answer is, so the worst failures of a system get a budget of their own.

A wrong ZIP code is not a refund sent to the wrong account. A check can grade each wrong answer with a
severity in [0, 1], given as a number or as a label (:data:`SEVERITY_LABELS`: ``minor`` 0.25,
``major`` 0.5, ``severe`` 1.0), in one of two ways:

- **a function** ``severity(case, output) -> float | label`` (``fp.check(severity=fn)``, or
  ``severity = "module:attr"`` in ``failpath.toml``), called on every wrong answer with the case (its
  ``expected`` is the variant's expected answer) and the output;
- **weights** per field (the ``fields`` judge) or per label (the ``token_labels`` judge):
  ``{"zip": "severe"}`` (``fp.check(severity={...})``, or ``severity = {...}`` under ``[judge]``). A
  wrong answer's severity is the largest weight of the fields or labels it got wrong; fields and labels
  not named weigh ``"*"`` when given, else ``minor``.

A silent failure is **severe** when its severity is at least :data:`SEVERE_CUT` (0.75: a ``severe``
label, or a number that high). **When no severity is configured, every wrong answer counts as severity
1**, and so does a wrong answer the grading could not read (a function that raised or returned
something else): leaving severity out can only make the severe budget harder to meet, never easier.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from failpath.core import Case, ConfigError

__all__ = [
    "SEVERITY_LABELS", "SEVERE_CUT", "UNGRADED", "severity_value", "severity_weights", "GradedJudge", "graded",
    "judge_severity", "grade",
]

#: Severity labels and the number each stands for.
SEVERITY_LABELS: dict[str, float] = {"minor": 0.25, "major": 0.5, "severe": 1.0}

#: A silent failure whose severity is at least this is severe (judged against ``severe_silent_failure``).
SEVERE_CUT = 0.75

#: The severity of a wrong answer that nothing graded: no severity configured, or the grading failed.
UNGRADED = 1.0

#: The weight of a field or label a weights table does not name (unless it gives ``"*"``).
UNNAMED = "minor"


def severity_value(value: Any, what: str = "severity") -> float:
    """``value`` (a label of :data:`SEVERITY_LABELS` or a number in [0, 1]) as a number; ``ValueError`` naming it."""
    if isinstance(value, str):
        label = value.strip().lower()
        if label in SEVERITY_LABELS:
            return SEVERITY_LABELS[label]
        raise ValueError(f"{what}: unknown severity label {value!r}; use {', '.join(SEVERITY_LABELS)} or a number in [0, 1]")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what}: a severity is a number in [0, 1] or one of {', '.join(SEVERITY_LABELS)}, got {value!r}")
    return float(value)


def severity_weights(weights: Mapping[str, Any] | None, what: str) -> dict[str, float]:
    """A weights table (field or label -> severity) checked and as numbers; ``ConfigError`` naming the bad entry."""
    if weights is None:
        return {}
    if not isinstance(weights, Mapping):
        raise ConfigError(f"{what}: severity must map fields or labels to a severity, e.g. {{'zip': 'severe'}}; got {weights!r}")
    try:
        return {str(k): severity_value(v, f"{what} severity of {k!r}") for k, v in weights.items()}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def worst_of(wrong: Any, weights: Mapping[str, float]) -> float:
    """The severity of getting the names ``wrong`` wrong under ``weights`` (0 when nothing is wrong)."""
    unnamed = weights.get("*", SEVERITY_LABELS[UNNAMED])
    return max((weights.get(str(name), unnamed) for name in wrong), default=0.0)


@dataclass(frozen=True)
class GradedJudge:
    """A judge with a user severity function: judges as ``judge`` does, grades wrong answers with ``function``.

    ``function(case, output)`` returns a number in [0, 1] or a severity label.
    """

    judge: Any
    function: Callable[[Case, Any], Any]

    @property
    def name(self) -> str:
        name = getattr(self.judge, "name", None)
        return name if isinstance(name, str) else type(self.judge).__name__

    def __call__(self, output: Any, expected: Any) -> bool:
        return bool(self.judge(output, expected))

    def score(self, output: Any, expected: Any) -> float:
        return float(self.judge.score(output, expected))

    def grade(self, case: Case, output: Any) -> float:
        """The severity the user function gives this wrong answer."""
        return severity_value(self.function(case, output), f"severity function {describe_function(self.function)}")


def describe_function(fn: Any) -> str:
    """A function as ``module.qualname`` (or the ``module:attr`` it was given as)."""
    if isinstance(fn, str):
        return fn
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def graded(judge: Any, severity: Any) -> Any:
    """``judge`` with the check's ``severity`` argument applied.

    None leaves the judge as it is; a function wraps it in :class:`GradedJudge`; a mapping gives weights
    to a judge that takes them (``fields``, ``token_labels``). (A ``"module:attr"`` is imported by the plan.)
    """
    if severity is None:
        return judge
    if isinstance(severity, Mapping):
        import dataclasses

        if not dataclasses.is_dataclass(judge) or "severity" not in {f.name for f in dataclasses.fields(judge)}:
            raise ConfigError(
                f"severity weights {dict(severity)!r} need a judge that grades fields or labels (fields, token_labels); "
                f"the {getattr(judge, 'name', type(judge).__name__)!r} judge has none: give a function severity(case, output) instead"
            )
        return dataclasses.replace(judge, severity=dict(severity))
    if callable(severity):
        return GradedJudge(judge, severity)
    raise ConfigError(
        f"severity must be a function severity(case, output), 'module:attr', or weights such as {{'zip': 'severe'}}; got {severity!r}"
    )


def judge_severity(judge: Any) -> str | None:
    """How a judge grades wrong answers, in words; None when it does not (every wrong answer counts as severe)."""
    if isinstance(judge, GradedJudge):
        return f"function {describe_function(judge.function)}"
    weights = getattr(judge, "severity", None)
    if isinstance(weights, Mapping) and weights:
        named = ", ".join(f"{k} {v:g}" for k, v in weights.items() if k != "*")
        unnamed = weights.get("*", SEVERITY_LABELS[UNNAMED])
        return f"{getattr(judge, 'name', 'judge')} weights: {named}; others {unnamed:g}"
    return None


def grade(judge: Any, case: Case, output: Any) -> tuple[float | None, str | None]:
    """``(severity, error)`` of a wrong answer: None when the judge grades nothing; :data:`UNGRADED` and the
    error's text when the grading failed (a severity nobody could read counts as the worst)."""
    grader = getattr(judge, "grade", None)
    if grader is None:
        return None, None
    try:
        value = grader(case, output)
    except Exception as exc:  # a severity function that fails on an output: counted as severe, and said
        return UNGRADED, f"{type(exc).__name__}: {exc}"
    return (None, None) if value is None else (float(value), None)
