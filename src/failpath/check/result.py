"""The values a check produces: figures per suite, the verdict, and the whole ``CheckResult``.

``CheckResult.to_dict()`` is the stable, versioned document (``"schema": "failpath.check/2"``) the
terminal, HTML and JSON reports are built from; ``CheckResult.from_dict`` reads it back (documents of
schema ``failpath.check/1`` too: the fields added since then take their defaults).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from failpath.check.inputs import DetectorFigures, DetectorRate, PerturbationCount, SuiteCounts

__all__ = [
    "SCHEMA",
    "Criterion",
    "Verdict",
    "ConfidenceQuality",
    "PolicyFigures",
    "GroupFigures",
    "FamilyBound",
    "RefusalFigures",
    "OverRefusal",
    "TagFigures",
    "StateCoverage",
    "ThresholdReport",
    "Reproduction",
    "WorstCase",
    "SevereCase",
    "SeverityReport",
    "CheckResult",
]

#: The version of the ``CheckResult.to_dict()`` document. Version 2: the ``silent_failure_bound``
#: criterion is judged per family (or on a declared traffic mix) with the case as the unit
#: (``silent_failure_families``), and the ``over_refusal`` criterion was added.
SCHEMA = "failpath.check/2"

#: Earlier versions :meth:`CheckResult.from_dict` still reads.
READABLE_SCHEMAS = ("failpath.check/1", SCHEMA)


@dataclass(frozen=True)
class Criterion:
    """One test of the verdict: its name, whether it passed, the figure it was judged on, and why."""

    name: str
    passed: bool
    figure: str
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    """SHIP when every criterion passed, else DEMO; ``reasons`` lists every criterion with its figure."""

    ship: bool
    reasons: tuple[Criterion, ...] = ()

    @property
    def label(self) -> str:
        """``"READY TO SHIP"`` or ``"READY TO DEMO"``."""
        return "READY TO SHIP" if self.ship else "READY TO DEMO"

    @property
    def exit_code(self) -> int:
        """The CLI exit code: 0 for READY TO SHIP, 1 for READY TO DEMO."""
        return 0 if self.ship else 1

    @property
    def failed(self) -> tuple[Criterion, ...]:
        """The criteria that did not pass."""
        return tuple(c for c in self.reasons if not c.passed)

    def __bool__(self) -> bool:
        return self.ship


@dataclass(frozen=True)
class ConfidenceQuality:
    """How well the raw confidence separates right from wrong answers (``None`` where undefined).

    ``n`` answers carried a confidence (out of ``n_total``). AUROC: right vs wrong; AURC and E-AURC:
    risk–coverage, discrete oracle; ECE: 15 equal-width bins ``(lo, hi]``; Brier.
    """

    n: int
    n_total: int
    accuracy: float | None = None
    auroc: float | None = None
    aurc: float | None = None
    e_aurc: float | None = None
    ece: float | None = None
    adaptive_ece: float | None = None
    brier: float | None = None


@dataclass(frozen=True)
class PolicyFigures:
    """What n requests ended in, either through the guard (with the policy) or from the raw system.

    ``coverage`` = answered / n; ``silent_failure_rate`` = answered-and-wrong / n, with its exact
    (Clopper–Pearson) upper confidence bound; ``selective_risk`` = answered-and-wrong / answered;
    ``escaped`` counts exceptions (guarded calls that raised, or raw calls that raised).
    ``outcomes`` counts each outcome kind (``answered``, ``clarify``, ..., and ``escaped``).
    """

    n: int
    answered: int
    silent_failures: int
    escaped: int
    coverage: float | None
    silent_failure_rate: float | None
    silent_failure_upper: float | None
    selective_risk: float | None
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupFigures:
    """The figures of one suite (``perturbation`` is None) or of one perturbation inside a suite.

    Accuracy is the raw system's (without the policy), each case counted once (a case with several
    variants counts the mean of its variants), so ``gap`` = ``clean_accuracy`` − ``accuracy`` exactly:
    paired by case, with a paired bootstrap interval ``gap_low..gap_high``;
    ``flip_rate`` is the share of variants whose correctness differs from their clean case's.
    ``catch_rate`` = raw-wrong turned into a handled outcome / raw-wrong; ``false_alarm_rate`` = handled
    although raw-right / raw-right; ``repaired`` counts raw-wrong answered right by the guard (a retry or
    a fallback). ``states`` counts calls on which each failure state was detected.
    """

    suite: str
    family: str
    perturbation: str | None
    contract: str
    n: int
    n_cases: int
    clean_accuracy: float | None
    accuracy: float | None
    gap: float | None
    gap_low: float | None
    gap_high: float | None
    flip_rate: float | None
    with_policy: PolicyFigures
    without_policy: PolicyFigures
    catch_rate: float | None
    false_alarm_rate: float | None
    repaired: int
    states: dict[str, int] = field(default_factory=dict)
    confidence: ConfidenceQuality | None = None


@dataclass(frozen=True)
class FamilyBound:
    """The silent-failure criterion on one family of requests, or on the declared traffic mix.

    ``family`` is ``clean``, ``realistic``, ``hostile`` or ``fault`` (the requests of that family on the
    evaluation half, with the policy), or ``mix``: the traffic mix declared in ``[budgets.mix]``, whose
    ``weights`` name the families it weighs. ``rate`` is the mean over cases of each case's share of
    silent failures (each case weighted equally; for ``mix``, the weighted sum of the families' rates);
    ``upper`` is its upper confidence bound at ``confidence`` (Hoeffding–Bentkus over the per-case shares,
    so it holds however strongly a case's variants are correlated; for ``mix``, the weighted sum of the
    families' bounds, each at 1 − delta / (number of families in the mix): Bonferroni). ``passed`` when
    ``upper`` is at most ``budget``. ``upper`` is None when the family had no evaluated request.
    """

    family: str
    n: int
    n_cases: int
    silent_failures: int
    rate: float | None
    upper: float | None
    confidence: float
    budget: float
    passed: bool
    weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RefusalFigures:
    """Over-refusal on one realistic perturbation (or one suite, ``perturbation`` None).

    Of the ``raw_right`` requests the raw system answered right, ``refused`` ended in a handled outcome
    (clarify, escalate, abstain, default) with the policy; ``by_state`` counts those refusals by the
    deciding failure state (the detector responsible; ``"none"`` when no state decided).
    """

    suite: str
    perturbation: str | None
    raw_right: int
    refused: int
    rate: float | None
    by_state: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class OverRefusal:
    """The over-refusal criterion: how much of what the raw system gets right on realistic input the policy refuses.

    ``rate`` is the mean over cases (with at least one raw-right realistic request) of each case's share
    of refused raw-right requests; ``upper`` its Hoeffding–Bentkus upper bound at ``confidence`` over
    those ``n_cases``; ``passed`` when ``upper`` is at most ``budget`` (``false_alarm`` in ``[budgets]``).
    ``groups`` break it down per realistic suite and perturbation.
    """

    n: int
    n_cases: int
    refused: int
    rate: float | None
    upper: float | None
    confidence: float
    budget: float
    passed: bool
    groups: tuple[RefusalFigures, ...] = ()


@dataclass(frozen=True)
class TagFigures:
    """The figures of the cases carrying one tag (``Case.tags``), on the evaluation half.

    ``n_cases`` cases with the tag made ``n`` requests, ``silent_failures`` of them answered wrongly.
    ``families`` gives, per family present, the silent-failure rate as the silent-failure criterion
    measures it (the mean over the tag's cases of each case's share, its Hoeffding–Bentkus upper bound,
    and ``passed`` when that bound is within the family's budget); ``over_refusal`` the over-refusal of
    the tag's cases, measured as the criterion measures it (None without raw-right realistic requests).
    Each bound holds at its ``confidence`` on its own; the figures inform, they are not criteria of the
    verdict (a tag of a few cases has a wide bound).
    """

    tag: str
    n_cases: int
    n: int
    silent_failures: int
    families: tuple[FamilyBound, ...] = ()
    over_refusal: OverRefusal | None = None


@dataclass(frozen=True)
class StateCoverage:
    """One failure state: the actions that handle it, or the reason it was accepted, and how the run exercised it.

    ``fired`` counts calls on which it was detected; ``ended_declared`` counts those that then took one
    of its declared actions. ``ok`` is this state's part of the verdict.
    """

    state: str
    handled_by: tuple[str, ...]
    accepted: str | None
    fired: int
    decided: int
    ended_declared: int
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class ThresholdReport:
    """The confidence threshold chosen on the calibration half, and its guarantee.

    Learn-then-Test over a fixed grid, Hoeffding–Bentkus p-values over cases, family-wise correction
    ``method``: when ``certified``, answering only when ``confidence >= threshold`` keeps the mean over
    cases of each case's silent-failure share at most ``risk_budget`` with probability at least
    1 − ``delta``. When nothing is certified, ``threshold`` is None and the only guaranteed policy is
    never to answer. ``evaluation_*`` are measured at the threshold on the evaluation half.
    ``cost_policy`` is the cost-optimal answer/clarify/escalate rule, its ``tau_answer`` never below
    ``cap`` (the certified threshold; None: never answer).
    """

    certified: bool
    threshold: float | None
    risk_budget: float
    delta: float
    method: str
    n_calibration: int
    calibration_coverage: float | None
    calibration_risk: float | None
    evaluation_coverage: float | None
    evaluation_risk: float | None
    evaluation_silent_failure_rate: float | None
    message: str
    cost_policy: dict[str, Any] | None = None


@dataclass(frozen=True)
class Reproduction:
    """The smallest failing input found by ``failpath.chaos.search`` from a clean case.

    ``perturbation`` names the composed perturbations (``a+b``); ``minimal`` is True when removing any
    one of them was checked to make the guarded system right (or handled) again.
    """

    found: bool
    input: Any = None
    expected: Any = None
    edits: tuple[dict[str, Any], ...] = ()
    output: Any = None
    confidence: float | None = None
    n_tried: int = 0
    seconds: float = 0.0
    perturbation: str = ""
    minimal: bool = False
    note: str = ""


@dataclass(frozen=True)
class WorstCase:
    """A silent failure (answered, wrong) from the evaluation half, ranked by its confidence.

    ``cause`` is ``"perturbation"`` when the raw system answered the case's clean input right (the
    perturbation made it fail), ``"clean"`` when the case was already wrong on its clean input.
    ``input_visible`` is the input with hidden and look-alike characters written as ``[U+XXXX]``.
    """

    key: str
    suite: str
    perturbation: str
    case_id: str
    input: Any
    expected: Any
    output: Any
    confidence: float | None
    edits: tuple[dict[str, Any], ...] = ()
    reproduction: Reproduction | None = None
    cause: str = "perturbation"
    input_visible: str | None = None


@dataclass(frozen=True)
class SevereCase:
    """One of the most severe wrong answers of the evaluation half.

    ``policy`` says whose answer it is: ``"with"`` (the guarded system answered it: a silent failure) or
    ``"without"`` (the raw system gave it; ``outcome`` is then what the policy did with that request:
    ``answered`` when it let the wrong answer through, else how it handled it).
    """

    key: str
    family: str
    suite: str
    perturbation: str
    case_id: str
    input: Any
    expected: Any
    output: Any
    severity: float
    confidence: float | None
    policy: str
    outcome: str
    graded: bool = True


@dataclass(frozen=True)
class SeverityReport:
    """The answer to "what is the worst thing this can do, and have we handled it?".

    ``graded_by`` says how wrong answers were graded (a function, or a judge's weights); None when no
    severity was configured, in which case every wrong answer counts as severity 1 (``ungraded``), so
    leaving severity out can only make the budget harder. A silent failure is severe when its severity
    is at least ``cut``. ``families`` bound the severe silent-failure rate per family (or on the declared
    mix) against ``budget``, with the case as the unit, as the silent-failure criterion does.
    ``severe_with_policy`` counts the severe silent failures on the evaluation half, ``severe_without_policy``
    the severe wrong answers the raw system gave there, ``severe_handled`` those of them the policy ended in
    a handled outcome (clarify, escalate, abstain, default); ``worst`` lists the most severe with the policy,
    ``worst_without_policy`` those of the raw system and what the policy did with each.
    """

    graded_by: str | None
    cut: float
    budget: float
    families: tuple[FamilyBound, ...]
    n: int
    severe_with_policy: int
    severe_without_policy: int
    severe_handled: int = 0
    worst: tuple[SevereCase, ...] = ()
    worst_without_policy: tuple[SevereCase, ...] = ()

    @property
    def passed(self) -> bool:
        """True when every family (and the mix) is within the severe budget."""
        return bool(self.families) and all(f.passed for f in self.families)


@dataclass(frozen=True)
class CheckResult:
    """Everything a check measured, and its verdict. Frozen; ``to_dict``/``from_dict`` for storage.

    ``groups`` holds the chaos figures, suites in the order they ran (each suite's row first, then its
    perturbations); ``clean`` the clean pass; ``chaos`` every chaos variant pooled. Every figure is
    measured on the evaluation half of the cases; thresholds are chosen on the calibration half.
    ``tags`` holds the figures of each case tag (:class:`TagFigures`), tags in name order.
    ``resumed`` is True for a run continued with ``resume``; ``reused`` counts the results it found
    stored already (and did not run again). ``detectors`` measures each input-side detector of the
    policy (false alarms on realistic variants the raw system answered right, flag rate on a
    shifted-domain sample); ``perturbation_counts`` says what each perturbation of each suite made,
    naming those that made nothing (:mod:`failpath.check.inputs`).
    """

    run_id: str
    verdict: Verdict
    name: str
    system: str
    policy: str
    judge: str
    seed: int
    suites: tuple[str, ...]
    n_cases: int
    n_calibration: int
    n_evaluation: int
    n_rows: int
    clean: GroupFigures
    chaos: GroupFigures
    groups: tuple[GroupFigures, ...]
    confidence: ConfidenceQuality
    states: tuple[StateCoverage, ...]
    thresholds: ThresholdReport
    worst_cases: tuple[WorstCase, ...]
    baseline: dict[str, Any]
    budgets: dict[str, Any]
    curves: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    elapsed_seconds: float = 0.0
    resumed: bool = False
    reused: int = 0
    notes: tuple[str, ...] = ()
    silent_failure_families: tuple[FamilyBound, ...] = ()
    over_refusal: OverRefusal | None = None
    severity: SeverityReport | None = None
    detectors: tuple[DetectorFigures, ...] = ()
    perturbation_counts: tuple[SuiteCounts, ...] = ()
    tags: tuple[TagFigures, ...] = ()
    schema: str = SCHEMA

    @property
    def ship(self) -> bool:
        """True when the verdict is READY TO SHIP."""
        return self.verdict.ship

    @property
    def certified(self) -> bool:
        """True when a confidence threshold was certified on the calibration half."""
        return self.thresholds.certified

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe document of every figure (NaN and infinities become None), versioned by ``schema``."""
        return _clean_floats(_plain(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CheckResult":
        """Read back a document written by ``to_dict`` (raises ``ValueError`` for another schema)."""
        schema = data.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise ValueError(f"not a check result of schema {SCHEMA!r} (schema is {schema!r})")
        return _adapter().validate_python({**data, "schema": SCHEMA})


@lru_cache(maxsize=1)
def _adapter() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(CheckResult)


def _plain(value: Any) -> Any:
    """``value`` as pydantic's ``dump_python(mode="json")`` writes it, without building its schema.

    Building pydantic's serializer for ``CheckResult`` costs more than the rest of a small check's
    start-up, so the result's own dataclasses, tuples, lists, string-keyed dicts and plain scalars are
    converted here; any other value (a case's input or output of another type) goes through
    ``pydantic_core.to_jsonable_python``, the conversion pydantic applies to ``Any``. A test compares
    the two on real results.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind in _RESULT_TYPES:
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if kind is tuple or kind is list:
        return [_plain(item) for item in value]
    if kind is dict and all(type(key) is str for key in value):
        return {key: _plain(item) for key, item in value.items()}
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value)


_SCALARS = (str, int, float, bool, type(None))
_RESULT_TYPES = (
    Criterion, Verdict, ConfidenceQuality, PolicyFigures, GroupFigures, StateCoverage, ThresholdReport,
    Reproduction, WorstCase, CheckResult, DetectorFigures, DetectorRate, PerturbationCount, SuiteCounts,
)


def _clean_floats(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_floats(v) for v in value]
    return value
