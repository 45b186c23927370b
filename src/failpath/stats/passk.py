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
from typing import Any

import numpy as np

from failpath.stats._inputs import StatsInputError
from failpath.stats.bounds import BoundMethod, mean_upper_bound

__all__ = ["PassK", "pass_hat_k", "pass_k_lower_bound"]


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
    made = np.asarray(trials)
    passed = np.asarray(successes)
    if made.ndim != 1 or passed.ndim != 1 or made.size == 0 or made.size != passed.size:
        raise StatsInputError(
            f"successes and trials must be one-dimensional lists of the same non-zero length, got "
            f"{passed.size} and {made.size} values"
        )
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


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) and not (
        isinstance(value, (float, np.floating)) and float(value).is_integer()
    ):
        raise StatsInputError(f"{name} must be a whole number, got {value!r}")
    return int(value)
