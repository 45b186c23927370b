"""The input-side failure states: detectors that look at the input before the system is called.

``EmptyInput``, ``InjectionSuspected`` and ``AnomalousInput`` (a user's ``State(..., stage="input")``
is in :mod:`failpath.guard.states`). They run in that order, most specific first: empty, injection,
the user's input states, anomalous.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from failpath.guard.anomaly import ConformalScore, InputScorer, ProfileScorer
from failpath.guard.states import FailureState, fraction, parameter_error
from failpath.guard.text import canonical_text

__all__ = ["EmptyInput", "InjectionSuspected", "AnomalousInput"]


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


#: The longest input :class:`InjectionSuspected` scans by default (characters of the input's text).
MAX_SCAN_CHARS = 50_000


class InjectionSuspected(FailureState):
    """The input looks like an attempt to take over the model.

    Flags instruction-override phrases ("ignore previous instructions", "you are now", "reveal your
    system prompt", ...), invisible and bidirectional control characters (zero-width characters,
    U+202A–U+202E and U+2066–U+2069 overrides, Unicode tag characters), other control characters, and
    chat role markers (``<|im_start|>``, ``[INST]``, ``system:`` at the start of a line, ...). Text is
    NFKC-normalized and stripped of invisible characters before phrases are matched, so full-width or
    zero-width-split phrases are caught. ``phrases`` adds your own regular expressions (case-insensitive).

    ``max_chars`` (default 50,000) bounds the scan's time: the patterns take up to about 3 s per MB of
    adversarial text, so a longer input is not scanned and fires the state ("too long to scan"), which a
    deadline could not otherwise bound (a running regular expression cannot be stopped). Raise it for
    long documents, or pass None to scan any length.
    """

    name = "injection_suspected"
    stage = "input"

    def __init__(
        self, *, phrases: Sequence[str] = (), invisible: bool = True, role_markers: bool = True,
        max_chars: int | None = MAX_SCAN_CHARS,
    ):
        if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1):
            raise parameter_error(f"InjectionSuspected(max_chars={max_chars!r})", "max_chars must be a positive integer or None")
        self.max_chars = max_chars
        if isinstance(phrases, str):
            raise parameter_error(f"InjectionSuspected(phrases={phrases!r})", "phrases must be a list of regular expressions, not one string")
        extra = tuple(phrases)
        for phrase in extra:
            try:
                re.compile(phrase)
            except (re.error, TypeError) as exc:
                raise parameter_error(f"InjectionSuspected(phrases=[{phrase!r}])", f"not a valid regular expression: {exc}") from None
        self.phrases = extra
        self.invisible = bool(invisible)
        self.role_markers = bool(role_markers)
        self._phrase_re = re.compile("|".join(f"(?:{p})" for p in _OVERRIDE_PHRASES), re.IGNORECASE)
        self._extra_re = re.compile("|".join(f"(?:{p})" for p in extra), re.IGNORECASE) if extra else None
        self._role_re = re.compile("|".join(f"(?:{p})" for p in _ROLE_MARKERS), re.IGNORECASE | re.MULTILINE)

    def check_input(self, value: Any, text: str) -> str | None:
        """The explanation when the input looks like an injection, else None."""
        if self.max_chars is not None and len(text) > self.max_chars:
            return (
                f"the input is {len(text):,} characters long, more than the {self.max_chars:,} this detector scans "
                "in bounded time (max_chars): not scanned, treated as suspected"
            )
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
        params = {"phrases": self.phrases or None, "invisible": self.invisible, "role_markers": self.role_markers}
        if self.max_chars != MAX_SCAN_CHARS:
            params["max_chars"] = self.max_chars
        return params

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

    An input longer than ``max_chars`` (the attribute; default 50,000 characters, None: any length) is
    anomalous without being scored: scoring a megabyte takes about a second, which no deadline bounds.

    Or let the check build that reference: ``AnomalousInput(fit="check", scorer=fp.NgramScorer())`` has
    no reference of its own; ``fp.check`` fits it on the clean inputs of its calibration half plus the
    realistic variants of those cases the raw system answered right, and judges on the evaluation half,
    so no judged input was in the reference. ``fp.check(..., save_detector=path)`` (``failpath check
    --save-detector PATH``) saves the fitted detector for production. Until it is fitted, guarding a
    system with it raises ``PolicyError``.
    """

    name = "anomalous_input"
    stage = "input"
    max_chars: int | None = MAX_SCAN_CHARS

    def __init__(
        self,
        reference: Sequence[Any] | None = None,
        *,
        alpha: float = 0.01,
        scorer: InputScorer | None = None,
        folds: int = 5,
        groups: Sequence[Any] | None = None,
        fit: str | None = None,
    ):
        alpha = fraction("AnomalousInput", "alpha", alpha, open_low=True)
        if fit not in (None, "check"):
            raise parameter_error(f"AnomalousInput(fit={fit!r})", "fit must be 'check' (the check fits it on its calibration half) or left out")
        if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
            raise parameter_error(f"AnomalousInput(folds={folds!r})", "folds must be an integer of at least 2")
        if scorer is not None and not callable(getattr(scorer, "score", None)):
            raise parameter_error(f"AnomalousInput(scorer={scorer!r})", "scorer must have a score(input) -> float method")
        self.fit = fit
        self.scorer = scorer if scorer is not None else ProfileScorer()
        self.alpha = alpha
        self.folds = folds
        if fit == "check":
            if reference is not None or groups is not None:
                raise parameter_error(
                    "AnomalousInput(reference=..., fit='check')",
                    "give a reference or fit='check' (the check builds the reference from its calibration half), not both",
                )
            self.reference_size = 0
            self.groups = None
            self._reference: list[Any] = []
            self._conformal: ConformalScore | None = None
            return
        if reference is None:
            raise parameter_error(
                "AnomalousInput()", "give the reference inputs the system is known to handle, or fit='check' to let fp.check fit it"
            )
        self.fit_reference(reference, groups=groups)

    @property
    def fitted(self) -> bool:
        """True once the detector has a reference (given, fitted by a check, or loaded)."""
        return self._conformal is not None

    def fit_reference(self, reference: Sequence[Any], *, groups: Sequence[Any] | None = None) -> "AnomalousInput":
        """Fit this detector, in place, on ``reference`` (with ``groups``, one per input); returns it.

        What ``fp.check`` calls on a detector built with ``fit="check"``, with the clean inputs of its
        calibration half and the realistic variants of those cases the raw system answered right.
        """
        alpha, folds = self.alpha, self.folds
        if isinstance(reference, (str, bytes)) or not hasattr(reference, "__len__"):
            raise parameter_error("AnomalousInput(reference=...)", f"reference must be a list of known inputs, got {type(reference).__name__}")
        reference = list(reference)
        needed = max(2, math.ceil(1.0 / alpha - 1.0 - 1e-9))
        if len(reference) < needed:
            raise parameter_error(
                f"AnomalousInput(reference=<{len(reference)} inputs>, alpha={alpha:g})",
                f"needs at least {needed} reference inputs to ever flag an input at alpha={alpha:g}; "
                f"give more inputs or raise alpha to {1.0 / (len(reference) + 1) + 1e-3:.3f}",
            )
        if folds > len(reference):
            raise parameter_error(f"AnomalousInput(folds={folds!r})", f"folds must be an integer from 2 to the number of reference inputs ({len(reference)})")
        if groups is not None and (isinstance(groups, (str, bytes)) or len(groups) != len(reference)):
            raise parameter_error("AnomalousInput(groups=...)", f"groups must give one group per reference input ({len(reference)})")
        if groups is not None and len(set(groups)) < folds:
            raise parameter_error(
                "AnomalousInput(groups=...)", f"{len(set(groups))} groups cannot fill {folds} cross-fitting folds; give more cases or fewer folds"
            )
        self._setup(reference, groups, alpha, folds, ConformalScore.fit(self.scorer, reference, folds=folds, groups=groups))
        return self

    def adopt(self, other: "AnomalousInput") -> None:
        """Take the fitted state of ``other`` (the same detector, fitted in another process)."""
        if not isinstance(other, AnomalousInput) or not other.fitted:
            raise parameter_error("AnomalousInput.adopt(...)", "give a fitted AnomalousInput")
        self.scorer = other.scorer
        self._setup(other._reference, other.groups, other.alpha, other.folds, other._conformal)

    def _setup(self, reference: list[Any], groups: Sequence[Any] | None, alpha: float, folds: int, conformal: ConformalScore) -> None:
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
        detector = cls.__new__(cls)
        detector.scorer = scorer
        detector.fit = None
        detector._setup(reference, groups, alpha, folds, ConformalScore(scorer, calibration))
        return detector

    @property
    def reference_texts(self) -> list[str]:
        """The reference inputs as the detector reads them (their canonical text)."""
        return [canonical_text(value) for value in self._reference]

    def save(self, path: Any) -> Any:
        """Write this fitted detector to ``path`` as JSON; see :func:`failpath.guard.anomaly.save_detector`."""
        from failpath.guard.anomaly import save_detector

        if self._conformal is None:
            raise self.not_fitted()

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
        if self._conformal is None:
            raise self.not_fitted()
        if self.max_chars is not None and len(text) > self.max_chars:
            return {"score": None, "p_value": 0.0, "why": (
                f"the input is {len(text):,} characters long, more than the {self.max_chars:,} this detector scores "
                "in bounded time (max_chars): not scored, anomalous")}
        score = self._score(value, text)
        if not score > self._cutoff and not math.isnan(score):
            return None
        result = self._conformal.test(value, text, alpha=self.alpha)
        return result if result["p_value"] <= self.alpha else None

    def score(self, value: Any) -> dict[str, Any]:
        """Score, p-value and explanation for one input, whether or not it is flagged."""
        if self._conformal is None:
            raise self.not_fitted()
        return self._conformal.test(value, canonical_text(value))

    def subsumes(self, other: FailureState) -> bool:
        return self is other

    def not_fitted(self) -> Any:
        """The error for using a detector built with ``fit="check"`` before a check (or ``load``) fitted it."""
        from failpath.core import PolicyError

        return PolicyError(
            "AnomalousInput(fit='check') is not fitted yet: fp.check fits it on its calibration half "
            "(failpath check --save-detector PATH saves the fitted one); in production build the policy "
            "with AnomalousInput.load(PATH) instead"
        )

    def _params(self) -> dict[str, Any]:
        if self.fit == "check" and not self.fitted:
            return {"fit": "check", "alpha": self.alpha, "scorer": type(self.scorer).__name__}
        return {"reference": f"<{self.reference_size} inputs>", "alpha": self.alpha, "scorer": type(self.scorer).__name__}

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        if self.fit == "check" and not self.fitted:
            return f"AnomalousInput(fit='check', alpha={self.alpha:g})"
        return f"AnomalousInput(reference=<{self.reference_size} inputs>, alpha={self.alpha:g})"
