"""Confidence intervals: exact binomial bounds, the bootstrap, and the clean-vs-chaos gap."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Callable, Literal

import numpy as np

from failpath.stats._inputs import StatsInputError, as_correct, as_probability
from failpath.stats._special import binomial_p_for_cdf, binomial_p_for_sf

__all__ = [
    "FEW_FLIPS",
    "Interval",
    "Gap",
    "clopper_pearson",
    "binomial_upper_bound",
    "bootstrap_ci",
    "paired_gap",
]


_BATCH_ELEMENTS = 2_000_000
_NORMAL = NormalDist()

#: Below this many flipped cases (per-case differences other than 0) the bootstrap of the paired
#: gap cannot see the uncertainty it has not sampled (no flip resamples to no flip), so
#: :func:`paired_gap` widens its interval to contain an exact one.
FEW_FLIPS = 10


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval ``[low, high]`` at level ``confidence``."""

    estimate: float
    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class Gap:
    """Clean accuracy minus accuracy under a perturbation, paired by case.

    ``estimate`` = mean(clean_correct) - mean(chaos_correct); ``[low, high]`` is a paired bootstrap
    interval at level ``confidence``, widened to contain the exact interval when few cases flipped
    (``widened`` is then True; see :func:`paired_gap`); ``n`` is the number of cases;
    ``flip_rate`` is the share of cases whose correctness changed (right->wrong or wrong->right).
    """

    estimate: float
    low: float
    high: float
    n: int
    flip_rate: float
    confidence: float = 0.95
    widened: bool = False


def clopper_pearson(
    k: Any,
    n: Any,
    alpha: float = 0.05,
    *,
    alternative: Literal["two-sided", "upper", "lower"] = "two-sided",
) -> Interval:
    """Exact (Clopper–Pearson) confidence interval for a binomial proportion ``k / n``.

    ``alternative="two-sided"``: ``[Beta(alpha/2; k, n-k+1), Beta(1-alpha/2; k+1, n-k)]``, with
    low = 0 when k = 0 and high = 1 when k = n. ``"upper"``: a one-sided bound,
    ``[0, Beta(1-alpha; k+1, n-k)]`` (the rate is at most ``high`` with confidence ``1 - alpha``).
    ``"lower"``: ``[Beta(alpha; k, n-k+1), 1]``. ``k`` and ``n`` may be arrays (broadcast); the
    interval's fields are then arrays. With n = 0 the interval is [0, 1] and the estimate NaN.
    """
    level = as_probability(alpha, "alpha")
    successes, trials = _counts(k, n)
    if alternative == "two-sided":
        tail = level / 2.0
    elif alternative in ("upper", "lower"):
        tail = level
    else:
        raise StatsInputError(f"alternative must be 'two-sided', 'upper' or 'lower', got {alternative!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = np.where(trials > 0, successes / np.maximum(trials, 1), np.nan)
        # The Beta quantiles of the interval, for whole k and n: Beta(tail; k, n-k+1) is the p with
        # P[Binomial(n, p) >= k] = tail, and Beta(1-tail; k+1, n-k) the p with P[Binomial(n, p) <= k] = tail.
        low = np.where(successes > 0, binomial_p_for_sf(successes, trials, tail), 0.0)
        high = np.where(successes < trials, binomial_p_for_cdf(successes, trials, tail), 1.0)
    if alternative == "upper":
        low = np.zeros_like(high)
    elif alternative == "lower":
        high = np.ones_like(low)
    return Interval(
        estimate=_scalar(estimate), low=_scalar(low), high=_scalar(high), confidence=1.0 - level
    )


def binomial_upper_bound(k: Any, n: Any, confidence: float = 0.95) -> Any:
    """One-sided exact upper confidence bound for a rate observed as ``k`` events in ``n`` trials.

    The largest ``p`` with ``P[Binomial(n, p) <= k] >= 1 - confidence`` (the Clopper–Pearson upper
    bound at ``alpha = 1 - confidence``): with the stated confidence the true rate is at most this.
    Use it for e.g. the silent-failure rate: ``binomial_upper_bound(n_silent, n_requests)``.
    Returns 1.0 when ``n == 0`` (nothing observed, nothing excluded). Accepts arrays.
    """
    level = as_probability(confidence, "confidence")
    return clopper_pearson(k, n, 1.0 - level, alternative="upper").high


def bootstrap_ci(
    statistic: Callable[..., Any],
    *arrays: Any,
    n_resamples: int = 9999,
    confidence: float = 0.95,
    seed: int | np.random.Generator | None = None,
    paired: bool = True,
    method: Literal["BCa", "percentile", "basic"] = "BCa",
) -> Interval:
    """Bootstrap confidence interval of ``statistic(*arrays)``, two-sided at level ``confidence``.

    ``statistic`` takes one array per sample and returns a number; if it also accepts an ``axis``
    keyword (like ``numpy.mean``) it is called once per batch of resamples, which is much faster.
    With ``paired=True`` the arrays must have equal length and are resampled together, index by
    index (the right choice when the i-th entries describe the same case); otherwise each array is
    resampled on its own. ``method``: ``"percentile"`` takes the ``(1 - confidence) / 2`` and
    ``(1 + confidence) / 2`` quantiles (numpy's linear interpolation) of the ``n_resamples``
    resampled statistics; ``"basic"`` reflects them about the estimate; ``"BCa"`` (default)
    shifts the quantiles by the bias correction (the share of resampled statistics below the
    estimate, ties counting half) and the jackknife acceleration (Efron and Tibshirani 1993,
    14.3; for several unpaired arrays each is jackknifed in turn), as ``scipy.stats.bootstrap``
    does. When every resample gives the same value (e.g. all cases right) the interval collapses
    to ``[estimate, estimate]``. ``seed`` makes the result reproducible.
    """
    level = as_probability(confidence, "confidence")
    if not arrays:
        raise StatsInputError("bootstrap_ci needs at least one array after the statistic")
    samples = tuple(np.asarray(a, dtype=float) for a in arrays)
    for position, sample in enumerate(samples):
        if sample.ndim != 1 or sample.size < 2:
            raise StatsInputError(
                f"array {position} must be one-dimensional with at least 2 values, got shape {sample.shape}"
            )
    if paired and len({s.size for s in samples}) > 1:
        raise StatsInputError(
            f"paired=True needs arrays of equal length, got lengths {[s.size for s in samples]}"
        )
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise StatsInputError(f"n_resamples must be a positive whole number, got {n_resamples!r}")
    if method not in ("BCa", "percentile", "basic"):
        raise StatsInputError(f"method must be 'BCa', 'percentile' or 'basic', got {method!r}")
    compute = _batched(statistic)
    estimate = float(statistic(*samples))
    rng = np.random.default_rng(seed)
    # Bounds memory to about 16 MB per batch of resamples (and of jackknife samples for BCa).
    batch = max(1, _BATCH_ELEMENTS // max(s.size for s in samples))
    distribution = np.concatenate([
        compute(*_resample(samples, min(batch, n_resamples - done), paired, rng))
        for done in range(0, int(n_resamples), batch)
    ])
    if np.ptp(distribution) == 0.0:
        return Interval(estimate=estimate, low=estimate, high=estimate, confidence=level)
    tail = (1.0 - level) / 2.0
    if method == "BCa":
        with np.errstate(invalid="ignore", divide="ignore"):
            quantiles = _bca_quantiles(distribution, estimate, _acceleration(samples, compute, paired, batch), tail)
    else:
        quantiles = np.array([tail, 1.0 - tail])
    if not np.all(np.isfinite(quantiles)):
        raise StatsInputError(
            f"the {method} bootstrap interval is undefined for this data; try method='percentile'"
        )
    low, high = (float(v) for v in np.quantile(distribution, quantiles))
    if method == "basic":
        low, high = 2.0 * estimate - high, 2.0 * estimate - low
    return Interval(estimate=estimate, low=low, high=high, confidence=level)


def _batched(statistic: Callable[..., Any]) -> Callable[..., np.ndarray]:
    """``statistic`` applied to a batch of resamples (one per row), vectorised when it takes ``axis``."""
    try:
        vectorised = "axis" in inspect.signature(statistic).parameters
    except (TypeError, ValueError):
        vectorised = False
    if vectorised:
        return lambda *batch: np.asarray(statistic(*batch, axis=-1), dtype=float).reshape(-1)
    return lambda *batch: np.array([float(statistic(*rows)) for rows in zip(*batch)])


def _resample(
    samples: tuple[np.ndarray, ...], size: int, paired: bool, rng: np.random.Generator
) -> list[np.ndarray]:
    """``size`` bootstrap resamples of each sample, one per row (shared rows of indices when paired)."""
    if paired:
        index = rng.integers(0, samples[0].size, (size, samples[0].size))
        return [sample[index] for sample in samples]
    return [sample[rng.integers(0, sample.size, (size, sample.size))] for sample in samples]


def _acceleration(
    samples: tuple[np.ndarray, ...], compute: Callable[..., np.ndarray], paired: bool, batch: int
) -> float:
    """BCa acceleration from the jackknife: ``sum U^3 / (6 * (sum U^2)^1.5)`` with per-sample scaling."""
    numerator = denominator = 0.0
    # Paired samples are jackknifed together (leave case i out of all); unpaired ones in turn.
    groups = [tuple(range(len(samples)))] if paired else [(j,) for j in range(len(samples))]
    for group in groups:
        n = samples[group[0]].size
        values = []
        for first in range(0, n, batch):
            rows = np.arange(first, min(first + batch, n))
            keep = np.arange(n)[None, :] != rows[:, None]
            index = np.broadcast_to(np.arange(n), keep.shape)[keep].reshape(rows.size, n - 1)
            values.append(compute(*[
                sample[index] if j in group else np.broadcast_to(sample, (rows.size, sample.size))
                for j, sample in enumerate(samples)
            ]))
        leave_one_out = np.concatenate(values)
        influence = (n - 1) * (leave_one_out.mean() - leave_one_out)
        numerator += float(np.sum(influence**3)) / n**3
        denominator += float(np.sum(influence**2)) / n**2
    if denominator == 0.0:
        return float("nan")  # every jackknife value equal: the acceleration is undefined
    return numerator / 6.0 / denominator**1.5


def _bca_quantiles(distribution: np.ndarray, estimate: float, acceleration: float, tail: float) -> np.ndarray:
    """The two quantile levels of the BCa interval (NaN when the bias correction is infinite)."""
    below = (np.count_nonzero(distribution < estimate) + np.count_nonzero(distribution <= estimate)) / (
        2 * distribution.size
    )
    if not 0.0 < below < 1.0:
        return np.array([np.nan, np.nan])
    bias = np.float64(_NORMAL.inv_cdf(below))
    z = np.float64(_NORMAL.inv_cdf(tail))
    with np.errstate(invalid="ignore", divide="ignore"):
        shifted = [bias + (bias + zz) / (1.0 - np.float64(acceleration) * (bias + zz)) for zz in (z, -z)]
    return np.array([_NORMAL.cdf(v) if np.isfinite(v) else np.nan for v in shifted])


def paired_gap(
    clean_correct: Any,
    chaos_correct: Any,
    *,
    seed: int | np.random.Generator | None = None,
    confidence: float = 0.95,
    n_resamples: int = 9999,
) -> Gap:
    """The clean-vs-chaos gap: clean accuracy minus accuracy under a perturbation, paired by case.

    ``clean_correct[i]`` is the correctness (bool or 0/1) of case ``i`` without the perturbation;
    ``chaos_correct[i]`` its correctness with it, or, when the case has several perturbed variants,
    the share of them answered right (a number in [0, 1]). ``estimate = mean(clean) - mean(chaos)``
    (positive: the perturbation hurts). The interval is a BCa bootstrap over cases (each resample
    keeps a case's two outcomes together) of the mean per-case difference ``d_i`` in [-1, 1].
    ``flip_rate`` = share of cases whose ``d_i`` is not 0 (with 0/1 values: whose correctness
    changed). Needs at least 2 cases.

    Few flips: a bootstrap cannot show uncertainty it has not sampled (with no flip every resample
    has none, and the interval would be the point ``[0, 0]``), so when fewer than ``FEW_FLIPS``
    cases have ``d_i != 0``, or every ``d_i`` is the same, the interval is widened to contain an
    exact one, and ``widened`` is True. The gap is ``E[b] - E[f]`` with ``b_i = max(d_i, 0)`` (broke) and ``f_i = max(-d_i, 0)``
    (fixed); the exact interval is ``[L_b - U_f, U_b - L_f]`` from one-sided bounds on those two
    means, each at ``(1 - confidence) / 4``: Clopper–Pearson when every ``d_i`` is -1, 0 or 1,
    Hoeffding–Bentkus otherwise. By the union bound it covers with probability at least
    ``confidence`` for any sample size. No finite sample gives a zero-width interval.

    A resample is drawn as multinomial counts of the distinct values of ``d_i``, which has exactly
    the distribution of resampling cases with replacement but costs nothing per case; the BCa bias
    correction and acceleration (jackknife) are the closed forms of the general ones
    (:func:`bootstrap_ci`) for a mean. In the rare event that BCa is undefined (all resamples on
    one side of the estimate) the percentile interval is used.
    """
    clean = as_correct(clean_correct, "clean_correct")
    chaos = _as_shares(chaos_correct, "chaos_correct")
    if clean.size != chaos.size:
        raise StatsInputError(
            f"clean_correct has {clean.size} cases but chaos_correct has {chaos.size}: "
            "the gap is paired by case, so both must list the same cases in the same order"
        )
    if clean.size < 2:
        raise StatsInputError("paired_gap needs at least 2 cases for an interval")
    level = as_probability(confidence, "confidence")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise StatsInputError(f"n_resamples must be a positive whole number, got {n_resamples!r}")
    difference = clean.astype(float) - chaos
    estimate, low, high = _bca_mean_of_few_values(difference, int(n_resamples), level, np.random.default_rng(seed))
    changed = int(np.count_nonzero(difference))
    widened = changed < FEW_FLIPS or np.ptp(difference) == 0.0
    if widened:
        exact_low, exact_high = _exact_gap_interval(difference, 1.0 - level)
        low, high = min(low, exact_low), max(high, exact_high)
    return Gap(
        estimate=estimate,
        low=low,
        high=high,
        n=int(clean.size),
        flip_rate=changed / clean.size,
        confidence=level,
        widened=widened,
    )


def _exact_gap_interval(difference: np.ndarray, alpha: float) -> tuple[float, float]:
    """``[L_broke - U_fixed, U_broke - L_fixed]``, each one-sided bound at ``alpha / 4``."""
    n = difference.size
    broke, fixed = np.maximum(difference, 0.0), np.maximum(-difference, 0.0)
    if np.all(np.isin(difference, (-1.0, 0.0, 1.0))):
        broke_bounds = clopper_pearson(int(broke.sum()), n, alpha / 2.0)
        fixed_bounds = clopper_pearson(int(fixed.sum()), n, alpha / 2.0)
        return broke_bounds.low - fixed_bounds.high, broke_bounds.high - fixed_bounds.low
    from failpath.stats.bounds import _hb_upper_bound

    def upper(values: np.ndarray) -> float:
        return float(_hb_upper_bound(np.asarray(values.sum()), np.asarray(n), alpha / 4.0))

    return (1.0 - upper(1.0 - broke)) - upper(fixed), upper(broke) - (1.0 - upper(1.0 - fixed))


def _bca_mean_of_few_values(
    values: np.ndarray, n_resamples: int, level: float, rng: np.random.Generator
) -> tuple[float, float, float]:
    """(estimate, low, high): two-sided BCa bootstrap interval of the mean of ``values``."""
    distinct, counts = np.unique(values, return_counts=True)
    n = values.size
    estimate = float(counts @ distinct) / n
    if distinct.size == 1:
        return estimate, estimate, estimate
    batch = max(1, _BATCH_ELEMENTS // distinct.size)
    resampled = np.concatenate([
        (rng.multinomial(n, counts / n, size=min(batch, n_resamples - done)) @ distinct) / n
        for done in range(0, n_resamples, batch)
    ])
    # Acceleration: for a mean the jackknife influence values are d_i - mean.
    deviation = distinct - estimate
    acceleration = float(counts @ deviation**3) / 6.0 / float(counts @ deviation**2) ** 1.5
    tail = (1.0 - level) / 2.0
    quantiles = _bca_quantiles(resampled, estimate, acceleration, tail)
    if not np.all(np.isfinite(quantiles)):
        quantiles = np.array([tail, 1.0 - tail])
    low, high = np.quantile(resampled, quantiles)
    return estimate, float(low), float(high)


def _as_shares(values: Any, name: str) -> np.ndarray:
    """Per-case correctness as floats in [0, 1]: booleans, 0/1, or a share of variants answered right."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise StatsInputError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise StatsInputError(f"{name} is empty: at least one value is needed")
    try:
        numbers = array.astype(float)
    except (TypeError, ValueError):
        raise StatsInputError(f"{name} must hold booleans, 0/1 or shares in [0, 1], got dtype {array.dtype}") from None
    bad = ~np.isfinite(numbers) | (numbers < 0.0) | (numbers > 1.0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise StatsInputError(
            f"{name}[{index}] = {array[index].item()!r}: give the case's correctness (True/False, 1/0) "
            "or, with several variants, the share of them answered right (a number in [0, 1])"
        )
    return numbers


def _counts(k: Any, n: Any) -> tuple[np.ndarray, np.ndarray]:
    successes = np.asarray(k)
    trials = np.asarray(n)
    for name, values in (("k", successes), ("n", trials)):
        if values.dtype == bool or not np.issubdtype(values.dtype, np.number):
            raise StatsInputError(f"{name} must be a whole number (or array of them), got {values!r}")
        if np.any(values < 0) or np.any(np.asarray(values, dtype=float) % 1 != 0):
            raise StatsInputError(f"{name} must be a non-negative whole number, got {values!r}")
    successes, trials = np.broadcast_arrays(successes.astype(float), trials.astype(float))
    if np.any(successes > trials):
        raise StatsInputError(f"k must not exceed n, got k={k!r}, n={n!r}")
    return successes, trials


def _scalar(value: np.ndarray) -> Any:
    return float(value) if np.ndim(value) == 0 else value
