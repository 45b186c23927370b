"""The numpy binomial tails and Clopper–Pearson limits against scipy and high-precision references."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy import special

from failpath.stats._special import binomial_cdf, binomial_p_for_cdf, binomial_p_for_sf, binomial_sf, xlogy

PS = [1e-9, 1e-6, 1e-3, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999, 1 - 1e-6]


def _ks(n: int, p: float, spreads=(-40, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 40)) -> np.ndarray:
    """Counts across the distribution: both ends and the mean +- many standard deviations."""
    sd = max(math.sqrt(n * p * (1 - p)), 1.0)
    return np.unique(np.clip(np.round(np.r_[0, 1, 2, n - 1, n, n * p + np.array(spreads) * sd]), 0, n))


def _reference_tails(k: int, n: int, p: float) -> tuple[mpmath.mpf, mpmath.mpf]:
    """``(P[X <= k], P[X > k])`` at 40 digits: the smaller tail summed term by term from k outward."""
    with mpmath.workdps(40):
        p_, q_ = mpmath.mpf(p), 1 - mpmath.mpf(p)
        if k >= n:
            return mpmath.mpf(1), mpmath.mpf(0)
        mean = n * p
        below = k < mean  # the tail on k's side of the mean is the smaller one (or close to 1/2)
        j = k if below else k + 1
        term = mpmath.exp(mpmath.loggamma(n + 1) - mpmath.loggamma(j + 1) - mpmath.loggamma(n - j + 1)
                          + j * mpmath.log(p_) + (n - j) * mpmath.log(q_))
        total = mpmath.mpf(0)
        while 0 <= j <= n:
            total += term
            if below:
                if j == 0:
                    break
                term *= j * q_ / ((n - j + 1) * p_)
                j -= 1
            else:
                if j == n:
                    break
                term *= (n - j) * p_ / ((j + 1) * q_)
                j += 1
            if term < total * mpmath.mpf(10) ** -30 and (j < mean if below else j > mean):
                break
        return (total, 1 - total) if below else (1 - total, total)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 30, 100, 1000, 12345])
def test_cdf_matches_scipy_bdtr_across_the_distribution(n):
    # scipy's own relative error grows with n (4.5e-12 at n = 12345, p = 1e-9, in the upper tail,
    # where the 40-digit reference agrees with ours to 4e-15): the high-precision test below is
    # the stricter one.
    rtol = 2e-12 if n <= 1000 else 1e-10
    for p in PS:
        k = _ks(n, p)
        ours, theirs = binomial_cdf(k, n, p), special.bdtr(k, n, p)
        shown = theirs > 1e-300
        np.testing.assert_allclose(ours[shown], theirs[shown], rtol=rtol, atol=0, err_msg=f"n={n}, p={p}")
        ours, theirs = binomial_sf(k, n, p), special.bdtrc(k, n, p)
        shown = theirs > 1e-300
        np.testing.assert_allclose(ours[shown], theirs[shown], rtol=rtol, atol=0, err_msg=f"n={n}, p={p}")


@pytest.mark.parametrize("n", [7, 1000, 100_000, 1_000_000, 4_000_000])
@pytest.mark.parametrize("p", [1e-5, 0.003, 0.3, 0.5, 0.97])
def test_both_tails_keep_their_relative_precision_up_to_millions_of_trials(n, p):
    # scipy's bdtr itself is off by up to 1e-4 near the mean at n = 4e6; the reference here is
    # the sum of the terms at 40 digits. Far tails (1e-300) included.
    for k in _ks(n, p, spreads=(-37, -8, -3, -1, 0, 1, 3, 8, 37)):
        lower, upper = _reference_tails(int(k), n, p)
        for ours, exact in ((binomial_cdf(k, n, p), lower), (binomial_sf(k, n, p), upper)):
            if exact > 1e-300:
                assert abs(float(ours) - float(exact)) <= 1e-11 * float(exact), (n, p, k, float(ours), float(exact))


def test_small_upper_tail_is_not_one_minus_one():
    # P[X > 0] for X ~ Binomial(1, 1e-9) is 1e-9, and P[X <= 1] for Binomial(2, 1 - 1e-6) is
    # 1 - (1 - 1e-6)**2: both tiny next to their complements.
    assert binomial_sf(0, 1, 1e-9) == pytest.approx(1e-9, rel=1e-14)
    p = 1 - 1e-6
    assert binomial_cdf(1, 2, p) == pytest.approx((1 - p) * (1 + p), rel=1e-14)


def test_edges_and_invalid_arguments():
    k = np.array([-1, 0, 5, 7, 3, 3, 3, np.nan, 3, 2.7])
    p = np.array([0.5, 0.0, 0.5, 0.5, 0.0, 1.0, 1.5, 0.5, np.nan, 0.5])
    got = binomial_cdf(k, 5, p)
    np.testing.assert_array_equal(got[:6], [0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    assert np.isnan(got[6:9]).all()
    assert got[9] == pytest.approx(special.bdtr(2, 5, 0.5), rel=1e-15)  # k rounded down, as bdtr
    assert isinstance(binomial_cdf(3, 10, 0.2), np.ndarray) and binomial_cdf(3, 10, 0.2).shape == ()
    np.testing.assert_array_equal(binomial_cdf(0, 0, [0.0, 0.3, 1.0]), [1.0, 1.0, 1.0])


def test_xlogy_matches_scipy_including_zero_and_nan():
    x = np.array([0.0, 0.0, 0.0, 1.0, 2.0, 0.5, 3.0])
    y = np.array([0.0, np.nan, 5.0, 0.0, 3.0, -1.0, np.nan])
    np.testing.assert_array_equal(xlogy(x, y), special.xlogy(x, y))


@pytest.mark.parametrize("n", [1, 2, 5, 30, 1000, 12345, 1_000_000, 4_000_000])
@pytest.mark.parametrize("tail", [0.005, 0.025, 0.05, 0.5, 0.975])
def test_clopper_pearson_limits_match_scipy_betaincinv(n, tail):
    upper_k = np.unique(np.clip([0, 1, 2, 3, n // 100, n // 10, n // 2, n - 3, n - 1], 0, n - 1)).astype(float)
    np.testing.assert_allclose(binomial_p_for_cdf(upper_k, n, tail),
                               special.betaincinv(upper_k + 1, n - upper_k, 1 - tail), rtol=1e-10, atol=0)
    lower_k = upper_k + 1
    np.testing.assert_allclose(binomial_p_for_sf(lower_k, n, tail),
                               special.betaincinv(lower_k, n - lower_k + 1, tail), rtol=1e-10, atol=0)


@pytest.mark.parametrize("n", [1, 2, 30, 1000, 4_000_000])
@pytest.mark.parametrize("tail", [1e-12, 1e-6, 0.05])
def test_clopper_pearson_limits_solve_their_equation_in_far_tails(n, tail):
    # Closed forms at the ends: (1 - p)**n = tail for k = 0, and p**n = tail for k = n.
    assert binomial_p_for_cdf(0, n, tail) == pytest.approx(-math.expm1(math.log(tail) / n), rel=1e-13)
    assert binomial_p_for_sf(n, n, tail) == pytest.approx(math.exp(math.log(tail) / n), rel=1e-13)
    # Elsewhere the limit solves its defining equation (scipy takes 1 - tail, which loses tail's digits).
    for k in np.unique(np.clip([1, 3, n // 3, n - 2], 0, n - 1)):
        p = binomial_p_for_cdf(k, n, tail)
        assert binomial_cdf(k, n, p) == pytest.approx(tail, rel=1e-9)
        p = binomial_p_for_sf(k + 1, n, tail)
        assert binomial_sf(k, n, p) == pytest.approx(tail, rel=1e-9)


def test_limits_outside_their_domain_are_nan():
    assert np.isnan(binomial_p_for_cdf([5, -1, 2.5], [5, 5, 5], 0.05)).all()
    assert np.isnan(binomial_p_for_sf([0, 6], [5, 5], 0.05)).all()
    assert np.isnan(binomial_p_for_cdf(1, 5, [0.0, 1.0])).all()
