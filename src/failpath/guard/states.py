"""Failure states: the detectors a policy's rules are written ``on``.

Each detector validates its parameters when it is built (a wrong value raises ``PolicyError`` naming the
detector and the value) and does its expensive preparation then, so the per-call work is small.

When a detector looks:

- before the system is called (input side): ``State(..., stage="input")``, and the input detectors
  of :mod:`failpath.guard.input_states` (``EmptyInput``, ``InjectionSuspected``, ``AnomalousInput``);
- when the system raises: ``Timeout`` (``TimeoutError``, ``SystemTimeout``, or the call ran past
  ``after``), ``InvalidOutput`` (``OutputRejected``), ``ProviderError`` (its exception types and
  ``ProviderFailure``; with no types, every exception no other state claims);
- on what the system returned: ``InvalidOutput`` first (it may turn the raw value into the schema's
  model), then ``Inconsistent``, ``LowConfidence`` and ``State(...)`` in rule order;
- when a budget is reached: ``BudgetExceeded``;
- whatever nothing else claims: ``Unexpected``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable
from typing import Any, ClassVar

from failpath.core import AGENT_STATES, STATES, OutputRejected, PolicyError, Prediction, ProviderFailure, real_number
from failpath.guard.text import canonical_text, describe_error, safe_repr

__all__ = [
    "FailureState",
    "ProviderError",
    "Timeout",
    "InvalidOutput",
    "LowConfidence",
    "Inconsistent",
    "BudgetExceeded",
    "Unexpected",
    "State",
]


class FailureState:
    """Base of every detector. ``name`` is the failure state's name; ``stage`` says when it looks.

    Stages: ``"input"`` (before the call), ``"error"`` (claims exceptions only), ``"output"``
    (looks at what the system returned), ``"budget"`` and ``"catchall"``.
    """

    name: ClassVar[str] = ""
    stage: ClassVar[str] = ""

    def subsumes(self, other: FailureState) -> bool:
        """True when this detector fires on every call ``other`` fires on (so a later rule on ``other`` never runs)."""
        return type(self) is type(other) and self == other

    def _params(self) -> dict[str, Any]:
        return {}

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._params() == other._params()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted((k, repr(v)) for k, v in self._params().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_short(v)}" for k, v in self._params().items() if v is not None)
        return f"{type(self).__name__}({args})"


def _short(value: Any) -> str:
    if isinstance(value, type):
        return value.__name__
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    if isinstance(value, (list, tuple)) and len(value) > 3:
        return f"<{len(value)} items>"
    return repr(value)


def parameter_error(detector: str, message: str) -> PolicyError:
    """The ``PolicyError`` for a detector built with a wrong value: ``detector`` shows the call, ``message`` what to give."""
    return PolicyError(f"{detector}: {message}")


def _positive_seconds(detector: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise parameter_error(f"{detector}({field}={value!r})", f"{field} must be a positive number of seconds, got {value!r}")
    return float(value)


def fraction(detector: str, field: str, value: Any, *, open_low: bool = False) -> float:
    """``value`` as a float in [0, 1] (in (0, 1] with ``open_low``), else the ``PolicyError`` naming it."""
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)
    if not bad:
        bad = not (0.0 < value <= 1.0) if open_low else not (0.0 <= value <= 1.0)
    if bad:
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise parameter_error(f"{detector}({field}={value!r})", f"{field} must be a number in {interval}, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- call-side states


class ProviderError(FailureState):
    """The provider failed: the system raised one of ``exception_types`` or ``ProviderFailure``.

    With no types, it claims every exception the system raises that no other state claims (an
    ``OutputRejected`` is ``invalid_output``, a ``TimeoutError`` is ``timeout`` when those states
    have rules). ``ProviderFailure.retry_after`` is honored by ``Retry``.
    """

    name = "provider_error"
    stage = "error"

    def __init__(self, *exception_types: type[BaseException]):
        for kind in exception_types:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise parameter_error(f"ProviderError({kind!r})", "each argument must be an exception class, such as ConnectionError")
            if not issubclass(kind, Exception):
                raise parameter_error(
                    f"ProviderError({kind.__name__})",
                    f"{kind.__name__} is not an Exception subclass; KeyboardInterrupt, SystemExit and the like always propagate",
                )
        self.exception_types: tuple[type[BaseException], ...] = tuple(exception_types)
        self.catch_all = not exception_types
        self._claimed = (ProviderFailure, *exception_types)

    def claims(self, exc: BaseException) -> bool:
        """True when this detector names the exception's type (or it is a ``ProviderFailure``)."""
        return isinstance(exc, self._claimed)

    def subsumes(self, other: FailureState) -> bool:
        if not isinstance(other, ProviderError):
            return False
        if self.catch_all:
            return True
        if other.catch_all:
            return False
        return all(issubclass(kind, self._claimed) for kind in other.exception_types)

    def _params(self) -> dict[str, Any]:
        return {"types": self.exception_types}

    def __repr__(self) -> str:
        return f"ProviderError({', '.join(k.__name__ for k in self.exception_types)})"


class Timeout(FailureState):
    """The call took longer than ``after`` seconds, or the system raised ``TimeoutError``/``SystemTimeout``.

    For ``async`` systems the call is cancelled at ``after``. For sync systems the guard stops waiting
    at ``after`` and moves on, but the call keeps running in its worker thread until it returns on its
    own (Python cannot stop a thread): side effects of a late call still happen, and a system that
    hangs for ever holds one daemon thread. A sync system under a ``Timeout(after=...)`` rule (or a
    policy ``deadline``) is called in a worker thread, which costs a thread hop per call.
    ``Timeout()`` without ``after`` only claims timeouts the system raises itself.
    """

    name = "timeout"
    stage = "error"

    def __init__(self, after: float | None = None):
        self.after = None if after is None else _positive_seconds("Timeout", "after", after)

    def claims(self, exc: BaseException) -> bool:
        """True for ``TimeoutError`` (``SystemTimeout`` and ``asyncio.TimeoutError`` included)."""
        return isinstance(exc, TimeoutError)

    def subsumes(self, other: FailureState) -> bool:
        # Every timeout goes to the first Timeout rule, whatever its ``after``.
        return isinstance(other, Timeout)

    def _params(self) -> dict[str, Any]:
        return {"after": self.after}


# --------------------------------------------------------------------------- output-side states


class InvalidOutput(FailureState):
    """The output is unusable: ``None``, empty, NaN, unparseable, the wrong type, or rejected by ``schema``/``validator``.

    With ``schema`` (a pydantic model class), a model instance passes, a dict is validated into the model
    and a JSON string is parsed then validated; the validated model becomes the answer. ``validator``
    is a callable ``value -> bool`` (or raising ``ValueError``/``TypeError`` with the reason); it runs
    after the schema. Also claims ``OutputRejected`` raised by the system.
    """

    name = "invalid_output"
    stage = "output"

    def __init__(self, schema: type | None = None, validator: Callable[[Any], Any] | None = None):
        if schema is not None:
            from pydantic import BaseModel  # only when a schema is given: pydantic is the user's import anyway

            if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
                raise parameter_error(
                    f"InvalidOutput(schema={_short(schema)})",
                    f"schema must be a pydantic model class (a subclass of pydantic.BaseModel), got {schema!r}",
                )
        if validator is not None and not callable(validator):
            raise parameter_error(f"InvalidOutput(validator={validator!r})", "validator must be a callable value -> bool")
        self.schema = schema
        self.validator = validator

    def claims(self, exc: BaseException) -> bool:
        """True for ``OutputRejected``."""
        return isinstance(exc, OutputRejected)

    def check(self, value: Any) -> tuple[str | None, Any]:
        """``(None, answer)`` when the value is usable, else ``(explanation, value)``."""
        problem = basic_output_problem(value)
        if problem is not None:
            return problem, value
        if self.schema is not None:
            schema = self.schema
            if not isinstance(value, schema):
                try:
                    if isinstance(value, (str, bytes, bytearray)):
                        value = schema.model_validate_json(value)
                    elif isinstance(value, dict):
                        value = schema.model_validate(value)
                    else:
                        return f"expected {schema.__name__} (or a dict or JSON text), got {type(value).__name__}", value
                except Exception as exc:  # pydantic.ValidationError: unparseable or off-schema
                    return _first_line(f"does not match {schema.__name__}: {exc}"), value
        if self.validator is not None:
            try:
                ok = self.validator(value)
            except (ValueError, TypeError, AssertionError, KeyError, IndexError) as exc:
                return _first_line(f"validator rejected it: {describe_error(exc)}"), value
            if not ok:
                return f"validator {_short(self.validator)} returned {ok!r}", value
        return None, value

    def subsumes(self, other: FailureState) -> bool:
        if not isinstance(other, InvalidOutput):
            return False
        return self == other

    def _params(self) -> dict[str, Any]:
        return {"schema": self.schema, "validator": self.validator}


def basic_output_problem(value: Any) -> str | None:
    """Why ``value`` is unusable as any answer (``None``, NaN, empty text or container), or None."""
    if value is None:
        return "the system returned None"
    kind = type(value)
    if kind is float and math.isnan(value):
        return "the system returned NaN"
    if kind is str:
        return None if value.strip() else "the system returned empty text"
    if kind in (list, dict, tuple, set, frozenset, bytes) and not value:
        return f"the system returned an empty {kind.__name__}"
    if kind in _PLAIN:
        return None
    return _odd_output_problem(value)


# Types basic_output_problem answers on its own: anything else may be a subclass, a numpy value or a Decimal.
_PLAIN = frozenset({str, int, bool, float, list, dict, tuple, set, frozenset, bytes})
_CONTAINERS = (list, dict, tuple, set, frozenset, bytes, bytearray, str)


def _odd_output_problem(value: Any) -> str | None:
    """What :func:`basic_output_problem` says of a value of another type: NaN from numpy, ``Decimal`` or a
    float subclass, a whitespace ``str`` subclass, an empty container subclass or an empty numpy array."""
    name = type(value).__name__
    try:
        if isinstance(value, str):
            return None if str.strip(value) else f"the system returned empty text ({name})"
        if isinstance(value, _CONTAINERS):
            return None if len(value) else f"the system returned an empty {name}"
        number = real_number(value)
        if number is not None:
            return f"the system returned NaN ({name})" if number != number else None
        module = type(value).__module__
        if (module == "numpy" or module.startswith("numpy.")) and getattr(value, "size", None) == 0:
            return f"the system returned an empty numpy {name}"
    except Exception:  # a container whose __len__ raises: not ours to judge here
        return None
    return None


def _first_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split("\n")[:3])
    return line if len(line) <= limit else line[: limit - 1] + "…"


class LowConfidence(FailureState):
    """The confidence is below ``below``; a missing, NaN or out-of-range confidence counts as low."""

    name = "low_confidence"
    stage = "output"

    def __init__(self, below: float):
        self.below = fraction("LowConfidence", "below", below)

    def check_confidence(self, confidence: Any) -> str | None:
        """The explanation when ``confidence`` is low (or unusable), else None."""
        if confidence is None:
            return "the system gave no confidence"
        number = real_number(confidence)  # np.float32 and Decimal confidences are numbers too
        if number is None:
            return f"confidence {safe_repr(confidence)} is not a number"
        if math.isnan(number) or not 0.0 <= number <= 1.0:
            return f"confidence {safe_repr(confidence)} is not in [0, 1]"
        confidence = number
        if confidence < self.below:
            return f"confidence {confidence:.3g} < {self.below:g}"
        return None

    def subsumes(self, other: FailureState) -> bool:
        return isinstance(other, LowConfidence) and self.below >= other.below

    def _params(self) -> dict[str, Any]:
        return {"below": self.below}


class Inconsistent(FailureState):
    """A stochastic system disagrees with itself: of ``samples`` answers, fewer than ``min_agreement`` agree.

    The system is called ``samples`` times (one call plus ``samples - 1`` samples; concurrently for
    async systems). Answers are compared by ``key(value)`` when given, else by value (unhashable values
    by their JSON rendering); failed or invalid samples count as disagreeing. When agreement is high
    enough, the majority answer is returned, with the system's mean confidence over the majority, or
    the agreement itself when the system gives no confidence.
    """

    name = "inconsistent"
    stage = "output"

    def __init__(self, samples: int = 3, min_agreement: float = 0.67, key: Callable[[Any], Hashable] | None = None):
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
            raise parameter_error(f"Inconsistent(samples={samples!r})", f"samples must be an integer of at least 2, got {samples!r}")
        self.samples = samples
        self.min_agreement = fraction("Inconsistent", "min_agreement", min_agreement, open_low=True)
        if key is not None and not callable(key):
            raise parameter_error(f"Inconsistent(key={key!r})", "key must be a callable value -> hashable")
        self.key = key

    def vote_key(self, value: Any) -> Hashable:
        """What two answers must share to agree."""
        if self.key is not None:
            return self.key(value)
        try:
            hash(value)
            return value
        except TypeError:
            return canonical_text(value)

    def subsumes(self, other: FailureState) -> bool:
        return isinstance(other, Inconsistent)  # only the first Inconsistent rule samples

    def _params(self) -> dict[str, Any]:
        return {"samples": self.samples, "min_agreement": self.min_agreement, "key": self.key}


# --------------------------------------------------------------------------- budget, catch-all, user states


class BudgetExceeded(FailureState):
    """A budget was reached: the policy's ``max_attempts``, its ``deadline``, or its ``Budget`` of tokens or cost.

    It fires when the guard would call the system again (a retry, a fallback, a sample) but the budget
    is spent, or when the deadline cuts a call. An answer already paid for is never thrown away.
    """

    name = "budget_exceeded"
    stage = "budget"


class Unexpected(FailureState):
    """Whatever no other rule claims: an unclaimed exception, an unhandled state, an action chain that ran out.

    Every policy must have a rule on ``Unexpected()``; the trace's ``detail`` says what happened.
    """

    name = "unexpected"
    stage = "catchall"


_STATE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class State(FailureState):
    """A failure state of your own: ``State("too_long", lambda input, prediction: ...)``.

    ``predicate(input, prediction)`` returns something truthy when the state holds; a non-empty string
    is kept as the explanation in the trace. With ``stage="output"`` (the default) it sees the
    ``Prediction`` after ``InvalidOutput`` has validated it; with ``stage="input"`` it runs before the
    system is called and ``prediction`` is ``None``. A predicate that raises does not fire; the error
    is noted in the trace.
    """

    stage = "output"

    def __init__(self, name: str, predicate: Callable[[Any, Prediction | None], Any], *, stage: str = "output"):
        if not isinstance(name, str) or not _STATE_NAME.match(name):
            raise parameter_error(f"State({name!r})", "name must be lower_snake_case letters, digits and _ (at most 64), such as 'too_long'")
        if name in STATES or name in AGENT_STATES:
            raise parameter_error(f"State({name!r})", f"{name!r} is a built-in failure state; use fp.{_builtin_class(name)}(...) or another name")
        if not callable(predicate):
            raise parameter_error(f"State({name!r}, {predicate!r})", "predicate must be a callable (input, prediction) -> bool")
        if stage not in ("input", "output"):
            raise parameter_error(f"State({name!r}, stage={stage!r})", "stage must be 'input' or 'output'")
        self.name = name  # type: ignore[misc]
        self.predicate = predicate
        self.stage = stage  # type: ignore[misc]

    def evaluate(self, value: Any, prediction: Prediction | None) -> tuple[str | None, str | None]:
        """``(explanation, error)``: the explanation when the state holds; the error when the predicate raised."""
        try:
            hit = self.predicate(value, prediction)
        except Exception as exc:
            return None, describe_error(exc)
        try:
            if not hit:
                return None, None
        except Exception as exc:  # a numpy array of several values has no truth value
            return None, f"its result {type(hit).__name__} has no truth value ({describe_error(exc)})"
        return (hit if isinstance(hit, str) else f"{self.name} holds"), None

    def subsumes(self, other: FailureState) -> bool:
        return isinstance(other, State) and other.name == self.name and other.predicate is self.predicate

    def _params(self) -> dict[str, Any]:
        return {"name": self.name, "predicate": self.predicate, "stage": self.stage}

    def __repr__(self) -> str:
        stage = "" if self.stage == "output" else f", stage={self.stage!r}"
        return f"State({self.name!r}, {_short(self.predicate)}{stage})"


def _builtin_class(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))

