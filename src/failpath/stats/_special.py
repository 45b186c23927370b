"""The binomial CDF, its inverse in ``p`` and ``xlogy``, in numpy and the standard library.

These replace ``scipy.special.bdtr``, ``betaincinv`` (for the whole-number arguments of a
Clopper–Pearson bound) and ``xlogy`` on a check's path, so a check never imports scipy (about a
third of a second of start-up). The tests compare them with scipy over a grid reaching millions of
trials and far tails.

Each binomial probability is computed with Loader's saddle-point form ("Fast and accurate
computation of binomial probabilities", 2000; the algorithm of R's ``dbinom``): the terms that
cancel in ``log C(n, j) + j log p + (n - j) log q`` are never formed, so a probability keeps about
14 significant digits even when ``n`` is in the millions (``math.lgamma`` differences would lose
about ``log10(n log n)`` of them). A tail is the sum of the terms that matter, summed on the side
of the mean the argument lies on; where that sum exceeds 1/2 the other tail is summed too, so both
``P[X <= k]`` and ``P[X > k]`` keep their relative precision however far out they are.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_LOG_2PI = math.log(2.0 * math.pi)
# stirlerr(j) = lgamma(j + 1) - (j + 1/2) log j + j - log(2 pi) / 2, the remainder of Stirling's
# formula: exact (from math.lgamma) up to 15, the asymptotic series beyond.
_STIRLERR_SMALL = np.array([0.0] + [
    math.lgamma(j + 1.0) - (j + 0.5) * math.log(j) + j - 0.5 * _LOG_2PI for j in range(1, 16)
])
# Terms whose sum is bounded below this share of the term at k are left out (below double precision).
_NEGLIGIBLE = math.log(1e-18)
# Reaching down 12 standard deviations from the mean before bounding the rest by a geometric series.
_REACH = 12.0
# The search for p runs on log(p) in [-700, 0]: Newton steps, or bisection where one would leave
# the bracket; it converges in under 10 steps on the tests' grid, and stops after 200 whatever.
_LOG_P_FLOOR = -700.0
_MAX_STEPS = 200
_CONVERGED = 1e-15


def xlogy(x: Any, y: Any) -> np.ndarray:
    """``x * log(y)``, 0 where ``x == 0`` (unless ``y`` is NaN), as ``scipy.special.xlogy``."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    zero = (x == 0) & ~np.isnan(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(zero, 0.0, x * np.log(np.where(zero, 1.0, y)))


def binomial_cdf(k: Any, n: Any, p: Any) -> np.ndarray:
    """``P[Binomial(n, p) <= k]``, as ``scipy.special.bdtr`` (``k`` rounded down; ``n`` whole).

    0 for ``k < 0``, 1 for ``k >= n``; NaN where ``p`` is outside [0, 1] or an argument is NaN.
    """
    return _tails(k, n, p)[0]


def binomial_sf(k: Any, n: Any, p: Any) -> np.ndarray:
    """``P[Binomial(n, p) > k]``, summed directly when it is the smaller tail (relative precision)."""
    return _tails(k, n, p)[1]


def binomial_p_for_cdf(k: Any, n: Any, target: Any) -> np.ndarray:
    """The ``p`` with ``P[Binomial(n, p) <= k] = target``, for whole ``0 <= k < n`` (else NaN).

    The Clopper–Pearson upper limit at ``target = alpha``; equal to the Beta quantile
    ``betaincinv(k + 1, n - k, 1 - target)``. Newton's method on ``log p``, kept inside a bracket.
    """
    k, n, target = _as_float(k, n, target)
    valid = (k >= 0) & (k < n) & (target > 0) & (target < 1) & (k % 1 == 0) & (n % 1 == 0)
    k, n, target = np.where(valid, k, 0.0), np.where(valid, n, 1.0), np.where(valid, target, 0.5)
    return _solve_for_p(
        lambda p: _tails(k, n, p)[0],
        lambda p: -n * _pmf(k, n - 1, p, 1.0 - p),  # d/dp P[X <= k]
        target, (k + 1) / (n + 1), valid, rising=False,
    )


def binomial_p_for_sf(k: Any, n: Any, target: Any) -> np.ndarray:
    """The ``p`` with ``P[Binomial(n, p) >= k] = target``, for whole ``0 < k <= n`` (else NaN).

    The Clopper–Pearson lower limit at ``target = alpha``; equal to the Beta quantile
    ``betaincinv(k, n - k + 1, target)``. Newton's method on ``log p``, kept inside a bracket.
    """
    k, n, target = _as_float(k, n, target)
    valid = (k > 0) & (k <= n) & (target > 0) & (target < 1) & (k % 1 == 0) & (n % 1 == 0)
    k, n, target = np.where(valid, k, 1.0), np.where(valid, n, 1.0), np.where(valid, target, 0.5)
    return _solve_for_p(
        lambda p: _tails(k - 1, n, p)[1],
        lambda p: n * _pmf(k - 1, n - 1, p, 1.0 - p),  # d/dp P[X >= k]
        target, k / (n + 1), valid, rising=True,
    )


# --------------------------------------------------------------------------- internals


def _as_float(*values: Any) -> list[np.ndarray]:
    return [np.array(v, dtype=float) for v in np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in values))]


def _solve_for_p(value: Any, slope: Any, target: np.ndarray, start: np.ndarray, valid: np.ndarray, *,
                 rising: bool) -> np.ndarray:
    """Solve ``value(p) = target`` for a monotone ``value``: Newton's method on ``u = log p``.

    Each step solves ``log value(e^u) = log target`` along its tangent; every value seen narrows
    a bracket on ``u`` (from [-700, 0]), and a step that would leave the bracket bisects it
    instead, so the method cannot diverge. Stops when every step is below 1e-15 (relative in ``p``).
    """
    low = np.full(target.shape, _LOG_P_FLOOR)
    high = np.zeros(target.shape)
    u = np.log(start)
    log_target = np.log(target)
    top = np.nextafter(1.0, 0.0)
    for _ in range(_MAX_STEPS):
        p = np.minimum(np.exp(u), top)
        current = value(p)
        too_large = current > target if rising else current < target
        high = np.where(too_large, u, high)
        low = np.where(too_large, low, u)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = (np.log(current) - log_target) * current / (p * slope(p))
        proposal = u - step
        # A step within rounding of the end the bracket just moved to is convergence, not a miss.
        inside = np.isfinite(proposal) & (((proposal > low) & (proposal < high)) | (np.abs(step) < 1e-12))
        proposal = np.where(inside, proposal, (low + high) / 2.0)
        moved = np.abs(proposal - u)
        u = proposal
        if not np.any(valid & (moved > _CONVERGED)):
            break
    return np.where(valid, np.exp(u), np.nan)


def _tails(k: Any, n: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(P[X <= k], P[X > k])`` for ``X ~ Binomial(n, p)``, arrays broadcast."""
    k, n, p = _as_float(k, n, p)
    k = np.floor(k)
    lower = np.full(k.shape, np.nan)
    nan = np.isnan(k) | np.isnan(n) | np.isnan(p) | (p < 0) | (p > 1) | (n < 0)
    below = ~nan & (k < 0)
    above = ~nan & ~below & (k >= n)
    certain = ~nan & ~below & ~above & ((p == 0) | (p == 1))
    lower[below] = 0.0
    lower[above] = 1.0
    lower[certain] = np.where(p[certain] == 0, 1.0, 0.0)  # k < n here: all mass at 0 or at n
    upper = np.empty(k.shape)
    upper[...] = 1.0 - lower
    inner = ~nan & ~below & ~above & ~certain
    if inner.any():
        ki, ni, pi = k[inner], n[inner], p[inner]
        qi = 1.0 - pi
        # Sum a tail directly: below the mean, P[X <= k]; from the mean up, P[X > k], which is
        # P[Y <= n - k - 1] for Y = n - X ~ Binomial(n, q). Where that sum is above 1/2 (k within
        # one of the median), the other tail may be small: it is then summed directly too, so each
        # tail keeps its relative precision, never one minus a number close to one.
        left = ki < ni * pi
        direct = _lower_sum(np.where(left, ki, ni - ki - 1), ni, np.where(left, pi, qi), np.where(left, qi, pi))
        other = 1.0 - direct
        big = direct > 0.5
        if big.any():
            kb, nb, pb, qb, lb = ki[big], ni[big], pi[big], qi[big], left[big]
            other[big] = _lower_sum(np.where(lb, nb - kb - 1, kb), nb, np.where(lb, qb, pb), np.where(lb, pb, qb))
        lower[inner] = np.minimum(np.where(left, direct, other), 1.0)
        upper[inner] = np.minimum(np.where(left, other, direct), 1.0)
    return lower, upper


def _lower_sum(k: np.ndarray, n: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``sum_{j <= k} P[X = j]`` for whole ``0 <= k < n``, ``0 < p < 1``: the terms that matter.

    Cheap when ``k`` is below the mean or not far above it (as it is called). Below the mean the
    terms fall as ``j`` falls, each by the ratio ``j q / ((n - j + 1) p)``, which itself falls with
    ``j``. All terms from ``k`` down to ``j0`` (12 standard deviations
    below the mean, or ``k``) are summed, then as many more as the geometric series with ratio
    ``r(j0)`` needs to fall below 1e-18 of ``P[X = j0] <= P[X = k]``.
    """
    start = np.clip(np.floor(n * p - _REACH * np.sqrt(n * p * q)), 0.0, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = start * q / ((n - start + 1.0) * p)
        extra = np.ceil((_NEGLIGIBLE + np.log1p(-np.minimum(ratio, 1.0))) / np.log(ratio))
    extra = np.where((start > 0) & (ratio < 1.0) & np.isfinite(extra), np.minimum(extra, start), start)
    first = (start - np.maximum(extra, 0.0)).astype(np.int64)
    counts = k.astype(np.int64) - first + 1
    owner = np.repeat(np.arange(k.size), counts)
    offsets = np.cumsum(counts) - counts
    j = (first[owner] + np.arange(owner.size) - offsets[owner]).astype(float)
    terms = _pmf(j, n[owner], p[owner], q[owner])
    return np.bincount(owner, weights=terms, minlength=k.size)


def _pmf(j: np.ndarray, n: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``P[Binomial(n, p) = j]`` for whole ``0 <= j <= n``, ``0 < p < 1``, ``q = 1 - p`` (Loader)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _pmf_terms(j, n, p, q)


def _pmf_terms(j: np.ndarray, n: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    # log(q) from p when p is small, where 1 - p has lost p's digits; and the same for log(p).
    log_q = np.where(p < 0.5, np.log1p(-p), np.log(q))
    log_p = np.where(q < 0.5, np.log1p(-q), np.log(p))
    inside = (j > 0) & (j < n)
    jj = np.where(inside, j, 1.0)
    rest = np.where(inside, n - j, 1.0)
    log_term = (
        _stirlerr(n) - _stirlerr(jj) - _stirlerr(rest) - _bd0(jj, n * p) - _bd0(rest, n * q)
        - 0.5 * (_LOG_2PI + np.log(jj) + np.log(rest / n))
    )
    log_term = np.where(j == 0, n * log_q, np.where(j == n, n * log_p, log_term))
    return np.exp(log_term)


def _stirlerr(x: np.ndarray) -> np.ndarray:
    """``lgamma(x + 1) - (x + 1/2) log x + x - log(2 pi) / 2`` for whole ``x >= 1``."""
    small = x <= 15
    table = _STIRLERR_SMALL[np.where(small, x, 0).astype(np.int64)]
    big = np.where(small, 16.0, x)
    square = big * big
    series = (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - 1 / 1188 / square) / square) / square) / square) / big
    return np.where(small, table, series)


def _bd0(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``x log(x / mean) + mean - x`` for ``x, mean > 0``, without cancellation when ``x`` is near ``mean``."""
    difference = x - mean
    total = x + mean
    near = np.abs(difference) < 0.1 * total
    v = np.where(near, difference / total, 0.0)
    result = difference * v
    power = 2.0 * x * v
    v2 = v * v
    for j in range(1, 12):  # |v| < 0.1: each term is 100 times smaller than the one before
        power = power * v2
        result = result + power / (2 * j + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        far = x * np.log(x / mean) + mean - x
    return np.where(near, result, far)
