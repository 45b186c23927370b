"""pass^k: the exact unbiased estimate per case, and a lower bound over cases."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import binom

import failpath.stats as st


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_pass_hat_k_is_the_share_of_k_subsets_that_all_succeed(n):
    for c in range(n + 1):
        trials = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(trials, k))
            expected = Fraction(sum(all(s) for s in subsets), len(subsets))
            assert st.pass_hat_k(c, n, k) == float(expected), (c, n, k)


@pytest.mark.parametrize("n, k", [(4, 2), (6, 3), (8, 8)])
def test_pass_hat_k_is_unbiased_for_p_to_the_k(n, k):
    p = Fraction(3, 7)
    expectation = sum(
        math.comb(n, c) * p**c * (1 - p) ** (n - c) * Fraction(math.comb(c, k), math.comb(n, k)) for c in range(n + 1)
    )
    assert expectation == p**k
    assert sum(
        float(math.comb(n, c) * p**c * (1 - p) ** (n - c)) * st.pass_hat_k(c, n, k) for c in range(n + 1)
    ) == pytest.approx(float(p**k), rel=1e-12)


def test_pass_hat_k_is_exact_for_large_counts():
    assert st.pass_hat_k(999, 1000, 500) == pytest.approx(0.5, rel=1e-12)  # C(999,500)/C(1000,500) = 500/1000
    assert st.pass_hat_k(3, 10, 4) == 0.0 and st.pass_hat_k(10, 10, 10) == 1.0


def test_pass_k_lower_bound_over_cases():
    successes, trials = [8, 8, 7, 8, 5, 8] * 10, [8] * 60
    result = st.pass_k_lower_bound(successes, trials, 4, 0.9)
    estimates = [st.pass_hat_k(c, n, 4) for c, n in zip(successes, trials)]
    assert result.estimate == pytest.approx(np.mean(estimates))
    complement = st.mean_upper_bound(1 - np.array(estimates), 0.9)
    assert result.lower_bound == pytest.approx(1 - complement.bound)
    assert 0 <= result.lower_bound < result.estimate
    assert (result.k, result.n_cases, result.confidence, result.method) == (4, 60, 0.9, "hoeffding_bentkus")
    assert st.pass_k_lower_bound(successes, trials, 4, 0.9, method="betting").method == "betting"


def test_pass_k_lower_bound_covers_by_simulation():
    # 50 cases with beta-distributed success probabilities, 6 trials each, k = 3.
    rng = np.random.default_rng(8)
    a, b, k, sims = 6.0, 1.5, 3, 400
    true = math.prod((a + i) / (a + b + i) for i in range(k))  # E[p^k] for p ~ Beta(a, b)
    misses = 0
    for _ in range(sims):
        p = rng.beta(a, b, size=50)
        misses += st.pass_k_lower_bound(rng.binomial(6, p), np.full(50, 6), k, 0.9).lower_bound > true
    assert misses <= binom.ppf(0.999, sims, 0.1)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: st.pass_hat_k(5, 4, 2), r"successes must be between 0 and trials"),
        (lambda: st.pass_hat_k(2, 4, 5), r"k must be between 1 and the number of trials.*run each case at least k"),
        (lambda: st.pass_hat_k(2, 4, 0), r"k must be between 1"),
        (lambda: st.pass_hat_k(2.5, 4, 1), r"successes must be a whole number, got 2.5"),
        (lambda: st.pass_hat_k(True, 4, 1), r"successes must be a whole number"),
        (lambda: st.pass_k_lower_bound([1, 2], [3], 1), r"same non-zero length"),
        (lambda: st.pass_k_lower_bound([1, 2], [3, 3], 1, 1.2), r"confidence must be strictly between 0 and 1"),
    ],
)
def test_pass_k_bad_input_is_named(call, message):
    with pytest.raises(st.StatsInputError, match=message):
        call()


# (successes, trials, k, C(c,k)/C(n,k) as an exact fraction, (c/n)^k that a naive estimate would report)
PASS_K_VECTORS = [
    (9, 10, 4, Fraction(3, 5), Fraction(6561, 10000)),  # promptfoo's proposed (c/n)^k reads 0.656 against 0.600
    (7, 8, 4, Fraction(1, 2), Fraction(2401, 4096)),
    (5, 8, 3, Fraction(5, 28), Fraction(125, 512)),
    (4, 8, 4, Fraction(1, 70), Fraction(1, 16)),
    (8, 8, 8, Fraction(1), Fraction(1)),
    (3, 4, 1, Fraction(3, 4), Fraction(3, 4)),
]


@pytest.mark.parametrize("c, n, k, exact, naive", PASS_K_VECTORS)
def test_pass_hat_k_vectors(c, n, k, exact, naive):
    assert Fraction(math.comb(c, k), math.comb(n, k)) == exact
    assert st.pass_hat_k(c, n, k) == float(exact)
    assert float(naive) >= st.pass_hat_k(c, n, k)  # (c/n)^k never reads lower than the unbiased estimate


def test_pass_k_curve_is_the_bound_for_every_k_up_to_the_fewest_trials():
    successes, trials = [8, 7, 5, 8, 6] * 6, [8, 8, 8, 8, 6] * 6
    curve = st.pass_k_curve(successes, trials, 0.9)
    assert [p.k for p in curve] == [1, 2, 3, 4, 5, 6]
    for p in curve:
        assert p == st.pass_k_lower_bound(successes, trials, p.k, 0.9)
    assert curve[0].estimate == pytest.approx(np.mean([c / n for c, n in zip(successes, trials)]))
    assert all(a.estimate >= b.estimate for a, b in zip(curve, curve[1:]))


def test_pass_k_lower_bound_covers_with_tasks_of_mixed_difficulty():
    # Agent tasks are a mix: most easy, some flaky, some nearly always failing. 40 tasks, 8 trials, k = 4.
    rng = np.random.default_rng(18)
    kinds = np.array([0.98, 0.9, 0.6, 0.1])
    shares = np.array([0.5, 0.25, 0.15, 0.1])
    true = float(np.sum(shares * kinds**4))  # the population's mean pass^4
    sims, misses = 400, 0
    for _ in range(sims):
        p = rng.choice(kinds, size=40, p=shares)
        misses += st.pass_k_lower_bound(rng.binomial(8, p), np.full(40, 8), 4, 0.9).lower_bound > true
    assert misses <= binom.ppf(0.999, sims, 0.1)


def test_paired_share_gap_covers_the_true_drop_by_simulation():
    rng = np.random.default_rng(5)
    clean_p = rng.uniform(0.5, 1.0, size=30)
    chaos_p = np.clip(clean_p - rng.uniform(0.0, 0.4, size=30), 0, 1)
    true = float(np.mean(clean_p - chaos_p))
    sims, misses = 300, 0
    for _ in range(sims):
        gap = st.paired_share_gap(rng.binomial(4, clean_p) / 4, rng.binomial(2, chaos_p) / 2, 0.9)
        misses += not gap.low <= true <= gap.high
    assert misses <= binom.ppf(0.999, sims, 0.1)
    gap = st.paired_share_gap([1, 1, 0.5], [0.5, 1, 0], 0.95)
    assert gap.estimate == pytest.approx(1 / 3) and gap.low < gap.estimate < gap.high and gap.n_cases == 3
    with pytest.raises(st.StatsInputError, match="shares between 0 and 1"):
        st.paired_share_gap([2], [1])
    with pytest.raises(st.StatsInputError, match="same non-zero length"):
        st.paired_share_gap([1, 0], [1])


def test_upper_bounds_of_means_equal_one_bound_each():
    groups = [np.array([0.0, 0.5, 1.0, 0.25]), np.zeros(30), np.array([1.0, 1.0]), np.linspace(0, 1, 17)]
    together = st.upper_bounds_of_means(groups, 0.9)
    assert together == [st.mean_upper_bound(g, 0.9).bound for g in groups]
