"""Confidence thresholds with a statistical guarantee: Learn-then-Test and conformal risk control.

Learn-then-Test (Angelopoulos, Bates et al., 2021): for every threshold ``t`` of a grid fixed before
the labels are seen, test the null hypothesis "the risk at ``t`` exceeds ``max_risk``" with an exact
binomial p-value, then certify thresholds with a procedure that controls the family-wise error rate
at ``delta``. With probability at least ``1 - delta`` over the calibration set, every certified
threshold has true risk <= ``max_risk``; the chosen threshold is the lowest certified one (the most
coverage). When nothing is certified the result says so: threshold ``+inf`` (never answer),
``certified=False``, coverage 0. There is no silent fallback.

:func:`select_threshold` counts requests as independent (exact binomial p-values);
:func:`select_threshold_by_case` treats cases as the independent draws (Hoeffding–Bentkus p-values
of per-case losses), which is what holds when a case makes several correlated requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from failpath.stats._inputs import StatsInputError, as_pair, as_probability, as_scores
from failpath.stats._special import binomial_cdf
from failpath.stats.bounds import _hb_p_value, _hb_upper_bound

__all__ = [
    "ThresholdResult",
    "threshold_grid",
    "p_value_binomial",
    "p_value_hoeffding_bentkus",
    "select_threshold",
    "select_threshold_by_case",
]

Method = Literal["holm", "bonferroni", "fixed_sequence", "split_fixed_sequence", "crc"]
CaseMethod = Literal["holm", "bonferroni", "fixed_sequence"]
Risk = Literal["selective", "joint"]
PValue = Literal["binomial", "hoeffding_bentkus"]

_METHODS = ("holm", "bonferroni", "fixed_sequence", "split_fixed_sequence", "crc")


@dataclass(frozen=True)
class ThresholdResult:
    """A confidence threshold chosen with a guarantee, and the evidence for it.

    Answer when ``confidence >= threshold``. ``threshold`` is ``+inf`` (never answer) and
    ``certified`` False when no grid threshold could be certified. ``coverage``, ``n_answered`` and
    ``n_errors`` describe the chosen threshold on the data the test used (``n`` items: the whole
    calibration set, or its testing part for ``split_fixed_sequence``). ``p_value`` is the chosen
    threshold's p-value (None when nothing is certified, or for ``crc``). ``certified_thresholds``
    lists every certified grid threshold, highest first. ``risk_upper_bound`` is the Clopper–Pearson
    upper bound on the chosen threshold's risk at level ``delta / len(grid)`` (Bonferroni, so it is
    valid whichever threshold was chosen); 0 when nothing is answered; for ``crc`` it is the
    conformal bound on the expected risk. ``grid`` and ``p_values`` give every threshold tested.

    From :func:`select_threshold_by_case` (cases as the independent unit): ``n_cases`` is the
    number of cases (None for the request-level :func:`select_threshold`), ``coverage`` is the
    mean over cases of each case's answered share, ``p_value`` and ``risk_upper_bound`` are
    Hoeffding–Bentkus ones for the case-weighted risk; ``n``, ``n_answered`` and ``n_errors`` still
    count requests.
    """

    threshold: float
    certified: bool
    coverage: float
    n_answered: int
    n_errors: int
    p_value: float | None
    certified_thresholds: tuple[float, ...]
    risk_upper_bound: float
    method: str
    delta: float | None
    max_risk: float
    risk: str
    n: int
    grid: tuple[float, ...] = field(repr=False)
    p_values: tuple[float, ...] = field(repr=False)
    n_cases: int | None = None

    @property
    def never_answer(self) -> bool:
        """True when nothing was certified: the only safe policy is never to answer."""
        return not self.certified

    def answers(self, confidence: Any) -> np.ndarray:
        """Which of these confidences the threshold answers (``confidence >= threshold``)."""
        return as_scores(confidence) >= self.threshold

    def summary(self) -> str:
        """One sentence saying what was certified, or loudly that nothing was."""
        guarantee = (
            f"at delta={self.delta:g}" if self.delta is not None else "in expectation"
        )
        if not self.certified:
            return (
                f"NOTHING CERTIFIED: no threshold on the grid keeps {self.risk} risk <= "
                f"{self.max_risk:g} {guarantee} ({self.method}, "
                f"{'n=' + str(self.n) if self.n_cases is None else f'{self.n_cases} cases, {self.n} requests'}); "
                "never answer."
            )
        sample = f"n={self.n}" if self.n_cases is None else f"{self.n_cases} cases, {self.n} requests"
        return (
            f"answer when confidence >= {self.threshold:g}: {self.risk} risk <= {self.max_risk:g} "
            f"{guarantee} ({self.method}, {sample}); coverage {self.coverage:.1%}, "
            f"{self.n_errors} errors in {self.n_answered} answered."
        )


def threshold_grid(start: float = 1.0, stop: float = 0.0, step: float = 0.01) -> tuple[float, ...]:
    """A descending threshold grid ``start, start - step, start - 2*step, ...``, down to ``stop``.

    ``start`` is always the first value. ``stop`` is the last one only when ``start - stop`` is a
    whole number of steps; otherwise the grid ends at the last value above ``stop``
    (``threshold_grid(1.0, 0.0, 0.3)`` is ``(1.0, 0.7, 0.4, 0.1)``). The three numbers must be
    plain decimals (``0.01``, not ``1e-05``); each value is computed as ``i / 10**d`` from whole
    numbers, ``d`` being the most decimals among them, so ``threshold_grid()[4] == 0.96`` exactly
    (no accumulated floating-point drift). The default is the 101 values 1.00, 0.99, ..., 0.00.
    """
    if not step > 0 or not start >= stop:
        raise StatsInputError(f"need step > 0 and start >= stop, got start={start}, stop={stop}, step={step}")
    decimals = max(_decimals(start), _decimals(stop), _decimals(step))
    scale = 10**decimals
    first, last, stride = (round(v * scale) for v in (start, stop, step))
    return tuple(i / scale for i in range(first, last - 1, -stride))


def p_value_binomial(n_errors: Any, n_trials: Any, max_risk: float) -> Any:
    """Exact binomial p-value for "risk > max_risk": ``P[Binomial(n_trials, max_risk) <= n_errors]``.

    Small values are evidence that the risk is at most ``max_risk``. With ``n_trials == 0`` it is 1
    (no evidence). Accepts arrays.
    """
    level = as_probability(max_risk, "max_risk")
    errors, trials = _whole_counts(n_errors, n_trials)
    value = np.where(trials > 0, binomial_cdf(errors, trials, level), 1.0)
    return float(value) if value.ndim == 0 else value


def p_value_hoeffding_bentkus(n_errors: Any, n_trials: Any, max_risk: float) -> Any:
    """Hoeffding–Bentkus p-value for "risk > max_risk" (Bates et al., 2021), valid for bounded losses.

    ``min(exp(-n * h(min(r, a), a)), e * P[Binomial(n, a) <= ceil(n * r)])`` with ``r`` the observed
    risk, ``a = max_risk`` and ``h(r, a) = r ln(r/a) + (1-r) ln((1-r)/(1-a))``. For 0/1 losses the
    exact binomial p-value is never larger; this one is offered for comparison. For losses anywhere
    in [0, 1] (e.g. a share per case) use :func:`~failpath.stats.p_value_bounded_mean`, the same
    formula. Accepts arrays.
    """
    level = as_probability(max_risk, "max_risk")
    errors, trials = _whole_counts(n_errors, n_trials)
    value = _hb_p_value(errors, trials, level)
    return float(value) if value.ndim == 0 else value


# long: a 31-line docstring on the guarantee; the body checks the inputs, then runs the one Learn-then-Test procedure
def select_threshold(
    confidence: Any,
    correct: Any,
    *,
    max_risk: float,
    delta: float | None,
    grid: Sequence[float] | None = None,
    method: Method = "holm",
    risk: Risk = "selective",
    start: float | None = None,
    p_value: PValue = "binomial",
    split_fraction: float = 0.5,
    seed: int | None = 0,
) -> ThresholdResult:
    """Choose the confidence threshold with the most coverage whose risk is certified <= ``max_risk``.

    Definitions (answer when ``confidence >= t``):

    * ``risk="selective"``: errors among answered / answered; the p-value at ``t`` is
      ``P[Binomial(n_answered(t), max_risk) <= n_errors(t)]`` (1 when nothing is answered).
    * ``risk="joint"``: errors among answered / all requests; p-value
      ``P[Binomial(n, max_risk) <= n_errors(t)]``.
    * ``grid``: thresholds fixed in advance, strictly decreasing (default 1.00, 0.99, ..., 0.00;
      see :func:`threshold_grid`). Only grid thresholds can be chosen.

    Family-wise error control at ``delta`` (``method``):

    * ``"holm"`` (default): Holm's step-down on all grid p-values.
    * ``"bonferroni"``: certify ``t`` when ``p(t) <= delta / len(grid)``.
    * ``"fixed_sequence"``: walk the grid from ``start`` (default: its first, highest threshold)
      downwards, certifying while ``p(t) <= delta``; stop at the first failure. With selective
      risk, a start that answers (almost) nothing fails at once (p = 1 with nothing answered):
      start where there is data, or use ``"split_fixed_sequence"``.
    * ``"split_fixed_sequence"``: shuffle the items (``seed``), use the first ``split_fraction`` of
      them only to pick ``start`` as the grid threshold with the smallest p-value there (the highest
      one on ties), then run ``fixed_sequence`` from that start on the remaining items alone; the
      counts, coverage and p-value reported are those of the testing part.
    * ``"crc"``: conformal risk control of the *expected* joint risk (``risk="joint"`` only;
      ``delta`` unused, pass None): the lowest grid ``t`` such that every grid threshold ``>= t`` has
      ``n/(n+1) * joint_risk + 1/(n+1) <= max_risk``.

    The chosen threshold is the lowest certified one. If none is certified the result has
    ``threshold=inf`` (never answer), ``certified=False`` and coverage 0; see
    :meth:`ThresholdResult.summary`.
    """
    scores, right = as_pair(confidence, correct)
    target = as_probability(max_risk, "max_risk")
    if method not in _METHODS:
        raise StatsInputError(f"method must be one of {', '.join(_METHODS)}; got {method!r}")
    if risk not in ("selective", "joint"):
        raise StatsInputError(f"risk must be 'selective' or 'joint', got {risk!r}")
    thresholds = _checked_grid(grid)
    if delta is not None:
        as_probability(delta, "delta")
    if method == "crc":
        if risk != "joint":
            raise StatsInputError(
                "method='crc' controls an expected loss that falls as the threshold rises: use it "
                "with risk='joint' (selective risk is neither an expectation nor monotone; use an "
                "LTT method such as 'holm' for it)"
            )
        return _conformal_risk_control(scores, right, thresholds, target)
    level = as_probability(delta, "delta") if delta is not None else _missing_delta(method)
    if p_value not in ("binomial", "hoeffding_bentkus"):
        raise StatsInputError(f"p_value must be 'binomial' or 'hoeffding_bentkus', got {p_value!r}")
    if start is not None and method != "fixed_sequence":
        raise StatsInputError(f"start is only used by method='fixed_sequence', not {method!r}")

    if method == "split_fixed_sequence":
        fraction = as_probability(split_fraction, "split_fraction")
        order = np.random.default_rng(seed).permutation(scores.size)
        cut = int(math.floor(fraction * scores.size))
        if cut == 0 or cut == scores.size:
            raise StatsInputError(
                f"split_fraction={split_fraction} leaves one part of the {scores.size} items empty"
            )
        picking, testing = order[:cut], order[cut:]
        pick_answered, pick_errors = _grid_counts(scores[picking], right[picking], thresholds)
        pick_p = _p_values(pick_answered, pick_errors, picking.size, target, risk, p_value)
        start_index = int(np.argmin(pick_p))
        scores, right = scores[testing], right[testing]
    else:
        start_index = _start_index(thresholds, start)

    n = scores.size
    answered, errors = _grid_counts(scores, right, thresholds)
    p_values = _p_values(answered, errors, n, target, risk, p_value)
    if method == "holm":
        certified = _holm(p_values, level)
    elif method == "bonferroni":
        certified = p_values <= level / thresholds.size
    else:
        certified = _fixed_sequence(p_values, level, start_index)

    chosen = np.flatnonzero(certified)
    base = dict(
        method=method,
        delta=level,
        max_risk=target,
        risk=risk,
        n=n,
        grid=tuple(float(t) for t in thresholds),
        p_values=tuple(float(p) for p in p_values),
        certified_thresholds=tuple(float(t) for t in thresholds[chosen]),
    )
    if chosen.size == 0:
        return ThresholdResult(
            threshold=math.inf, certified=False, coverage=0.0, n_answered=0, n_errors=0,
            p_value=None, risk_upper_bound=0.0, **base,
        )
    best = int(chosen[-1])
    trials = int(answered[best]) if risk == "selective" else n
    return ThresholdResult(
        threshold=float(thresholds[best]),
        certified=True,
        coverage=float(answered[best] / n),
        n_answered=int(answered[best]),
        n_errors=int(errors[best]),
        p_value=float(p_values[best]),
        risk_upper_bound=_upper_bound(int(errors[best]), trials, level / thresholds.size),
        **base,
    )


# long: a 25-line docstring on the per-case guarantee; the body is the same Learn-then-Test steps as select_threshold
def select_threshold_by_case(
    confidence: Any,
    correct: Any,
    case_index: Any,
    *,
    max_risk: float,
    delta: float,
    grid: Sequence[float] | None = None,
    method: CaseMethod = "holm",
    risk: Risk = "selective",
    start: float | None = None,
) -> ThresholdResult:
    """Learn-then-Test with the case as the independent unit: for requests that share their case's difficulty.

    ``confidence[j]``, ``correct[j]`` and ``case_index[j]`` describe request ``j`` (several
    requests per case, e.g. its variants). Requests of one case are correlated, so each case gives
    one loss in [0, 1] per grid threshold ``t``, from its ``m`` requests, ``A(t)`` of them answered
    (``confidence >= t``) and ``W(t)`` answered and wrong:

    * ``risk="joint"``: loss ``W(t) / m``; the estimand is the mean over cases of each case's
      answered-and-wrong share (every case weighted equally).
    * ``risk="selective"``: each case with at least one answered request gives the loss
      ``W(t) / A(t)``, the share of its answered requests that are wrong; the estimand is the mean
      of that share over the cases with something answered, every such case weighted equally
      (a case with one answered request counts as much as one with thirty). Given how many cases
      have something answered, they are i.i.d. draws of such cases, so the test stays exact.

    The p-value at ``t`` is the Hoeffding–Bentkus one of the mean of those losses over the cases
    (:func:`~failpath.stats.p_value_bounded_mean`), valid however strongly a case's requests are
    correlated. ``method`` is ``"holm"`` (default), ``"bonferroni"`` or ``"fixed_sequence"`` (from
    ``start``, default the grid's first threshold), as in :func:`select_threshold`; with
    probability at least ``1 - delta`` every certified threshold has true risk <= ``max_risk``.
    The result has the shape of :func:`select_threshold`'s, plus ``n_cases``; its
    ``risk_upper_bound`` is the Hoeffding–Bentkus bound on the chosen threshold's case-weighted
    risk at level ``delta / len(grid)``. Use this one, not :func:`select_threshold`, whenever a
    case has more than one request.
    """
    scores, right = as_pair(confidence, correct)
    inverse = _case_inverse(case_index, scores.size)
    target = as_probability(max_risk, "max_risk")
    level = as_probability(delta, "delta")
    if method not in ("holm", "bonferroni", "fixed_sequence"):
        raise StatsInputError(f"method must be one of holm, bonferroni, fixed_sequence; got {method!r}")
    if risk not in ("selective", "joint"):
        raise StatsInputError(f"risk must be 'selective' or 'joint', got {risk!r}")
    if start is not None and method != "fixed_sequence":
        raise StatsInputError(f"start is only used by method='fixed_sequence', not {method!r}")
    thresholds = _checked_grid(grid)
    start_index = _start_index(thresholds, start)

    answered, errors = _case_grid_counts(scores, right, inverse, thresholds)
    requests = np.bincount(inverse)[:, None].astype(float)
    p_values = _case_p_values(answered, errors, requests, target, risk)
    if method == "holm":
        certified = _holm(p_values, level)
    elif method == "bonferroni":
        certified = p_values <= level / thresholds.size
    else:
        certified = _fixed_sequence(p_values, level, start_index)

    chosen = np.flatnonzero(certified)
    base = dict(
        method=method,
        delta=level,
        max_risk=target,
        risk=risk,
        n=int(scores.size),
        n_cases=int(requests.size),
        grid=tuple(float(t) for t in thresholds),
        p_values=tuple(float(p) for p in p_values),
        certified_thresholds=tuple(float(t) for t in thresholds[chosen]),
    )
    if chosen.size == 0:
        return ThresholdResult(
            threshold=math.inf, certified=False, coverage=0.0, n_answered=0, n_errors=0,
            p_value=None, risk_upper_bound=0.0, **base,
        )
    best = int(chosen[-1])
    return ThresholdResult(
        threshold=float(thresholds[best]),
        certified=True,
        coverage=float(np.mean(answered[:, best] / requests[:, 0])),
        n_answered=int(answered[:, best].sum()),
        n_errors=int(errors[:, best].sum()),
        p_value=float(p_values[best]),
        risk_upper_bound=_case_risk_upper_bound(
            answered[:, best], errors[:, best], requests[:, 0], risk, level / thresholds.size
        ),
        **base,
    )


# --------------------------------------------------------------------------- internals


def _conformal_risk_control(
    scores: np.ndarray, right: np.ndarray, thresholds: np.ndarray, target: float
) -> ThresholdResult:
    n = scores.size
    answered, errors = _grid_counts(scores, right, thresholds)
    bound = (n / (n + 1.0)) * (errors / n) + 1.0 / (n + 1.0)
    passing = bound <= target
    # Every threshold from the top of the grid down to the chosen one must pass.
    run = int(np.argmin(passing)) if not passing.all() else passing.size
    base = dict(
        method="crc", delta=None, max_risk=target, risk="joint", n=n,
        grid=tuple(float(t) for t in thresholds), p_values=(),
        certified_thresholds=tuple(float(t) for t in thresholds[:run]),
    )
    if run == 0:
        return ThresholdResult(
            threshold=math.inf, certified=False, coverage=0.0, n_answered=0, n_errors=0,
            p_value=None, risk_upper_bound=0.0, **base,
        )
    best = run - 1
    return ThresholdResult(
        threshold=float(thresholds[best]), certified=True, coverage=float(answered[best] / n),
        n_answered=int(answered[best]), n_errors=int(errors[best]), p_value=None,
        risk_upper_bound=float(bound[best]), **base,
    )


def _checked_grid(grid: Sequence[float] | None) -> np.ndarray:
    if grid is None:
        return np.asarray(threshold_grid())
    thresholds = as_scores(grid, "grid")
    steps = np.diff(thresholds)
    if np.any(steps >= 0):
        position = int(np.flatnonzero(steps >= 0)[0]) + 1
        raise StatsInputError(
            f"grid must be strictly decreasing (most conservative threshold first); "
            f"grid[{position}] = {thresholds[position].item()!r} follows {thresholds[position - 1].item()!r}"
        )
    return thresholds


def _grid_counts(
    scores: np.ndarray, right: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Answered and error counts at each grid threshold (``confidence >= t``)."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    wrong_after = np.concatenate([np.cumsum((~right[order])[::-1])[::-1], [0]])
    first = np.searchsorted(sorted_scores, thresholds, side="left")
    return scores.size - first, wrong_after[first]


def _p_values(
    answered: np.ndarray, errors: np.ndarray, n: int, target: float, risk: str, kind: str
) -> np.ndarray:
    trials = answered if risk == "selective" else np.full_like(answered, n)
    compute = p_value_binomial if kind == "binomial" else p_value_hoeffding_bentkus
    return np.asarray(compute(errors, trials, target), dtype=float)


def _holm(p_values: np.ndarray, level: float) -> np.ndarray:
    m = p_values.size
    order = np.argsort(p_values, kind="stable")
    passes = p_values[order] <= level / (m - np.arange(m))
    n_rejected = int(np.argmin(passes)) if not passes.all() else m
    certified = np.zeros(m, dtype=bool)
    certified[order[:n_rejected]] = True
    return certified


def _fixed_sequence(p_values: np.ndarray, level: float, start_index: int) -> np.ndarray:
    passes = p_values[start_index:] <= level
    run = int(np.argmin(passes)) if not passes.all() else passes.size
    certified = np.zeros(p_values.size, dtype=bool)
    certified[start_index : start_index + run] = True
    return certified


def _start_index(thresholds: np.ndarray, start: float | None) -> int:
    if start is None:
        return 0
    matches = np.flatnonzero(np.isclose(thresholds, float(start), rtol=0.0, atol=1e-9))
    if matches.size == 0:
        raise StatsInputError(
            f"start={start!r} is not a threshold of the grid ({thresholds[0]:g} ... {thresholds[-1]:g}); "
            "fixed-sequence testing must start on a grid threshold"
        )
    return int(matches[0])


def _upper_bound(k: int, n: int, alpha: float) -> float:
    if n == 0:
        return 0.0
    from failpath.stats.intervals import clopper_pearson

    return float(clopper_pearson(k, n, alpha, alternative="upper").high)


def _whole_counts(n_errors: Any, n_trials: Any) -> tuple[np.ndarray, np.ndarray]:
    errors, trials = np.asarray(n_errors), np.asarray(n_trials)
    for name, values in (("n_errors", errors), ("n_trials", trials)):
        if values.dtype == bool or not np.issubdtype(values.dtype, np.number) or np.any(values < 0) \
                or np.any(np.asarray(values, dtype=float) % 1 != 0):
            raise StatsInputError(f"{name} must be non-negative whole numbers, got {values!r}")
    if np.any(errors > trials):
        raise StatsInputError(f"n_errors must not exceed n_trials, got {n_errors!r} > {n_trials!r}")
    return errors.astype(np.int64), trials.astype(np.int64)


def _missing_delta(method: str) -> float:
    raise StatsInputError(
        f"method={method!r} needs delta, the allowed probability that the guarantee fails (e.g. 0.05)"
    )


def _decimals(value: float) -> int:
    text = repr(float(value))
    if "e" in text:
        raise StatsInputError(f"grid values need a plain decimal form, got {value!r}")
    return len(text.split(".")[1].rstrip("0")) if "." in text else 0


def _case_inverse(case_index: Any, n: int) -> np.ndarray:
    cases = np.asarray(case_index)
    if cases.ndim != 1:
        raise StatsInputError(f"case_index must be one-dimensional, got shape {cases.shape}")
    if cases.size != n:
        raise StatsInputError(
            f"case_index has {cases.size} values but confidence has {n}: give each request's case"
        )
    try:
        return np.unique(cases, return_inverse=True)[1].reshape(-1)
    except TypeError:
        raise StatsInputError("case_index values must be comparable (all ids, or all numbers)") from None


def _case_grid_counts(
    scores: np.ndarray, right: np.ndarray, inverse: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per case (rows) and grid threshold (columns): requests answered, and answered and wrong."""
    size = thresholds.size
    # A request is answered from the first (highest) grid threshold at or below its confidence on.
    first = size - np.searchsorted(thresholds[::-1], scores, side="right")
    n_cases = int(inverse.max()) + 1
    cell = inverse * (size + 1) + first
    answered = np.bincount(cell, minlength=n_cases * (size + 1)).reshape(n_cases, size + 1)
    wrong = np.bincount(cell, weights=~right, minlength=n_cases * (size + 1)).reshape(n_cases, size + 1)
    return np.cumsum(answered, axis=1)[:, :size], np.cumsum(wrong, axis=1)[:, :size].astype(np.int64)


def _case_p_values(
    answered: np.ndarray, errors: np.ndarray, requests: np.ndarray, target: float, risk: str
) -> np.ndarray:
    """Hoeffding–Bentkus p-values per grid threshold from per-case counts (cases on axis -2)."""
    if risk == "joint":
        n_cases = np.asarray(answered.shape[-2])
        total = np.sum(errors / requests, axis=-2)
    else:
        # The cases with an answered request: given how many there are, they are i.i.d. draws of
        # such cases, each with the loss "share of its answered requests that are wrong".
        some = answered > 0
        n_cases = np.count_nonzero(some, axis=-2)
        total = np.sum(np.where(some, errors / np.maximum(answered, 1), 0.0), axis=-2)
    return _hb_p_value(total, n_cases, target)


def _case_risk_upper_bound(
    answered: np.ndarray, errors: np.ndarray, requests: np.ndarray, risk: str, alpha: float
) -> float:
    """Hoeffding–Bentkus upper bound at level ``1 - alpha`` on a threshold's case-weighted risk."""
    if risk == "joint":
        return float(_hb_upper_bound(np.asarray(float(np.sum(errors / requests))), np.asarray(requests.size), alpha))
    some = answered > 0
    n_some = int(np.count_nonzero(some))
    if n_some == 0:
        return 0.0
    wrong_share = float(np.sum(errors[some] / answered[some]))
    return float(_hb_upper_bound(np.asarray(wrong_share), np.asarray(n_some), alpha))
