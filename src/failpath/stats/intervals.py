"""Confidence intervals: exact binomial bounds, the bootstrap, and the clean-vs-chaos gap."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np

from failpath.stats._inputs import StatsInputError, as_correct, as_probability

__all__ = [
    "Interval",
    "Gap",
    "clopper_pearson",
    "binomial_upper_bound",
    "bootstrap_ci",
    "paired_gap",
]


_BATCH_ELEMENTS = 2_000_000


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
    interval at level ``confidence``; ``n`` is the number of cases; ``flip_rate`` is the share of
    cases whose correctness changed (right->wrong or wrong->right).
    """

    estimate: float
    low: float
    high: float
    n: int
    flip_rate: float
    confidence: float = 0.95


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
    from scipy.special import betaincinv  # the Beta quantile: betaincinv(a, b, q) == beta.ppf(q, a, b)

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
        low = np.where(successes > 0, betaincinv(successes, trials - successes + 1, tail), 0.0)
        high = np.where(successes < trials, betaincinv(successes + 1, trials - successes, 1.0 - tail), 1.0)
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
    """Bootstrap confidence interval of ``statistic(*arrays)`` (``scipy.stats.bootstrap``).

    ``statistic`` takes one array per sample and returns a number; if it also accepts an ``axis``
    keyword (like ``numpy.mean``) it is called vectorized, which is much faster. With
    ``paired=True`` the arrays must have equal length and are resampled together, index by index
    (the right choice when the i-th entries describe the same case). ``method`` is the interval
    construction (BCa by default). When every resample gives the same value (e.g. all cases right)
    the interval collapses to ``[estimate, estimate]``. ``seed`` makes the result reproducible.
    """
    from scipy.stats import bootstrap

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
    estimate = float(statistic(*samples))
    with warnings.catch_warnings():
        # Degenerate bootstrap distributions are handled below, not reported as warnings.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*degenerate.*")
        result = bootstrap(
            samples,
            statistic,
            n_resamples=int(n_resamples),
            paired=paired,
            confidence_level=level,
            method=method,
            rng=np.random.default_rng(seed),
            # Bounds memory to about 16 MB per batch of resamples (and of jackknife samples for BCa).
            batch=max(1, _BATCH_ELEMENTS // max(s.size for s in samples)),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    distribution = np.asarray(result.bootstrap_distribution, dtype=float)
    if np.ptp(distribution) == 0.0:
        low = high = estimate
    elif not (np.isfinite(low) and np.isfinite(high)):
        raise StatsInputError(
            f"the {method} bootstrap interval is undefined for this data; try method='percentile'"
        )
    return Interval(estimate=estimate, low=low, high=high, confidence=level)


def paired_gap(
    clean_correct: Any,
    chaos_correct: Any,
    *,
    seed: int | np.random.Generator | None = None,
    confidence: float = 0.95,
    n_resamples: int = 9999,
) -> Gap:
    """The clean-vs-chaos gap: clean accuracy minus accuracy under a perturbation, paired by case.

    ``clean_correct[i]`` and ``chaos_correct[i]`` are the correctness (bool or 0/1) of case ``i``
    without and with the perturbation. ``estimate = mean(clean) - mean(chaos)`` (positive: the
    perturbation hurts). The interval is a BCa bootstrap over cases (each resample keeps a case's
    two outcomes together) of the mean per-case difference ``d_i`` in {-1, 0, 1}; it collapses to
    a point when no case flipped. ``flip_rate`` = share of cases whose correctness changed.
    Needs at least 2 cases.

    Because ``d_i`` takes three values, a resample is drawn as multinomial counts of those values,
    which has exactly the distribution of resampling cases with replacement but costs nothing per
    case; the BCa bias correction and acceleration (jackknife) are the closed forms of
    ``scipy.stats.bootstrap``'s for a mean. In the rare event that BCa is undefined (all resamples
    on one side of the estimate) the percentile interval is returned.
    """
    clean = as_correct(clean_correct, "clean_correct")
    chaos = as_correct(chaos_correct, "chaos_correct")
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
    difference = clean.astype(float) - chaos.astype(float)
    estimate, low, high = _bca_mean_of_few_values(difference, int(n_resamples), level, np.random.default_rng(seed))
    return Gap(
        estimate=estimate,
        low=low,
        high=high,
        n=int(clean.size),
        flip_rate=float(np.mean(clean != chaos)),
        confidence=level,
    )


def _bca_mean_of_few_values(
    values: np.ndarray, n_resamples: int, level: float, rng: np.random.Generator
) -> tuple[float, float, float]:
    """(estimate, low, high): two-sided BCa bootstrap interval of the mean of ``values``."""
    from scipy.special import ndtr, ndtri

    distinct, counts = np.unique(values, return_counts=True)
    n = values.size
    estimate = float(counts @ distinct) / n
    if distinct.size == 1:
        return estimate, estimate, estimate
    draws = rng.multinomial(n, counts / n, size=n_resamples)
    resampled = (draws @ distinct) / n
    # Bias correction: scipy's "mean" percentile of the estimate among the resampled means.
    share_below = (np.count_nonzero(resampled < estimate) + np.count_nonzero(resampled <= estimate)) / (2 * n_resamples)
    # Acceleration: for a mean the jackknife influence values are d_i - mean.
    deviation = distinct - estimate
    acceleration = float(counts @ deviation**3) / 6.0 / float(counts @ deviation**2) ** 1.5
    tail = (1.0 - level) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        bias = ndtri(share_below)
        quantiles = [
            ndtr(bias + (bias + z) / (1.0 - acceleration * (bias + z))) for z in (ndtri(tail), -ndtri(tail))
        ]
    if not np.all(np.isfinite(quantiles)):
        quantiles = [tail, 1.0 - tail]
    low, high = np.quantile(resampled, quantiles)
    return estimate, float(low), float(high)


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
