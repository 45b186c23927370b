"""Upper confidence bounds for the mean of bounded losses, and for rates counted over cases.

A check makes many requests per case (its variants), and they share the case's difficulty, so
requests are not independent draws; cases are. The sound way to bound a rate is then to give each
case one loss in [0, 1] (the share of its requests that failed) and bound the mean of those
independent, bounded losses. Two finite-sample bounds are offered:

* ``"hoeffding_bentkus"``: inverts the Hoeffding–Bentkus p-value of Bates et al. (2021),
  "Distribution-free, risk-controlling prediction sets", the one Learn-then-Test (Angelopoulos et
  al., 2021) uses for bounded losses. It depends on the losses only through their sum.
* ``"betting"``: the betting bound of Waudby-Smith and Ramdas (2023), "Estimating means of bounded
  random variables by betting": a capital process ``prod(1 + bet_i * (m - loss_i))`` with
  predictable plug-in bets tuned for ``n`` losses and capped at ``BET_CAP``. A candidate mean
  ``m`` is rejected when the final capital, averaged over ``BETTING_ORDERS`` seeded reorderings of
  the losses, reaches ``1 / (1 - confidence)`` (Markov's inequality: each reordering's capital is
  an e-value, and so is their average). Pass the losses in an order fixed before they were seen
  (e.g. by case id, as :func:`case_counts` does), never sorted by value; the averaging makes the
  bound depend little on that order. It adapts to the losses' variance, so it is tighter than
  Hoeffding–Bentkus when the losses sit in the middle of [0, 1]; for rare 0/1 failures it is
  wider.

Both hold for any distribution of losses in [0, 1], with no assumption of independence *within* a
case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np

from failpath.stats._inputs import StatsInputError, as_correct, as_probability
from failpath.stats._special import binomial_cdf, xlogy

__all__ = [
    "cases_needed",
    "MeanBound",
    "CaseCounts",
    "BET_CAP",
    "p_value_bounded_mean",
    "mean_upper_bound",
    "case_counts",
    "case_rate_upper_bound",
]

BoundMethod = Literal["hoeffding_bentkus", "betting"]
_BOUND_METHODS = ("hoeffding_bentkus", "betting")

#: The largest bet of the betting bound: the capital risks at most this share of itself on one
#: loss (Waudby-Smith and Ramdas suggest 1/2 or 3/4). Any value below 1 keeps the bound valid.
BET_CAP = 0.75

#: How many seeded orderings of the losses the betting bound averages its capital over.
BETTING_ORDERS = 64

_BISECTION_STEPS = 64


@dataclass(frozen=True)
class MeanBound:
    """An upper confidence bound for the mean of i.i.d. losses in [0, 1].

    ``estimate`` is the observed mean of the ``n`` losses; with probability at least
    ``confidence`` over the draw of the losses, the true mean is at most ``bound``. ``method``
    names the bound (``"hoeffding_bentkus"`` or ``"betting"``).
    """

    estimate: float
    bound: float
    confidence: float
    n: int
    method: str


@dataclass(frozen=True)
class CaseCounts:
    """Requests and failures per case: ``cases[i]`` made ``requests[i]`` requests, ``failures[i]`` failed."""

    cases: np.ndarray
    requests: np.ndarray
    failures: np.ndarray

    @property
    def shares(self) -> np.ndarray:
        """Each case's loss in [0, 1]: the share of its requests that failed."""
        return self.failures / self.requests


def p_value_bounded_mean(mean_loss: Any, n: Any, max_risk: float) -> Any:
    """Hoeffding–Bentkus p-value for "the mean loss is at least ``max_risk``", losses in [0, 1].

    ``n`` i.i.d. losses in [0, 1] with observed mean ``r``; with ``a = max_risk``:
    ``min(exp(-n * h(min(r, a), a)), e * P[Binomial(n, a) <= ceil(n * r)])`` where
    ``h(r, a) = r ln(r/a) + (1-r) ln((1-r)/(1-a))`` (Bates et al., 2021). Small values
    are evidence that the mean is below ``max_risk``. A sum ``n * r`` within floating-point
    rounding (``8 * n`` machine epsilons) of a whole number counts as that number. With ``n == 0``
    it is 1. Accepts arrays (broadcast).
    """
    level = as_probability(max_risk, "max_risk")
    mean = np.asarray(mean_loss, dtype=float)
    count = np.asarray(n)
    if np.any(~np.isfinite(mean)) or np.any((mean < 0) | (mean > 1)):
        raise StatsInputError(f"mean_loss must lie in [0, 1], got {mean_loss!r}")
    if count.dtype == bool or not np.issubdtype(count.dtype, np.number) or np.any(count < 0) \
            or np.any(np.asarray(count, dtype=float) % 1 != 0):
        raise StatsInputError(f"n must be non-negative whole numbers, got {n!r}")
    value = _hb_p_value(mean * count, count.astype(np.int64), level)
    return float(value) if value.ndim == 0 else value


def mean_upper_bound(
    losses: Any, confidence: float = 0.95, *, method: BoundMethod = "hoeffding_bentkus"
) -> MeanBound:
    """Upper confidence bound for the mean of i.i.d. losses in [0, 1].

    ``method="hoeffding_bentkus"`` (default): the smallest ``a`` whose Hoeffding–Bentkus p-value
    (:func:`p_value_bounded_mean`) is at most ``1 - confidence``; it depends on the losses only
    through their sum, and for 0/1 losses it is never below the exact (Clopper–Pearson) bound.
    ``method="betting"``: the Waudby-Smith–Ramdas betting bound (see the module docstring); pass
    the losses in an order fixed in advance (e.g. by case id), never sorted by value. Both are
    found by bisection to about 1e-15 (rounded up), and equal 1 when every loss is 1.
    """
    level = as_probability(confidence, "confidence")
    values = _as_losses(losses)
    method = _checked_method(method)
    total = math.fsum(values.tolist())  # exactly rounded: the same figure whatever order the losses come in
    if method == "hoeffding_bentkus":
        bound = float(_hb_upper_bound(np.asarray(total), np.asarray(values.size), 1.0 - level))
    else:
        bound = _betting_upper_bound(values, 1.0 - level)
    return MeanBound(
        estimate=total / values.size, bound=bound, confidence=level, n=int(values.size), method=method
    )


def case_counts(case_index: Any, failed: Any) -> CaseCounts:
    """Count requests and failures per case from one row per request.

    ``case_index[j]`` names request ``j``'s case (any hashable values numpy can sort: ids or
    numbers); ``failed[j]`` is True (or 1) when request ``j`` failed, e.g. a silent failure.
    Cases come out sorted by their index value.
    """
    cases = np.asarray(case_index)
    if cases.ndim != 1 or cases.size == 0:
        raise StatsInputError(f"case_index must be a non-empty one-dimensional list, got shape {cases.shape}")
    failures = as_correct(failed, "failed")
    if failures.size != cases.size:
        raise StatsInputError(
            f"case_index has {cases.size} values but failed has {failures.size}: give one of each per request"
        )
    try:
        distinct, inverse = np.unique(cases, return_inverse=True)
    except TypeError:
        raise StatsInputError("case_index values must be comparable (all ids, or all numbers)") from None
    requests = np.bincount(inverse, minlength=distinct.size)
    failed_counts = np.bincount(inverse, weights=failures, minlength=distinct.size).astype(np.int64)
    return CaseCounts(cases=distinct, requests=requests, failures=failed_counts)


def case_rate_upper_bound(
    requests: Any,
    failures: Any,
    confidence: float = 0.95,
    *,
    method: BoundMethod = "hoeffding_bentkus",
) -> MeanBound:
    """Upper confidence bound for a failure rate when the case, not the request, is the independent unit.

    ``requests[i]`` and ``failures[i]`` count case ``i``'s requests and failed requests (see
    :func:`case_counts`). Each case's loss is its share ``failures[i] / requests[i]`` in [0, 1];
    the bound is :func:`mean_upper_bound` of those shares over the ``n`` cases, so it stays valid
    however strongly a case's requests are correlated (they share its difficulty).

    Estimand: the mean over cases of each case's failure rate, every case weighted equally (when
    every case has the same number of requests this is also the rate per request). When cases make
    different numbers of requests, a case with few requests counts as much as one with many; the
    bound is then a bound on that case-weighted rate, not on the pooled share of requests.
    """
    made, failed = _case_counts(requests, failures)
    return mean_upper_bound(failed / made, confidence, method=method)


def cases_needed(budget: float, confidence: float = 0.95) -> int:
    """The fewest cases whose Hoeffding–Bentkus upper bound can be at most ``budget`` (every loss 0).

    With ``n`` cases and no failure at all the bound is ``1 - (1 - confidence) ** (1 / n)``, so a rate
    under ``budget`` can be shown only from ``ceil(log(1 - confidence) / log(1 - budget))`` cases on
    (149 for 2% at 95%, 598 for 0.5%). Fewer cases fail any budget below that bound whatever happened.
    """
    level = as_probability(confidence, "confidence")
    if isinstance(budget, (int, float)) and not isinstance(budget, bool) and budget >= 1.0:
        return 1  # every rate is at most 1
    limit = as_probability(budget, "budget")
    n = max(1, math.ceil(math.log(1.0 - level) / math.log1p(-limit)))
    # The closed form can be one off from floating point: settle it on the bound itself.
    while n > 1 and float(_hb_upper_bound(np.asarray(0.0), np.asarray(n - 1), 1.0 - level)) <= limit:
        n -= 1
    while float(_hb_upper_bound(np.asarray(0.0), np.asarray(n), 1.0 - level)) > limit:
        n += 1
    return n


# --------------------------------------------------------------------------- internals


def _hb_p_value(total: np.ndarray, n: np.ndarray, a: float | np.ndarray) -> np.ndarray:
    """Hoeffding–Bentkus p-value from the sum ``total`` of ``n`` losses in [0, 1] (arrays broadcast)."""
    total, n, a = np.broadcast_arrays(np.asarray(total, dtype=float), np.asarray(n), np.asarray(a, dtype=float))
    tolerance = 8.0 * np.maximum(n, 1) * np.finfo(float).eps
    successes = np.ceil(total - tolerance)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.minimum(np.where(n > 0, total / np.maximum(n, 1), 0.0), a)
        divergence = xlogy(observed, observed / a) + xlogy(1 - observed, (1 - observed) / (1 - a))
        hoeffding = np.exp(-n * divergence)
        bentkus = math.e * binomial_cdf(successes, n, a)
    return np.where(n > 0, np.minimum(np.minimum(hoeffding, bentkus), 1.0), 1.0)


def _hb_upper_bound(total: np.ndarray, n: np.ndarray, delta: float) -> np.ndarray:
    """Smallest ``a`` with Hoeffding–Bentkus p-value <= ``delta`` (1 when none below 1); arrays."""
    mean = np.where(n > 0, total / np.maximum(n, 1), 0.0)
    return _smallest_rejected(lambda a: _hb_p_value(total, n, a) <= delta, np.minimum(mean, 1.0))


def _smallest_rejected(rejected: Callable[[np.ndarray], np.ndarray], low: np.ndarray) -> np.ndarray:
    """Bisection for the boundary of a rejection set ``[u, 1)`` above ``low`` (vectorised).

    ``rejected(a)`` must be monotone in ``a`` (False below the boundary, True above). Returns the
    upper end of the final bracket (a value that is rejected), so the bound errs on the safe side;
    1 when nothing below 1 is rejected.
    """
    low = np.array(low, dtype=float)
    high = np.ones_like(low)
    top = np.nextafter(1.0, 0.0)
    never = ~np.asarray(rejected(np.full_like(low, top)), dtype=bool)
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2.0
        hit = np.asarray(rejected(middle), dtype=bool)
        high = np.where(hit, middle, high)
        low = np.where(hit, low, middle)
    return np.where(never, 1.0, high)


def _betting_upper_bound(losses: np.ndarray, delta: float) -> float:
    """Waudby-Smith–Ramdas betting upper bound at level ``1 - delta``, averaged over reorderings."""
    n = losses.size
    # Fixed, seeded reorderings of i.i.d. losses are i.i.d. again, so each one's final capital is
    # an e-value (expectation <= 1 under the null), and so is their average. (Sorting the losses
    # first would make the bound ignore their order entirely, but a fixed reordering of sorted
    # values is no longer i.i.d., and the guarantee would hold only on average over seeds.)
    orders = np.random.default_rng(0).permuted(np.tile(losses, (BETTING_ORDERS, 1)), axis=1)
    steps = np.arange(1, n + 1)
    # Predictable plug-in (PrPl) bets tuned for a fixed n: regularised running mean and variance,
    # each starting from one fake observation (mean 1/2, variance 1/4), using only earlier losses.
    running_mean = (0.5 + np.cumsum(orders, axis=1)) / (steps + 1)
    running_variance = (0.25 + np.cumsum((orders - running_mean) ** 2, axis=1)) / (steps + 1)
    previous_variance = np.concatenate([np.full((BETTING_ORDERS, 1), 0.25), running_variance[:, :-1]], axis=1)
    bets = np.minimum(np.sqrt(2.0 * math.log(1.0 / delta) / (n * previous_variance)), BET_CAP)
    threshold = math.log(1.0 / delta) + math.log(BETTING_ORDERS)

    def rejected(candidate: np.ndarray) -> np.ndarray:
        # Capital of betting that the mean is below the candidate m: prod(1 + bet * (m - loss)).
        log_capital = np.sum(np.log1p(bets * (candidate[0] - orders)), axis=1)
        peak = log_capital.max()
        # log(sum(exp(log_capital))) >= log(1/delta) + log(orders): the average reaches 1/delta.
        return np.asarray([peak + math.log(np.sum(np.exp(log_capital - peak))) >= threshold])

    return float(_smallest_rejected(rejected, np.zeros(1))[0])


def _as_losses(losses: Any) -> np.ndarray:
    try:
        values = np.asarray(losses, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StatsInputError(f"losses must be a list or array of numbers in [0, 1]: {exc}") from None
    if values.ndim != 1 or values.size == 0:
        raise StatsInputError(f"losses must be a non-empty one-dimensional list, got shape {values.shape}")
    bad = ~np.isfinite(values) | (values < 0.0) | (values > 1.0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise StatsInputError(
            f"losses[{index}] = {values[index].item()!r} is not a number in [0, 1]; "
            "a bounded-mean bound needs every loss in [0, 1]"
        )
    return values


def _case_counts(requests: Any, failures: Any) -> tuple[np.ndarray, np.ndarray]:
    made, failed = np.asarray(requests), np.asarray(failures)
    for name, values in (("requests", made), ("failures", failed)):
        if values.ndim != 1 or values.size == 0:
            raise StatsInputError(f"{name} must be a non-empty one-dimensional list of counts per case")
        if values.dtype == bool or not np.issubdtype(values.dtype, np.number) or np.any(values < 0) \
                or np.any(np.asarray(values, dtype=float) % 1 != 0):
            raise StatsInputError(f"{name} must hold non-negative whole numbers, got {values!r}")
    if made.size != failed.size:
        raise StatsInputError(
            f"requests has {made.size} cases but failures has {failed.size}: give both per case, in the same order"
        )
    if np.any(made == 0):
        index = int(np.flatnonzero(made == 0)[0])
        raise StatsInputError(f"requests[{index}] = 0: a case with no requests has no rate; leave it out")
    if np.any(failed > made):
        index = int(np.flatnonzero(failed > made)[0])
        raise StatsInputError(
            f"failures[{index}] = {failed[index]} exceeds requests[{index}] = {made[index]}"
        )
    return made.astype(float), failed.astype(float)


def _checked_method(method: str) -> str:
    if method not in _BOUND_METHODS:
        raise StatsInputError(f"method must be 'hoeffding_bentkus' or 'betting', got {method!r}")
    return method
