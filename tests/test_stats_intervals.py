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


@pytest.mark.parametrize("n", [40, 400])
def test_paired_gap_interval_matches_scipy_bca(n):
    rng = np.random.default_rng(n)
    clean = rng.random(n) < 0.85
    chaos = (clean & (rng.random(n) < 0.9)) | (rng.random(n) < 0.03)
    gap = st.paired_gap(clean, chaos, seed=0, n_resamples=20_000)
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
    # Nominal 95%: the observed coverage must be within binomial error of it (sd ~ 0.007).
    assert 0.925 * n_sets <= covered <= 0.975 * n_sets


def test_paired_gap_refuses_mismatched_or_tiny_input():
    with pytest.raises(st.StatsInputError, match="paired by case"):
        st.paired_gap([1, 0, 1], [1, 0])
    with pytest.raises(st.StatsInputError, match="at least 2"):
        st.paired_gap([1], [0])
    with pytest.raises(st.StatsInputError, match=r"chaos_correct\[1\] = 2"):
        st.paired_gap([1, 0], [1, 2])
