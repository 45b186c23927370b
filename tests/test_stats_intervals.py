"""Exact binomial intervals, the bootstrap and the paired clean-vs-chaos gap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, binomtest, bootstrap

import failpath.stats as st


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (13, 1600), (1, 1)])
def test_clopper_pearson_matches_scipy_exact_interval(k, n):
    ours = st.clopper_pearson(k, n, 0.05)
    theirs = binomtest(k, n).proportion_ci(0.95, method="exact")
    assert (ours.low, ours.high) == pytest.approx((theirs.low, theirs.high), abs=1e-10)
    assert ours.estimate == k / n and ours.confidence == 0.95
    upper = st.clopper_pearson(k, n, 0.05, alternative="upper")
    one_sided = binomtest(k, n, alternative="less").proportion_ci(0.95, method="exact")
    assert (upper.low, upper.high) == pytest.approx((0.0, one_sided.high), abs=1e-10)
    lower = st.clopper_pearson(k, n, 0.05, alternative="lower")
    assert lower.high == 1.0 and lower.low <= k / n


def test_binomial_upper_bound_is_the_exact_one_sided_bound():
    bound = st.binomial_upper_bound(2, 500, confidence=0.95)
    # At the bound, seeing 2 or fewer events has probability exactly 5%.
    assert binom.cdf(2, 500, bound) == pytest.approx(0.05, rel=1e-8)
    assert st.binomial_upper_bound(0, 300) == pytest.approx(1 - 0.05 ** (1 / 300))  # the "rule of three"
    assert st.binomial_upper_bound(0, 0) == 1.0
    assert st.binomial_upper_bound(5, 5) == 1.0
    many = st.binomial_upper_bound(np.array([0, 2, 10]), 500)
    assert many.shape == (3,) and np.all(np.diff(many) > 0)


def test_bootstrap_ci_of_a_mean_is_reproducible_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    values = rng.normal(1.0, 2.0, size=300)
    first = st.bootstrap_ci(np.mean, values, seed=7, n_resamples=2000)
    again = st.bootstrap_ci(np.mean, values, seed=7, n_resamples=2000)
    assert first == again
    assert first.estimate == pytest.approx(values.mean())
    assert first.low < first.estimate < first.high
    # Close to the normal-theory interval.
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert first.high - first.low == pytest.approx(2 * half_width, rel=0.15)
    narrower = st.bootstrap_ci(np.mean, values, seed=7, n_resamples=2000, confidence=0.5)
    assert first.low < narrower.low < narrower.high < first.high


def test_bootstrap_ci_paired_statistic_of_two_arrays():
    before = np.array([1, 1, 1, 0, 1, 1, 0, 1, 1, 1] * 5)
    after = np.array([1, 0, 1, 0, 1, 1, 0, 0, 1, 1] * 5)
    interval = st.bootstrap_ci(lambda a, b: np.mean(a) - np.mean(b), before, after, seed=1, n_resamples=999)
    assert interval.estimate == pytest.approx(0.2)
    assert 0.0 < interval.low < 0.2 < interval.high
    with pytest.raises(st.StatsInputError, match="equal length"):
        st.bootstrap_ci(lambda a, b: np.mean(a) - np.mean(b), before, after[:-1])


def test_bootstrap_ci_collapses_when_every_resample_agrees():
    interval = st.bootstrap_ci(np.mean, [1, 1, 1, 1], seed=0)
    assert (interval.low, interval.estimate, interval.high) == (1.0, 1.0, 1.0)


def test_paired_gap_counts_and_interval():
    clean = [1] * 90 + [0] * 10
    chaos = [1] * 70 + [0] * 20 + [1] * 5 + [0] * 5
    gap = st.paired_gap(clean, chaos, seed=3)
    assert gap.estimate == pytest.approx(0.90 - 0.75)
    assert gap.n == 100
    assert gap.flip_rate == pytest.approx(0.25)
    assert gap.low < gap.estimate < gap.high
    assert gap.low > 0  # 20 cases broke and 5 were fixed: clearly a real gap
    assert st.paired_gap(clean, chaos, seed=3) == gap


def test_paired_gap_is_paired_by_case():
    # Same accuracies, but the flips cancel case by case or not at all: pairing tightens the interval.
    rng = np.random.default_rng(5)
    clean = rng.random(400) < 0.8
    chaos = clean.copy()
    chaos[np.flatnonzero(clean)[:20]] = False
    gap = st.paired_gap(clean, chaos, seed=0, n_resamples=2000)
    unpaired = st.bootstrap_ci(
        lambda a, b: np.mean(a) - np.mean(b), clean, chaos, paired=False, seed=0, n_resamples=2000
    )
    assert gap.estimate == pytest.approx(0.05)
    assert unpaired.estimate == pytest.approx(0.05)
    assert gap.high - gap.low < 0.6 * (unpaired.high - unpaired.low)


@pytest.mark.parametrize("n", [100, 400])
def test_paired_gap_interval_matches_scipy_bca(n):
    rng = np.random.default_rng(n)
    clean = rng.random(n) < 0.85
    chaos = (clean & (rng.random(n) < 0.9)) | (rng.random(n) < 0.03)
    gap = st.paired_gap(clean, chaos, seed=0, n_resamples=20_000)
    assert np.sum(clean != chaos) >= st.FEW_FLIPS and not gap.widened
    reference = bootstrap(
        (clean.astype(float) - chaos,), np.mean, n_resamples=20_000, method="BCa", rng=np.random.default_rng(1)
    ).confidence_interval
    # Same BCa interval up to Monte Carlo error (and the 1/n granularity of a mean of n cases).
    assert gap.low == pytest.approx(reference.low, abs=1.5 / n + 0.003)
    assert gap.high == pytest.approx(reference.high, abs=1.5 / n + 0.003)


def test_paired_gap_is_fast_for_large_suites():
    clean = np.ones(200_000, dtype=bool)
    chaos = np.arange(200_000) % 10 != 0
    gap = st.paired_gap(clean, chaos, seed=0)  # no per-case resampling: returns at once
    assert gap.estimate == pytest.approx(0.1) and gap.low < 0.1 < gap.high and gap.high - gap.low < 0.01


def test_paired_gap_interval_covers_the_true_gap():
    rng = np.random.default_rng(21)
    n_sets, n_cases, true_gap = 1000, 150, 0.10
    covered = 0
    for _ in range(n_sets):
        clean = rng.random(n_cases) < 0.85
        broken = rng.random(n_cases) < true_gap / 0.85
        chaos = clean & ~broken
        gap = st.paired_gap(clean, chaos, seed=int(rng.integers(1 << 31)), n_resamples=1999)
        covered += gap.low <= true_gap <= gap.high
    # Nominal 95%: the observed coverage must be within binomial error of it (sd ~ 0.007); the
    # few sets with fewer than FEW_FLIPS flips get the wider exact interval, hence the upper slack.
    assert 0.925 * n_sets <= covered <= 0.985 * n_sets


def test_paired_gap_refuses_mismatched_or_tiny_input():
    with pytest.raises(st.StatsInputError, match="paired by case"):
        st.paired_gap([1, 0, 1], [1, 0])
    with pytest.raises(st.StatsInputError, match="at least 2"):
        st.paired_gap([1], [0])
    with pytest.raises(st.StatsInputError, match=r"chaos_correct\[1\] = 2"):
        st.paired_gap([1, 0], [1, 2])


def test_paired_gap_is_never_a_point_from_a_finite_sample():
    every_case_broke = st.paired_gap([1, 1, 1], [0, 0, 0], seed=0)
    assert every_case_broke.estimate == 1.0 and every_case_broke.widened
    assert every_case_broke.low < 0.5 and every_case_broke.high == 1.0
    nothing_flipped = st.paired_gap([1] * 90 + [0] * 10, [1] * 90 + [0] * 10, seed=0)
    assert nothing_flipped.estimate == 0.0 and nothing_flipped.widened
    # With no flip in 100 cases, the exact bound on either share is 1 - 0.0125 ** (1 / 100).
    assert nothing_flipped.high == pytest.approx(1 - 0.0125 ** (1 / 100))
    assert nothing_flipped.low == pytest.approx(-nothing_flipped.high)


def test_paired_gap_exact_interval_is_the_union_of_clopper_pearson_bounds():
    clean = [1] * 95 + [0] * 5
    chaos = [1] * 91 + [0] * 4 + [1] * 1 + [0] * 4  # 4 broke, 1 fixed
    gap = st.paired_gap(clean, chaos, seed=1, confidence=0.9)
    broke = st.clopper_pearson(4, 100, 0.05)  # each side at (1 - 0.9) / 4
    fixed = st.clopper_pearson(1, 100, 0.05)
    assert gap.widened and gap.confidence == 0.9
    # The interval contains the exact one (and the bootstrap one, which here is narrower).
    assert (gap.low, gap.high) == pytest.approx((broke.low - fixed.high, broke.high - fixed.low))


@pytest.mark.parametrize("breaks, fixes", [(1 / 90, 0.0), (0.1, 0.8)])
def test_paired_gap_covers_a_true_one_point_gap_at_n_100(breaks, fixes):
    # Clean accuracy 90%; each clean-right case breaks with probability `breaks`, each clean-wrong
    # case is fixed with probability `fixes`: a true gap of 0.9 * breaks - 0.1 * fixes = 1 point.
    rng = np.random.default_rng(17)
    n_sets, n, true_gap = 600, 100, 0.01
    covered = 0
    for _ in range(n_sets):
        clean = rng.random(n) < 0.9
        chaos = np.where(clean, rng.random(n) >= breaks, rng.random(n) < fixes)
        gap = st.paired_gap(clean, chaos, seed=int(rng.integers(1 << 31)), n_resamples=999)
        covered += gap.low <= true_gap <= gap.high
    # Binomial(600, 0.95) has a 0.1% quantile of 555 (the bootstrap alone covered 63% here).
    assert covered >= 555, covered


def test_bootstrap_ci_matches_scipy_for_each_method():
    rng = np.random.default_rng(2)
    values = rng.exponential(1.0, size=80)
    for method in ("BCa", "percentile", "basic"):
        ours = st.bootstrap_ci(np.mean, values, seed=0, n_resamples=20_000, method=method)
        theirs = bootstrap((values,), np.mean, n_resamples=20_000, method=method, rng=np.random.default_rng(5))
        assert ours.low == pytest.approx(theirs.confidence_interval.low, abs=0.02), method
        assert ours.high == pytest.approx(theirs.confidence_interval.high, abs=0.02), method


def test_bootstrap_ci_bca_acceleration_and_bias_match_scipy_exactly():
    # Same resamples, same statistic: the BCa quantile levels must agree to rounding.
    from failpath.stats.intervals import _acceleration, _batched, _bca_quantiles
    from scipy.stats._resampling import _bca_interval

    rng = np.random.default_rng(8)
    values = rng.gamma(2.0, size=50)
    distribution = np.mean(values[rng.integers(0, 50, (4000, 50))], axis=1)
    acceleration = _acceleration((values,), _batched(np.mean), True, 1000)
    ours = _bca_quantiles(distribution, float(values.mean()), acceleration, 0.025)
    alpha_1, alpha_2, a_hat = _bca_interval(
        (values,), np.mean, axis=-1, alpha=0.025, theta_hat_b=distribution, batch=None, xp=np
    )
    assert acceleration == pytest.approx(float(a_hat), rel=1e-10)
    assert ours == pytest.approx([float(alpha_1), float(alpha_2)], rel=1e-10)


def test_bootstrap_ci_statistic_without_axis_and_unpaired_samples():
    a = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0] * 3)
    b = a[::-1] + 0.5
    loop = st.bootstrap_ci(lambda x, y: float(np.median(x) - np.median(y)), a, b, paired=False, seed=3, n_resamples=500)
    assert loop.estimate == pytest.approx(np.median(a) - np.median(b))
    assert loop.low <= loop.estimate <= loop.high
    vectorised = st.bootstrap_ci(
        lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis), a, b, paired=False, seed=3,
        n_resamples=500,
    )
    assert vectorised.low < -0.5 < vectorised.high
    with pytest.raises(st.StatsInputError, match="method must be"):
        st.bootstrap_ci(np.mean, a, method="studentized")


def test_bootstrap_ci_refuses_an_undefined_bca_interval():
    # Every resample has fewer distinct values than the sample: the bias correction is infinite.
    def distinct(x):
        return float(np.unique(x).size)

    with pytest.raises(st.StatsInputError, match="undefined for this data; try method='percentile'"):
        st.bootstrap_ci(distinct, np.arange(30.0), seed=0, n_resamples=200)
    interval = st.bootstrap_ci(distinct, np.arange(30.0), seed=0, n_resamples=200, method="percentile")
    assert interval.high < interval.estimate == 30.0


def test_paired_gap_takes_each_case_share_of_variants_answered_right():
    # Several variants per case: chaos_correct is each case's share of variants answered right.
    clean = np.array([1] * 40 + [0] * 10)
    share = np.array([35 / 37] * 20 + [1.0] * 20 + [2 / 37] * 10)
    gap = st.paired_gap(clean, share, seed=4)
    assert gap.estimate == pytest.approx(np.mean(clean - share))
    assert gap.flip_rate == pytest.approx(30 / 50) and not gap.widened
    assert gap.low < gap.estimate < gap.high
    with pytest.raises(st.StatsInputError, match=r"chaos_correct\[1\] = 1.5: .* share of them answered right"):
        st.paired_gap([1, 1], [1, 1.5])


def test_paired_gap_of_equal_shares_is_widened_to_the_hoeffding_bentkus_interval():
    from failpath.stats.bounds import _hb_upper_bound

    # Every case lost 2 of its 37 variants: every difference equal, so the bootstrap is a point.
    n = 40
    gap = st.paired_gap([1] * n, [35 / 37] * n, seed=0)
    assert gap.widened and gap.estimate == pytest.approx(2 / 37)
    broke_upper = float(_hb_upper_bound(np.asarray(n * 2 / 37), np.asarray(n), 0.05 / 4))
    broke_lower = 1 - float(_hb_upper_bound(np.asarray(n * 35 / 37), np.asarray(n), 0.05 / 4))
    fixed_upper = float(_hb_upper_bound(np.asarray(0.0), np.asarray(n), 0.05 / 4))
    assert (gap.low, gap.high) == pytest.approx((broke_lower - fixed_upper, broke_upper))
    assert gap.low < 2 / 37 < gap.high
