"""pass^k for repeated trials: the chance that k independent trials of a case all succeed.

A stochastic system (an agent, a model sampled with temperature) is run ``n`` times per case; a case
passes ``c`` of them. Its pass^k is ``p^k`` for its success probability ``p``: the reliability a user
meets who needs it to work every time, k times in a row. ``C(c, k) / C(n, k)`` is the unbiased
estimate of ``p^k`` from those trials (the share of the k-subsets of its trials that all succeeded);
averaged over cases it estimates the suite's pass^k, and since cases are the independent draws, a
lower confidence bound over them is what a gate should read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from collections.abc import Sequence
from typing import Any

import numpy as np

from failpath.stats._inputs import StatsInputError
from failpath.stats.bounds import BoundMethod, mean_upper_bound

__all__ = ["PassK", "pass_hat_k", "pass_k_lower_bound", "pass_k_curve", "ShareGap", "paired_share_gap", "upper_bounds_of_means"]


@dataclass(frozen=True)
class PassK:
    """The suite's pass^k: ``estimate`` (mean over cases of ``C(c, k) / C(n, k)``) and ``lower_bound``.

    With probability at least ``confidence`` the mean over cases of their true pass^k is at least
    ``lower_bound``. ``n_cases`` cases, ``k`` trials that must all succeed; ``method`` is the bound
    used (see :func:`~failpath.stats.mean_upper_bound`).
    """

    estimate: float
    lower_bound: float
    confidence: float
    k: int
    n_cases: int
    method: str


def pass_hat_k(successes: int, trials: int, k: int) -> float:
    """Unbiased estimate of one case's pass^k: ``C(successes, k) / C(trials, k)``, exact.

    The share of the ``k``-subsets of the case's ``trials`` that are all successes; its expectation
    is ``p^k`` when the trials are independent with success probability ``p``. Computed with
    integers (``math.comb``) and rounded once. Needs ``0 <= successes <= trials`` and
    ``1 <= k <= trials``.
    """
    c, n, kk = (_whole(v, name) for v, name in ((successes, "successes"), (trials, "trials"), (k, "k")))
    if not 0 <= c <= n:
        raise StatsInputError(f"successes must be between 0 and trials, got successes={c}, trials={n}")
    if not 1 <= kk <= n:
        raise StatsInputError(
            f"k must be between 1 and the number of trials, got k={kk}, trials={n}: "
            "run each case at least k times"
        )
    return float(Fraction(math.comb(c, kk), math.comb(n, kk)))


def pass_k_lower_bound(
    successes: Any,
    trials: Any,
    k: int,
    confidence: float = 0.95,
    *,
    method: BoundMethod = "hoeffding_bentkus",
) -> PassK:
    """Lower confidence bound for the suite's pass^k, with the case as the independent unit.

    ``successes[i]`` of case ``i``'s ``trials[i]`` trials succeeded. Each case gives its unbiased
    :func:`pass_hat_k` in [0, 1]; the estimand is their mean's expectation, the mean over cases of
    each case's ``p^k``, every case weighted equally. The lower bound is ``1 -`` the upper bound of
    the mean of ``1 - pass_hat_k`` (:func:`~failpath.stats.mean_upper_bound`, valid for i.i.d.
    cases whatever their trials' count).
    """
    passed, made = _counts(successes, trials)
    estimates = np.array([pass_hat_k(c, n, k) for c, n in zip(passed.tolist(), made.tolist())])
    complement = mean_upper_bound(1.0 - estimates, confidence, method=method)
    return PassK(
        estimate=float(estimates.mean()),
        lower_bound=max(0.0, 1.0 - complement.bound),
        confidence=complement.confidence,
        k=int(k),
        n_cases=int(estimates.size),
        method=complement.method,
    )


def pass_k_curve(
    successes: Any,
    trials: Any,
    confidence: float = 0.95,
    *,
    method: BoundMethod = "hoeffding_bentkus",
) -> tuple[PassK, ...]:
    """:func:`pass_k_lower_bound` for every ``k`` from 1 to the fewest trials any case had, in order of ``k``.

    ``k = 1`` is pass@1 (the mean over cases of each case's share of successes). Each bound holds at
    ``confidence`` on its own; a gate reads one ``k`` chosen in advance.
    """
    made = np.asarray(trials)
    if made.ndim != 1 or made.size == 0:
        raise StatsInputError(f"trials must be a one-dimensional, non-empty list of counts, got {made.size} values")
    fewest = int(made.min())
    if method != "hoeffding_bentkus" or fewest < 1:
        return tuple(pass_k_lower_bound(successes, trials, k, confidence, method=method) for k in range(1, fewest + 1))
    # Hoeffding-Bentkus depends on the losses only through their sum: one vectorised bisection for every k
    # (pass_hat_k checks each count, upper_bounds_of_means the confidence).
    passed, made = _counts(successes, trials)
    counts = made.tolist()
    estimates = np.array([[pass_hat_k(c, n, k) for c, n in zip(passed.tolist(), counts)] for k in range(1, fewest + 1)])
    complements = upper_bounds_of_means([1.0 - row for row in estimates], confidence)
    return tuple(
        PassK(float(row.mean()), max(0.0, 1.0 - bound), float(confidence), k, int(row.size), "hoeffding_bentkus")
        for k, (row, bound) in enumerate(zip(estimates, complements), start=1)
    )


def _counts(successes: Any, trials: Any) -> tuple[np.ndarray, np.ndarray]:
    """``successes`` and ``trials`` as arrays, refused unless both are one-dimensional, non-empty and alike in length."""
    made = np.asarray(trials)
    passed = np.asarray(successes)
    if made.ndim != 1 or passed.ndim != 1 or made.size == 0 or made.size != passed.size:
        raise StatsInputError(
            f"successes and trials must be one-dimensional lists of the same non-zero length, got "
            f"{passed.size} and {made.size} values"
        )
    return passed, made


def upper_bounds_of_means(groups: Sequence[Any], confidence: float = 0.95) -> list[float]:
    """The Hoeffding-Bentkus upper bound (:func:`~failpath.stats.mean_upper_bound`) of the mean of each group
    of losses in [0, 1], computed together (one vectorised bisection, the same values one call each gives)."""
    from failpath.stats._inputs import as_probability
    from failpath.stats.bounds import _as_losses, _hb_upper_bound

    level = as_probability(confidence, "confidence")
    losses = [_as_losses(group) for group in groups]
    if not losses:
        return []
    totals = np.array([math.fsum(values.tolist()) for values in losses])  # exactly rounded, as mean_upper_bound
    sizes = np.array([values.size for values in losses])
    return [float(b) for b in _hb_upper_bound(totals, sizes, 1.0 - level)]


@dataclass(frozen=True)
class ShareGap:
    """``estimate`` = mean over cases of ``before - after`` (shares in [0, 1]), within ``[low, high]`` at ``confidence``."""

    estimate: float
    low: float
    high: float
    n_cases: int
    confidence: float


def paired_share_gap(before: Any, after: Any, confidence: float = 0.95) -> ShareGap:
    """The drop from ``before[i]`` to ``after[i]``, each case's share of successful trials, paired by case.

    The interval holds for any number of cases and any distribution: it is
    ``[L_down - U_up, U_down - L_up]`` for the means of ``down_i = max(d_i, 0)`` and ``up_i = max(-d_i, 0)``,
    ``d_i = before_i - after_i``, each one-sided Hoeffding-Bentkus bound at ``(1 - confidence) / 4`` (a
    union bound), with the case as the independent unit (Clopper-Pearson when every ``d_i`` is -1, 0 or 1).
    """
    from failpath.stats._inputs import as_probability
    from failpath.stats.intervals import _exact_gap_interval

    first, second = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if first.ndim != 1 or first.shape != second.shape or first.size == 0:
        raise StatsInputError(
            f"before and after must be one-dimensional lists of the same non-zero length (one share per case), got {first.size} and {second.size}"
        )
    if not (np.all((first >= 0) & (first <= 1)) and np.all((second >= 0) & (second <= 1))):
        raise StatsInputError("before and after must hold shares between 0 and 1")
    level = as_probability(confidence, "confidence")
    difference = first - second
    low, high = _exact_gap_interval(difference, 1.0 - level)
    return ShareGap(float(difference.mean()), max(-1.0, float(low)), min(1.0, float(high)), int(difference.size), level)


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) and not (
        isinstance(value, (float, np.floating)) and float(value).is_integer()
    ):
        raise StatsInputError(f"{name} must be a whole number, got {value!r}")
    return int(value)
