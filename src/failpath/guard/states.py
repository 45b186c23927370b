"""Failure states: the detectors a policy's rules are written ``on``.

Each detector validates its parameters when it is built (a wrong value raises ``PolicyError`` naming the
detector and the value) and does its expensive preparation then, so the per-call work is small.

When a detector looks:

- before the system is called (input side): ``EmptyInput``, ``InjectionSuspected``, ``AnomalousInput``
  and ``State(..., stage="input")``;
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
import unicodedata
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from failpath.core import STATES, OutputRejected, PolicyError, Prediction, ProviderFailure

if TYPE_CHECKING:
    from failpath.guard.anomaly import InputScorer

__all__ = [
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


def _error(detector: str, message: str) -> PolicyError:
    return PolicyError(f"{detector}: {message}")


def _positive_seconds(detector: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise _error(f"{detector}({field}={value!r})", f"{field} must be a positive number of seconds, got {value!r}")
    return float(value)


def _fraction(detector: str, field: str, value: Any, *, open_low: bool = False) -> float:
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)
    if not bad:
        bad = not (0.0 < value <= 1.0) if open_low else not (0.0 <= value <= 1.0)
    if bad:
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise _error(f"{detector}({field}={value!r})", f"{field} must be a number in {interval}, got {value!r}")
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
                raise _error(f"ProviderError({kind!r})", "each argument must be an exception class, such as ConnectionError")
            if not issubclass(kind, Exception):
                raise _error(
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
                raise _error(
                    f"InvalidOutput(schema={_short(schema)})",
                    f"schema must be a pydantic model class (a subclass of pydantic.BaseModel), got {schema!r}",
                )
        if validator is not None and not callable(validator):
            raise _error(f"InvalidOutput(validator={validator!r})", "validator must be a callable value -> bool")
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
                return _first_line(f"validator rejected it: {exc}"), value
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
    return None


def _first_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split("\n")[:3])
    return line if len(line) <= limit else line[: limit - 1] + "…"


class LowConfidence(FailureState):
    """The confidence is below ``below``; a missing, NaN or out-of-range confidence counts as low."""

    name = "low_confidence"
    stage = "output"

    def __init__(self, below: float):
        self.below = _fraction("LowConfidence", "below", below)

    def check_confidence(self, confidence: Any) -> str | None:
        """The explanation when ``confidence`` is low (or unusable), else None."""
        if confidence is None:
            return "the system gave no confidence"
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
            return f"confidence {confidence!r} is not a number"
        if math.isnan(confidence) or not 0.0 <= confidence <= 1.0:
            return f"confidence {confidence!r} is not in [0, 1]"
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
            raise _error(f"Inconsistent(samples={samples!r})", f"samples must be an integer of at least 2, got {samples!r}")
        self.samples = samples
        self.min_agreement = _fraction("Inconsistent", "min_agreement", min_agreement, open_low=True)
        if key is not None and not callable(key):
            raise _error(f"Inconsistent(key={key!r})", "key must be a callable value -> hashable")
        self.key = key

    def vote_key(self, value: Any) -> Hashable:
        """What two answers must share to agree."""
        if self.key is not None:
            return self.key(value)
        try:
            hash(value)
            return value
        except TypeError:
            from failpath.guard.text import canonical_text

            return canonical_text(value)

    def subsumes(self, other: FailureState) -> bool:
        return isinstance(other, Inconsistent)  # only the first Inconsistent rule samples

    def _params(self) -> dict[str, Any]:
        return {"samples": self.samples, "min_agreement": self.min_agreement, "key": self.key}


# --------------------------------------------------------------------------- input-side states


_INVISIBLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U000e0000-\U000e007f"
)
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class EmptyInput(FailureState):
    """The input is ``None``, empty, or only whitespace and invisible characters."""

    name = "empty_input"
    stage = "input"

    def check_input(self, value: Any, text: str) -> str | None:
        """The explanation when the input is empty, else None."""
        if value is None:
            return "the input is None"
        if isinstance(value, (str, bytes, bytearray)):
            if not text.strip() or (not text.isascii() and not _INVISIBLE_RE.sub("", text).strip()):
                return "the input is empty or only whitespace" if text else "the input is empty"
            return None
        try:
            if len(value) == 0:
                return f"the input is an empty {type(value).__name__}"
        except TypeError:
            pass
        return None


_OVERRIDE_PHRASES = (
    r"\b(?:ignore|disregard|forget|override|bypass|skip)\b[\s\w,'-]{0,40}?\b(?:previous|prior|above|earlier|preceding|all|any|your|the|these|those)\b[\s\w,'-]{0,30}?\b(?:instructions?|prompts?|rules?|directions?|guidelines?|context|messages?|constraints?)",
    r"\bforget (?:everything|all)\b",
    r"\byou are now\b",
    r"\b(?:new|updated|real|actual) (?:instructions?|task|rules?|system prompt)\s*:",
    r"\b(?:reveal|print|show|repeat|output|leak)\b[\s\w,'-]{0,30}?\b(?:system prompt|hidden prompt|instructions above|initial instructions)",
    r"\bsystem prompt\b",
    r"\b(?:pretend|act) (?:to be|as if|as an?)\b[\s\w-]{0,20}?\b(?:unrestricted|jailbroken|uncensored|without (?:rules|restrictions|limits))",
    r"\b(?:developer|god|jailbreak|DAN) mode\b",
    r"\bdo anything now\b",
)
# Every pattern above contains one of these words: text with none of them cannot match.
_PHRASE_TRIGGERS = (
    "ignore", "disregard", "forget", "override", "bypass", "skip", "you are now", "instruction",
    "task", "rule", "prompt", "pretend", "act", "mode", "anything now",
)
_ROLE_MARKERS = (
    r"<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|start_header_id|eot_id)\|>",
    r"\[/?INST\]",
    r"<</?SYS>>",
    r"</?s>",
    r"</?(?:system|assistant|user|instructions?)>",
    r"^\s*#{2,}\s*(?:system|instruction|instructions|assistant|response)\b",
    r"(?:^|\n)\s*(?:system|assistant|developer)\s*:",
)


class InjectionSuspected(FailureState):
    """The input looks like an attempt to take over the model.

    Flags instruction-override phrases ("ignore previous instructions", "you are now", "reveal your
    system prompt", ...), invisible and bidirectional control characters (zero-width characters,
    U+202A–U+202E and U+2066–U+2069 overrides, Unicode tag characters), other control characters, and
    chat role markers (``<|im_start|>``, ``[INST]``, ``system:`` at the start of a line, ...). Text is
    NFKC-normalized and stripped of invisible characters before phrases are matched, so full-width or
    zero-width-split phrases are caught. ``phrases`` adds your own regular expressions (case-insensitive).
    """

    name = "injection_suspected"
    stage = "input"

    def __init__(self, *, phrases: Sequence[str] = (), invisible: bool = True, role_markers: bool = True):
        if isinstance(phrases, str):
            raise _error(f"InjectionSuspected(phrases={phrases!r})", "phrases must be a list of regular expressions, not one string")
        extra = tuple(phrases)
        for phrase in extra:
            try:
                re.compile(phrase)
            except (re.error, TypeError) as exc:
                raise _error(f"InjectionSuspected(phrases=[{phrase!r}])", f"not a valid regular expression: {exc}") from None
        self.phrases = extra
        self.invisible = bool(invisible)
        self.role_markers = bool(role_markers)
        self._phrase_re = re.compile("|".join(f"(?:{p})" for p in _OVERRIDE_PHRASES), re.IGNORECASE)
        self._extra_re = re.compile("|".join(f"(?:{p})" for p in extra), re.IGNORECASE) if extra else None
        self._role_re = re.compile("|".join(f"(?:{p})" for p in _ROLE_MARKERS), re.IGNORECASE | re.MULTILINE)

    def check_input(self, value: Any, text: str) -> str | None:
        """The explanation when the input looks like an injection, else None."""
        ascii_only = text.isascii()
        if self.invisible:
            hidden = None if ascii_only else _INVISIBLE_RE.search(text)
            if hidden is None and not text.isprintable():
                hidden = _CONTROL_RE.search(text)
            if hidden is not None:
                char = hidden.group()
                label = unicodedata.name(char, "control character")
                return f"invisible or control character U+{ord(char):04X} ({label}) at position {hidden.start()}"
        plain = text if ascii_only else _INVISIBLE_RE.sub("", unicodedata.normalize("NFKC", text))
        # Cheap literal triggers first: the full patterns run only on text that holds one of their words.
        if self.role_markers and ("<" in plain or "[" in plain or "#" in plain or ":" in plain):
            marker = self._role_re.search(plain)
            if marker is not None:
                return f"chat role marker {marker.group().strip()!r}"
        lowered = plain.lower()
        for trigger in _PHRASE_TRIGGERS:
            if trigger in lowered:
                phrase = self._phrase_re.search(plain)
                if phrase is not None:
                    return f"instruction-override phrase {phrase.group()!r}"
                break
        if self._extra_re is not None:
            phrase = self._extra_re.search(plain)
            if phrase is not None:
                return f"suspicious phrase {phrase.group()!r}"
        return None

    def _params(self) -> dict[str, Any]:
        return {"phrases": self.phrases or None, "invisible": self.invisible, "role_markers": self.role_markers}

    def __repr__(self) -> str:
        return "InjectionSuspected()" if self._params() == InjectionSuspected()._params() else super().__repr__()


class AnomalousInput(FailureState):
    """The input is unlike the ``reference`` inputs the system is known to handle.

    The default score is a fitted profile of the input's length and character classes (letters, upper
    case, digits, spaces, punctuation, non-ASCII, control characters, words): its largest robust
    z-score against the reference. A conformal p-value compares the score with the scores of the
    reference inputs themselves (cross-fitted over ``folds``, so no input scores itself), and the
    input is flagged when the p-value is at most ``alpha``. The trace's ``detail`` says which features
    were off and by how much.

    Plug in your own score (an embedding distance, say) with ``scorer``: any object with
    ``score(input) -> float`` (higher is more unusual) and optionally ``fit(reference)`` and
    ``explain(input) -> str``; see :class:`failpath.guard.anomaly.InputScorer`. The built-in
    :class:`failpath.guard.ngram.NgramScorer` (shape and character n-grams, nearest reference input;
    scikit-learn) separates a new domain far better than the profile.

    Fit it on what the system is known to handle, not only on clean inputs:
    ``ref = tolerated_reference(system, cases, judge)`` holds the clean inputs plus the realistic
    variants the raw system answered right, and ``AnomalousInput(ref.inputs, groups=ref.groups)``
    keeps each case's variants in one cross-fitting fold. ``save(path)`` writes the fitted detector
    to a JSON file and ``AnomalousInput.load(path)`` reads it back (built-in scorers only).
    """

    name = "anomalous_input"
    stage = "input"

    def __init__(
        self,
        reference: Sequence[Any],
        *,
        alpha: float = 0.01,
        scorer: InputScorer | None = None,
        folds: int = 5,
        groups: Sequence[Any] | None = None,
    ):
        from failpath.guard.anomaly import ConformalScore, ProfileScorer

        alpha = _fraction("AnomalousInput", "alpha", alpha, open_low=True)
        if isinstance(reference, (str, bytes)) or not hasattr(reference, "__len__"):
            raise _error("AnomalousInput(reference=...)", f"reference must be a list of known inputs, got {type(reference).__name__}")
        reference = list(reference)
        needed = max(2, math.ceil(1.0 / alpha - 1.0 - 1e-9))
        if len(reference) < needed:
            raise _error(
                f"AnomalousInput(reference=<{len(reference)} inputs>, alpha={alpha:g})",
                f"needs at least {needed} reference inputs to ever flag an input at alpha={alpha:g}; "
                f"give more inputs or raise alpha to {1.0 / (len(reference) + 1) + 1e-3:.3f}",
            )
        if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= len(reference):
            raise _error(f"AnomalousInput(folds={folds!r})", f"folds must be an integer from 2 to the number of reference inputs ({len(reference)})")
        if scorer is not None and not callable(getattr(scorer, "score", None)):
            raise _error(f"AnomalousInput(scorer={scorer!r})", "scorer must have a score(input) -> float method")
        if groups is not None and (isinstance(groups, (str, bytes)) or len(groups) != len(reference)):
            raise _error("AnomalousInput(groups=...)", f"groups must give one group per reference input ({len(reference)})")
        if groups is not None and len(set(groups)) < folds:
            raise _error("AnomalousInput(groups=...)", f"{len(set(groups))} groups cannot fill {folds} cross-fitting folds; give more cases or fewer folds")
        self.scorer = scorer if scorer is not None else ProfileScorer()
        self._setup(reference, groups, alpha, folds, ConformalScore.fit(self.scorer, reference, folds=folds, groups=groups))

    def _setup(self, reference: list[Any], groups: Sequence[Any] | None, alpha: float, folds: int, conformal: Any) -> None:
        from failpath.guard.anomaly import ProfileScorer

        self.alpha = alpha
        self.folds = folds
        self.reference_size = len(reference)
        self.groups = None if groups is None else tuple(groups)
        self._reference = reference
        self._conformal = conformal
        self._cutoff = conformal.cutoff(alpha)
        fitted = conformal.scorer
        # The built-in scorer returns a float from (value, text): called directly, without the wrapper's float().
        self._score = fitted.score if type(fitted) is ProfileScorer else conformal.score

    @classmethod
    def _restore(cls, reference: list[str], groups: Sequence[Any] | None, *, alpha: float, folds: int, scorer: Any, calibration: list[float]) -> "AnomalousInput":
        """A detector from saved parts: a scorer fitted on ``reference`` and its calibration scores."""
        from failpath.guard.anomaly import ConformalScore

        detector = cls.__new__(cls)
        detector.scorer = scorer
        detector._setup(reference, groups, alpha, folds, ConformalScore(scorer, calibration))
        return detector

    @property
    def reference_texts(self) -> list[str]:
        """The reference inputs as the detector reads them (their canonical text)."""
        from failpath.guard.text import canonical_text

        return [canonical_text(value) for value in self._reference]

    def save(self, path: Any) -> Any:
        """Write this fitted detector to ``path`` as JSON; see :func:`failpath.guard.anomaly.save_detector`."""
        from failpath.guard.anomaly import save_detector

        return save_detector(self, path)

    @classmethod
    def load(cls, path: Any) -> "AnomalousInput":
        """The detector saved at ``path``, ready to use; see :func:`failpath.guard.anomaly.read_detector`."""
        from failpath.guard.anomaly import read_detector

        saved = read_detector(path)
        return cls._restore(
            saved.reference, saved.groups, alpha=saved.alpha, folds=saved.folds, scorer=saved.scorer, calibration=saved.calibration
        )

    def check_input(self, value: Any, text: str) -> dict[str, Any] | None:
        """The explanation (score, p-value, what was unusual) when the input is anomalous, else None."""
        score = self._score(value, text)
        if not score > self._cutoff and not math.isnan(score):
            return None
        result = self._conformal.test(value, text, alpha=self.alpha)
        return result if result["p_value"] <= self.alpha else None

    def score(self, value: Any) -> dict[str, Any]:
        """Score, p-value and explanation for one input, whether or not it is flagged."""
        from failpath.guard.text import canonical_text

        return self._conformal.test(value, canonical_text(value))

    def subsumes(self, other: FailureState) -> bool:
        return self is other

    def _params(self) -> dict[str, Any]:
        return {"reference": f"<{self.reference_size} inputs>", "alpha": self.alpha, "scorer": type(self.scorer).__name__}

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"AnomalousInput(reference=<{self.reference_size} inputs>, alpha={self.alpha:g})"


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
            raise _error(f"State({name!r})", "name must be lower_snake_case letters, digits and _ (at most 64), such as 'too_long'")
        if name in STATES:
            raise _error(f"State({name!r})", f"{name!r} is a built-in failure state; use fp.{_builtin_class(name)}(...) or another name")
        if not callable(predicate):
            raise _error(f"State({name!r}, {predicate!r})", "predicate must be a callable (input, prediction) -> bool")
        if stage not in ("input", "output"):
            raise _error(f"State({name!r}, stage={stage!r})", "stage must be 'input' or 'output'")
        self.name = name  # type: ignore[misc]
        self.predicate = predicate
        self.stage = stage  # type: ignore[misc]

    def evaluate(self, value: Any, prediction: Prediction | None) -> tuple[str | None, str | None]:
        """``(explanation, error)``: the explanation when the state holds; the error when the predicate raised."""
        try:
            hit = self.predicate(value, prediction)
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if not hit:
            return None, None
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


BUILTIN_DETECTORS: dict[str, type[FailureState]] = {
    cls.name: cls
    for cls in (ProviderError, Timeout, InvalidOutput, LowConfidence, AnomalousInput, InjectionSuspected, Inconsistent, EmptyInput, BudgetExceeded, Unexpected)
}
