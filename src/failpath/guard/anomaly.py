"""Scores for ``AnomalousInput``: a cheap, fitted, explainable profile, and the protocol for your own scorer.

The built-in :class:`ProfileScorer` describes a text by its length and the share of each character class,
learns the median and spread of each feature from the reference inputs, and scores an input by its
largest robust z-score. :class:`~failpath.guard.ngram.NgramScorer` (scikit-learn) compares shape and
character n-grams with the nearest reference input. :class:`ConformalScore` turns any score into a
conformal p-value: the share of reference inputs that score at least as high (cross-fitted, so no
reference input scores itself; with ``groups``, the variants of one case stay in one fold).

:func:`tolerated_reference` builds a reference from what the system is known to handle: the clean
inputs plus the realistic variants it answered right. :func:`save_detector` and :func:`read_detector`
(behind ``AnomalousInput.save`` and ``AnomalousInput.load``) keep a fitted detector in a JSON file
for production.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from failpath.guard.text import canonical_text

__all__ = [
    "InputScorer",
    "ProfileScorer",
    "ConformalScore",
    "ToleratedReference",
    "tolerated_reference",
    "save_detector",
    "read_detector",
    "SavedDetector",
    "DETECTOR_FORMAT",
]


@runtime_checkable
class InputScorer(Protocol):
    """What ``AnomalousInput(scorer=...)`` needs: ``score(input) -> float``, higher meaning more unusual.

    Optional methods: ``fit(reference)`` learns from known inputs (called on a copy of the scorer, once
    per cross-fitting fold and once on all of them; it may return the fitted scorer or ``None`` to mean
    itself) and ``explain(input) -> str`` says in words why an input scored high. A scorer without
    ``fit`` (an embedding distance to a fixed corpus, say) must not have been built from the reference
    inputs themselves, or their scores will look smaller than those of new inputs.
    """

    def score(self, value: Any) -> float:
        """How unusual ``value`` is; higher is more unusual."""
        ...


# Character classes for ASCII, by code point; every non-ASCII character stays itself (code point >= 128).
_LOWER, _UPPER, _DIGIT, _SPACE, _PUNCT, _CONTROL = "\x01", "\x02", "\x03", "\x04", "\x05", "\x06"


def _class_of(code: int) -> str:
    char = chr(code)
    if char.islower():
        return _LOWER
    if char.isupper():
        return _UPPER
    if char.isdigit():
        return _DIGIT
    if char in " \t\n\r":
        return _SPACE
    if code < 32 or code == 127:
        return _CONTROL
    return _PUNCT


_CLASSES = {code: _class_of(code) for code in range(128)}
# The same table for bytes: ASCII text is encoded once and translated in C (much faster than str.translate).
_BYTE_CLASSES = bytes(ord(_class_of(code)) if code < 128 else code for code in range(256))
_L, _U, _D, _S, _P, _C = (ord(c) for c in (_LOWER, _UPPER, _DIGIT, _SPACE, _PUNCT, _CONTROL))
_log1p = math.log1p
_FEATURES = ("length", "words", "lowercase", "uppercase", "digits", "spaces", "punctuation", "non-ASCII", "control")
_FLOORS = (0.15, 0.15, 0.03, 0.03, 0.03, 0.03, 0.03, 0.02, 0.01)  # smallest spread a feature may have


def profile(text: str) -> tuple[float, ...]:
    """The features of a text: log length, log word count, and the share of each character class."""
    n = len(text)
    if n == 0:
        return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    if text.isascii():
        mapped_bytes = text.encode("ascii").translate(_BYTE_CLASSES)
        count = mapped_bytes.count
        lower, upper, digit, space, punct, control = count(_L), count(_U), count(_D), count(_S), count(_P), count(_C)
    else:
        mapped = text.translate(_CLASSES)
        lower = mapped.count(_LOWER)
        upper = mapped.count(_UPPER)
        digit = mapped.count(_DIGIT)
        space = mapped.count(_SPACE)
        punct = mapped.count(_PUNCT)
        control = mapped.count(_CONTROL)
    other = n - lower - upper - digit - space - punct - control
    return (
        math.log1p(n),
        math.log1p(len(text.split())),
        lower / n,
        upper / n,
        digit / n,
        space / n,
        punct / n,
        other / n,
        control / n,
    )


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _quantile(ordered: list[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class ProfileScorer:
    """Length and character-class profile: the largest robust z-score of an input's features.

    Each feature's center is the reference median and its spread 1.4826 × the median absolute
    deviation (never below a small floor, so a feature constant in the reference still tolerates a
    little variation).
    """

    kind = "profile"

    def __init__(self) -> None:
        self.center: tuple[float, ...] = ()
        self.spread: tuple[float, ...] = ()
        self.typical: tuple[tuple[float, float], ...] = ()
        self._scale: tuple[tuple[float, float], ...] = ()

    def options(self) -> dict[str, Any]:
        """The settings that rebuild this scorer (it has none)."""
        return {}

    def fit(self, reference: Sequence[Any]) -> ProfileScorer:
        """Learn the median, spread and 5–95% range of each feature from the reference inputs."""
        rows = [profile(canonical_text(value)) for value in reference]
        columns = list(zip(*rows))
        center, spread, typical = [], [], []
        for column, floor in zip(columns, _FLOORS):
            values = list(column)
            mid = _median(values)
            mad = _median([abs(v - mid) for v in values])
            center.append(mid)
            spread.append(max(1.4826 * mad, floor))
            ordered = sorted(values)
            typical.append((_quantile(ordered, 0.05), _quantile(ordered, 0.95)))
        self.center, self.spread, self.typical = tuple(center), tuple(spread), tuple(typical)
        self._scale = tuple((c, 1.0 / s) for c, s in zip(center, spread))  # what ``score`` reads per call
        return self

    def zscores(self, text: str) -> tuple[float, ...]:
        """The robust z-score of each feature of ``text``."""
        return tuple(abs(v - c) / s for v, c, s in zip(profile(text), self.center, self.spread))

    def score(self, value: Any, text: str | None = None) -> float:
        """The largest robust z-score of the input's features."""
        if text is None:
            text = canonical_text(value)
        if not self._scale:
            raise RuntimeError("ProfileScorer.score called before fit(reference)")
        n = len(text)
        if n == 0 or not text.isascii():
            f0, f1, f2, f3, f4, f5, f6, f7, f8 = profile(text)
        else:  # what profile() computes for ASCII text, without building the tuple
            count = text.encode("ascii").translate(_BYTE_CLASSES).count
            lower, upper, digit, space, punct, control = count(_L), count(_U), count(_D), count(_S), count(_P), count(_C)
            f0, f1 = _log1p(n), _log1p(len(text.split()))
            f2, f3, f4, f5, f6 = lower / n, upper / n, digit / n, space / n, punct / n
            f7, f8 = (n - lower - upper - digit - space - punct - control) / n, control / n
        (c0, s0), (c1, s1), (c2, s2), (c3, s3), (c4, s4), (c5, s5), (c6, s6), (c7, s7), (c8, s8) = self._scale
        return max(
            abs(f0 - c0) * s0, abs(f1 - c1) * s1, abs(f2 - c2) * s2, abs(f3 - c3) * s3, abs(f4 - c4) * s4,
            abs(f5 - c5) * s5, abs(f6 - c6) * s6, abs(f7 - c7) * s7, abs(f8 - c8) * s8,
        )

    def explain(self, value: Any, text: str | None = None) -> str:
        """The two features farthest from the reference, with the input's value and the reference's range."""
        if text is None:
            text = canonical_text(value)
        features = profile(text)
        z = self.zscores(text)
        worst = sorted(range(len(z)), key=lambda i: -z[i])[:2]
        return "; ".join(self._describe(i, features[i], z[i]) for i in worst if z[i] > 0)

    def _describe(self, i: int, value: float, z: float) -> str:
        low, high = self.typical[i]
        if i < 2:  # log1p counts
            shown, lo, hi = round(math.expm1(value)), round(math.expm1(low)), round(math.expm1(high))
            unit = "characters" if i == 0 else "words"
            return f"{shown} {unit} (reference {lo}–{hi}, z={z:.1f})"
        return f"{_FEATURES[i]} {value:.0%} (reference {low:.0%}–{high:.0%}, z={z:.1f})"


class ConformalScore:
    """A scorer fitted on reference inputs, with the cross-fitted reference scores that calibrate its p-values."""

    def __init__(self, scorer: Any, calibration: list[float]):
        self.scorer = scorer
        self.calibration = sorted(calibration)
        self._takes_text = isinstance(scorer, ProfileScorer)

    def cutoff(self, alpha: float) -> float:
        """The score above which the p-value is at most ``alpha`` (infinite when no score is that rare)."""
        n = len(self.calibration)
        allowed = math.floor(alpha * (n + 1) + 1e-9) - 1  # how many reference scores may be >= a flagged score
        if allowed < 0:
            return math.inf
        if allowed >= n:
            return -math.inf
        return self.calibration[n - 1 - allowed]

    def score(self, value: Any, text: str) -> float:
        """The scorer's score for one input."""
        return float(self.scorer.score(value, text) if self._takes_text else self.scorer.score(value))

    @classmethod
    def fit(cls, scorer: Any, reference: Sequence[Any], *, folds: int = 5, groups: Sequence[Hashable] | None = None) -> ConformalScore:
        """Fit ``scorer`` on the reference; calibrate with out-of-fold scores when it has ``fit``.

        ``groups`` (one per reference input) keeps inputs of one group in the same fold: the variants of
        a case are near copies of it, and a held-out variant scored against its own case would make the
        calibration scores too small (and the detector flag new inputs too often).
        """
        reference = list(reference)
        if not callable(getattr(scorer, "fit", None)):
            return cls(scorer, _score_all(scorer, reference))
        fold_of = _folds(len(reference), folds, groups)
        calibration: list[float] = []
        for fold in range(folds):
            held_out = [value for value, f in zip(reference, fold_of) if f == fold]
            rest = [value for value, f in zip(reference, fold_of) if f != fold]
            if not held_out or not rest:
                continue
            fitted = _fit_copy(scorer, rest)
            calibration.extend(_score_all(fitted, held_out))
        return cls(_fit_copy(scorer, reference), calibration)

    def p_value(self, score: float) -> float:
        """Share of reference scores at least ``score``, counting the input itself: (1 + #≥) / (n + 1)."""
        import bisect

        if math.isnan(score):
            return 1.0 / (len(self.calibration) + 1)
        at_least = len(self.calibration) - bisect.bisect_left(self.calibration, score)
        return (1 + at_least) / (len(self.calibration) + 1)

    def test(self, value: Any, text: str, *, alpha: float = 1.0) -> dict[str, Any]:
        """Score, p-value and, when the p-value is at most ``alpha`` and the scorer can say, why."""
        scorer = self.scorer
        score = float(scorer.score(value, text) if self._takes_text else scorer.score(value))
        p_value = self.p_value(score)
        result: dict[str, Any] = {"score": round(score, 4), "p_value": p_value}
        explain = getattr(scorer, "explain", None)
        if p_value <= alpha and callable(explain):
            try:
                result["why"] = explain(value, text) if self._takes_text else str(explain(value))
            except Exception as exc:  # an explanation is a courtesy; never let it break the call
                result["why"] = f"(explain failed: {type(exc).__name__})"
        return result


def _folds(n: int, folds: int, groups: Sequence[Hashable] | None) -> list[int]:
    """The fold of each reference input: by position, or by the order in which its group first appears."""
    if groups is None:
        return [i % folds for i in range(n)]
    if len(groups) != n:
        raise ValueError(f"groups must give one group per reference input: {len(groups)} groups for {n} inputs")
    index: dict[Hashable, int] = {}
    return [index.setdefault(g, len(index)) % folds for g in groups]


def _score_all(scorer: Any, values: list[Any]) -> list[float]:
    many = getattr(scorer, "score_many", None)
    if callable(many):
        return [float(s) for s in many(values)]
    return [float(scorer.score(value)) for value in values]


def _fit_copy(scorer: Any, reference: list[Any]) -> Any:
    fitted = copy.deepcopy(scorer)
    returned = fitted.fit(reference)
    return fitted if returned is None else returned


# --------------------------------------------------------------------------- what the system tolerates


@dataclass(frozen=True)
class ToleratedReference:
    """Inputs the system is known to handle: ``inputs`` with the case each came from (``groups``).

    ``n_cases`` clean inputs, then ``n_variants`` realistic variants the raw system answered right out of
    ``n_tried`` variants with an expected answer (``NOT_PRESERVED`` variants have none and are skipped).
    Pass it to ``AnomalousInput(reference.inputs, groups=reference.groups, ...)``.
    """

    inputs: tuple[Any, ...]
    groups: tuple[str, ...]
    n_cases: int
    n_variants: int
    n_tried: int


def tolerated_reference(
    system: Callable[[Any], Any],
    cases: Sequence[Any],
    judge: Callable[[Any, Any], Any],
    *,
    suite: Any = "realistic",
    seed: int = 0,
    on_answer: Callable[[Any, Any, Any, float], None] | None = None,
) -> ToleratedReference:
    """The clean inputs of ``cases`` plus the variants of ``suite`` that ``system`` answered right.

    A detector fitted on this learns what the system tolerates: if it parses upper-case or two-line
    addresses right, those stop being anomalous. ``system`` is the raw system (no policy; a
    :class:`~failpath.core.Prediction` or a value; async systems are run to completion); a call that
    raises counts as wrong. ``judge(output, expected)`` says right or wrong (``fp.TokenLabels()``,
    ``fp.Fields()``, a function). Variants with no expected answer (``NOT_PRESERVED``) are left out.
    ``on_answer(case, variant, output, seconds)``, when given, is told every call that returned (what
    the system returned, before judging, and how long the call took), so the caller can keep the answers.
    """
    from failpath.chaos.base import LabelContract
    from failpath.chaos.suites import get_suite
    from failpath.core import Case, ConfigError, Prediction

    if not callable(system) or not callable(judge):
        raise ConfigError("tolerated_reference needs a callable system and a callable judge(output, expected)")
    chosen = get_suite(suite)
    inputs: list[Any] = []
    groups: list[str] = []
    tried = right = 0
    for case in cases:
        if not isinstance(case, Case):
            raise ConfigError(f"tolerated_reference: expected failpath Case values, got {type(case).__name__}")
        inputs.append(case.input)
        groups.append(case.id)
    n_cases = len(inputs)
    for case in cases:
        for variant in chosen.variants(case, seed):
            if variant.contract is LabelContract.NOT_PRESERVED or variant.fault is not None:
                continue
            tried += 1
            try:
                started = time.perf_counter()
                raw = system(variant.input)
                if inspect.isawaitable(raw):
                    import asyncio

                    raw = asyncio.run(_await(raw))
                if on_answer is not None:
                    on_answer(case, variant, raw, time.perf_counter() - started)
                value = raw.value if isinstance(raw, Prediction) else raw
                ok = bool(judge(value, variant.expected))
            except Exception:  # noqa: BLE001 - a call that fails is not a call the system handles
                ok = False
            if ok:
                right += 1
                inputs.append(variant.input)
                groups.append(case.id)
    return ToleratedReference(tuple(inputs), tuple(groups), n_cases, right, tried)


async def _await(awaitable: Any) -> Any:
    return await awaitable


# --------------------------------------------------------------------------- saving a fitted detector

#: The ``format`` field of a saved detector file.
DETECTOR_FORMAT = "failpath.anomalous_input/1"


def _scorer_kinds() -> dict[str, Any]:
    from failpath.guard.ngram import NgramScorer  # scikit-learn is imported only when one is fitted

    return {"profile": ProfileScorer, "ngram": NgramScorer}


def save_detector(detector: Any, path: str | Path) -> Path:
    """Write a fitted ``AnomalousInput`` to ``path`` as JSON (read back by ``AnomalousInput.load``); returns the path.

    The file holds the format name, ``alpha``, ``folds``, the scorer's kind and options, the
    calibration scores, and the reference inputs as the detector reads them (their canonical text)
    with their groups. It holds inputs: keep it where your reference data may live. Only the built-in
    scorers can be saved (a scorer of your own: keep its reference and build the detector again).
    """
    from failpath.core import ConfigError

    scorer = detector.scorer
    kind = getattr(type(scorer), "kind", None)
    if kind not in ("profile", "ngram") or not callable(getattr(scorer, "options", None)):
        raise ConfigError(
            f"AnomalousInput.save: only the built-in scorers (ProfileScorer, NgramScorer) can be saved, "
            f"not {type(scorer).__name__}; keep its reference inputs and build the detector again"
        )
    document = {
        "format": DETECTOR_FORMAT,
        "alpha": detector.alpha,
        "folds": detector.folds,
        "scorer": {"kind": kind, "options": scorer.options()},
        "calibration": list(detector._conformal.calibration),
        "reference": list(detector.reference_texts),
        "groups": None if detector.groups is None else [str(g) for g in detector.groups],
    }
    target = Path(path)
    target.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return target


@dataclass(frozen=True)
class SavedDetector:
    """What :func:`read_detector` reads from a saved file: the parts ``AnomalousInput.load`` rebuilds it from."""

    reference: list[str]
    groups: list[str] | None
    alpha: float
    folds: int
    scorer: Any  # fitted on ``reference``
    calibration: list[float]


def read_detector(path: str | Path) -> SavedDetector:
    """The parts of the detector saved by :func:`save_detector` at ``path`` (use ``AnomalousInput.load``).

    The scorer is fitted again on the saved reference (fitting is deterministic, so it scores as the
    saved one did); the saved calibration scores are used as they are. No code is loaded from the
    file: it is JSON, read with ``json``. ``ConfigError`` names the file and what is wrong with it.
    """
    from failpath.core import ConfigError

    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{source}: no saved detector there (write one with AnomalousInput.save)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{source}: not a saved detector ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != DETECTOR_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise ConfigError(f"{source}: format {found!r} is not {DETECTOR_FORMAT!r}; save the detector again with this version")
    try:
        spec = document["scorer"]
        kinds = _scorer_kinds() if spec["kind"] == "ngram" else {"profile": ProfileScorer}
        scorer_type = kinds[spec["kind"]]
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(spec.get("options") or {}).items()}
        reference = [str(text) for text in document["reference"]]
        calibration = [float(x) for x in document["calibration"]]
        groups = document.get("groups")
        alpha, folds = float(document["alpha"]), int(document["folds"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: a saved detector's field is missing or malformed ({type(exc).__name__}: {exc})") from None
    fitted = _fit_copy(scorer_type(**options), reference)
    return SavedDetector(reference, groups, alpha, folds, fitted, calibration)
