"""Bounds for the mean of bounded losses and Learn-then-Test over cases: exact values, brute force."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import failpath.stats as st


def _brute_force_hb(total: Fraction, n: int, a: Fraction) -> float:
    """The Hoeffding–Bentkus p-value with the binomial tail summed exactly in fractions."""
    tail = sum(math.comb(n, i) * a**i * (1 - a) ** (n - i) for i in range(0, math.ceil(total) + 1))
    r = min(total / n, a)
    divergence = (float(r) * math.log(r / a) if r > 0 else 0.0) + float(1 - r) * math.log((1 - r) / (1 - a))
    return min(math.exp(-n * divergence), math.e * float(tail), 1.0)


@pytest.mark.parametrize(
    "total, n, a",
    [
        (Fraction(0), 10, Fraction(1, 10)),
        (Fraction(3), 10, Fraction(1, 2)),
        (Fraction(7, 3), 12, Fraction(1, 4)),
        (Fraction(1, 37), 20, Fraction(1, 20)),
        (Fraction(30), 40, Fraction(1, 2)),  # observed above the null: p = 1
        (Fraction(5, 2), 60, Fraction(1, 5)),
    ],
)
def test_bounded_mean_p_value_matches_brute_force(total, n, a):
    expected = _brute_force_hb(total, n, a)
    assert st.p_value_bounded_mean(float(total / n), n, float(a)) == pytest.approx(expected, rel=1e-10, abs=1e-300)


def test_request_level_hb_p_value_is_the_bounded_mean_one():
    errors = np.array([0, 3, 13, 40])
    trials = np.array([100, 100, 1600, 1600])
    assert np.allclose(
        st.p_value_hoeffding_bentkus(errors, trials, 0.02), st.p_value_bounded_mean(errors / trials, trials, 0.02)
    )


def test_rounding_of_a_sum_of_shares_does_not_cost_a_whole_failure():
    # 0.1 * 30 is 3.0000000000000004 in floating point; it must count as 3, not 4.
    shares = np.full(30, 0.1)
    assert shares.sum() > 3.0
    assert st.p_value_bounded_mean(shares.mean(), 30, 0.3) == pytest.approx(_brute_force_hb(Fraction(3), 30, Fraction(3, 10)))


@pytest.mark.parametrize("n, k", [(20, 0), (20, 3), (200, 7), (1000, 50)])
def test_hb_bound_is_where_the_p_value_reaches_delta(n, k):
    losses = np.r_[np.ones(k), np.zeros(n - k)]
    bound = st.mean_upper_bound(losses, 0.95)
    assert (bound.estimate, bound.n, bound.confidence, bound.method) == (k / n, n, 0.95, "hoeffding_bentkus")
    # The level is 1 - 0.95 as a float (0.05000000000000004): at the bound the p-value may sit
    # between it and 0.05, so compare with the level the bound was computed at.
    assert st.p_value_bounded_mean(k / n, n, bound.bound) <= 1 - 0.95
    assert st.p_value_bounded_mean(k / n, n, bound.bound - 1e-9) > 0.05
    # For 0/1 losses the exact binomial bound is never larger; with no failure they coincide.
    exact = st.binomial_upper_bound(k, n, 0.95)
    assert bound.bound >= exact - 1e-12
    if k == 0:
        assert bound.bound == pytest.approx(exact, rel=1e-9)


def test_bounds_of_extreme_losses():
    for method in ("hoeffding_bentkus", "betting"):
        assert st.mean_upper_bound([1.0] * 10, method=method).bound == 1.0
        tiny = st.mean_upper_bound([0.0] * 500, method=method).bound
        assert 0.0 < tiny < 0.03, method


def test_betting_bound_rejects_exactly_from_the_bound_up():
    from failpath.stats.bounds import BETTING_ORDERS

    rng = np.random.default_rng(3)
    losses = rng.beta(0.5, 8.0, size=120)
    result = st.mean_upper_bound(losses, 0.9, method="betting")
    orders = np.random.default_rng(0).permuted(np.tile(losses, (BETTING_ORDERS, 1)), axis=1)

    def mean_capital(m: float) -> float:
        # Brute force, one loss at a time, as the betting bound's definition reads.
        total_capital = 0.0
        for order in orders:
            capital, total, squares, variance = 1.0, 0.0, 0.0, 0.25
            for t, x in enumerate(order, start=1):
                bet = min(math.sqrt(2 * math.log(1 / 0.1) / (losses.size * variance)), st.BET_CAP)
                capital *= 1 + bet * (m - x)
                total += x
                mean = (0.5 + total) / (t + 1)
                squares += (x - mean) ** 2
                variance = (0.25 + squares) / (t + 1)
            total_capital += capital
        return total_capital / len(orders)

    assert mean_capital(result.bound) >= 10 * (1 - 1e-9)
    assert mean_capital(result.bound - 1e-7) < 10
    assert result.estimate == pytest.approx(losses.mean()) and result.method == "betting"
    # Averaged over 64 reorderings, the order the losses come in hardly moves it (not even sorting).
    for reordered in (losses[::-1], np.sort(losses), rng.permutation(losses)):
        moved = st.mean_upper_bound(reordered, 0.9, method="betting").bound
        assert moved == pytest.approx(result.bound, rel=0.01)


def test_betting_is_tighter_than_hb_for_losses_in_the_middle():
    losses = np.random.default_rng(1).beta(2.0, 2.0, size=200)
    betting = st.mean_upper_bound(losses, method="betting").bound
    hb = st.mean_upper_bound(losses).bound
    assert losses.mean() < betting < hb


def test_both_bounds_cover_by_simulation():
    # Beta-distributed losses with mean 0.1: each bound must cover at least 90% of the time.
    rng = np.random.default_rng(11)
    n_sets, n, mean = 400, 60, 0.1
    covered = {"hoeffding_bentkus": 0, "betting": 0}
    for _ in range(n_sets):
        losses = rng.beta(0.5, 4.5, size=n)
        for method in covered:
            covered[method] += st.mean_upper_bound(losses, 0.9, method=method).bound >= mean
    # Binomial(400, 0.9) has a 0.1% quantile of 344.
    assert covered["hoeffding_bentkus"] >= 344 and covered["betting"] >= 344, covered


# Widths with one request per case, measured once (see bench/README.md):
# HB/Clopper–Pearson 1.26–1.29, betting/Clopper–Pearson 1.33–1.73 at these n and rates.
@pytest.mark.parametrize("n, k", [(50, 2), (100, 5), (1000, 20), (10000, 300), (200, 100)])
def test_width_with_one_request_per_case_stays_close_to_the_exact_binomial(n, k):
    losses = np.zeros(n)
    losses[np.random.default_rng(n).choice(n, k, replace=False)] = 1.0
    exact = st.binomial_upper_bound(k, n, 0.95) - k / n
    hb = st.mean_upper_bound(losses, 0.95).bound - k / n
    betting = st.mean_upper_bound(losses, 0.95, method="betting").bound - k / n
    assert 1.0 <= hb / exact <= 1.30
    assert 1.0 <= betting / exact <= 1.75


def test_case_counts_and_case_rate_bound():
    counts = st.case_counts(["b", "a", "b", "c", "a", "a"], [1, 0, 0, 1, 1, 1])
    assert counts.cases.tolist() == ["a", "b", "c"]
    assert counts.requests.tolist() == [3, 2, 1] and counts.failures.tolist() == [2, 1, 1]
    assert counts.shares.tolist() == pytest.approx([2 / 3, 0.5, 1.0])
    bound = st.case_rate_upper_bound(counts.requests, counts.failures, 0.9)
    assert bound == st.mean_upper_bound(counts.shares, 0.9)
    assert bound.n == 3


def test_case_rate_bound_weights_cases_equally():
    # One case with 100 requests, all failed; nine with one request, none failed.
    bound = st.case_rate_upper_bound([100] + [1] * 9, [100] + [0] * 9)
    assert bound.estimate == pytest.approx(0.1)  # not 100 / 109


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: st.mean_upper_bound([0.5, 1.5]), r"losses\[1\] = 1.5 is not a number in \[0, 1\]"),
        (lambda: st.mean_upper_bound([]), r"non-empty"),
        (lambda: st.mean_upper_bound([0.5], method="wsr"), r"method must be 'hoeffding_bentkus' or 'betting'"),
        (lambda: st.case_rate_upper_bound([3, 0], [1, 0]), r"requests\[1\] = 0"),
        (lambda: st.case_rate_upper_bound([3, 2], [1, 3]), r"failures\[1\] = 3 exceeds requests\[1\] = 2"),
        (lambda: st.case_rate_upper_bound([3, 2], [1]), r"requests has 2 cases but failures has 1"),
        (lambda: st.case_counts([1, 2], [1]), r"case_index has 2 values but failed has 1"),
        (lambda: st.p_value_bounded_mean(1.2, 10, 0.1), r"mean_loss must lie in \[0, 1\]"),
        (lambda: st.select_threshold_by_case([0.5, 0.6], [1, 1], [0], max_risk=0.1, delta=0.1), r"case_index has 1"),
        (
            lambda: st.select_threshold_by_case([0.5], [1], [0], max_risk=0.1, delta=0.1, method="crc"),
            r"method must be one of holm, bonferroni, fixed_sequence",
        ),
    ],
)
def test_bad_input_to_bounds_is_named(call, message):
    with pytest.raises(st.StatsInputError, match=message):
        call()


# --------------------------------------------------------------------------- Learn-then-Test over cases


def _requests(seed: int, n_cases: int, per_case: int):
    rng = np.random.default_rng(seed)
    difficulty = rng.beta(1.0, 12.0, size=n_cases)
    case = np.repeat(np.arange(n_cases), per_case)
    confidence = np.round(rng.random(case.size), 2)
    wrong = rng.random(case.size) < 2 * difficulty[case] * (1 - confidence)
    return confidence, ~wrong, case


@pytest.mark.parametrize("risk", ["selective", "joint"])
def test_one_request_per_case_gives_the_request_level_hb_p_values(risk):
    confidence, correct, _ = _requests(1, 3000, 1)
    grid = st.threshold_grid(1.0, 0.5, 0.05)
    by_case = st.select_threshold_by_case(
        confidence, correct, np.arange(3000), max_risk=0.05, delta=0.1, grid=grid, risk=risk
    )
    by_request = st.select_threshold(
        confidence, correct, max_risk=0.05, delta=0.1, grid=grid, risk=risk, p_value="hoeffding_bentkus"
    )
    assert by_case.p_values == pytest.approx(by_request.p_values, rel=1e-9)
    assert by_case.threshold == by_request.threshold and by_case.certified
    assert (by_case.n_answered, by_case.n_errors, by_case.n, by_case.n_cases) == (
        by_request.n_answered, by_request.n_errors, 3000, 3000
    )
    assert by_request.n_cases is None


@pytest.mark.parametrize("risk", ["selective", "joint"])
def test_case_p_values_match_a_loop_over_cases(risk):
    confidence, correct, case = _requests(2, 40, 7)
    grid = (0.9, 0.7, 0.5, 0.3)
    a = 0.1
    result = st.select_threshold_by_case(confidence, correct, case, max_risk=a, delta=0.2, grid=grid, risk=risk)
    for t, p in zip(grid, result.p_values):
        losses = []
        for c in range(40):
            mine = case == c
            answered = int(np.sum(confidence[mine] >= t))
            wrong = int(np.sum((confidence[mine] >= t) & ~correct[mine]))
            if risk == "joint":
                losses.append(Fraction(wrong, 7))
            elif answered:
                losses.append(Fraction(wrong, answered))
        expected = _brute_force_hb(sum(losses, Fraction(0)), len(losses), Fraction(1, 10)) if losses else 1.0
        assert p == pytest.approx(expected, rel=1e-9), t


def test_case_result_describes_the_chosen_threshold():
    confidence, correct, case = _requests(3, 400, 10)
    result = st.select_threshold_by_case(confidence, correct, case, max_risk=0.08, delta=0.05)
    assert result.certified and result.n_cases == 400 and result.n == 4000
    answered = confidence >= result.threshold
    assert result.n_answered == int(answered.sum())
    assert result.n_errors == int(np.sum(answered & ~correct))
    assert result.coverage == pytest.approx(answered.mean())  # equal requests per case
    assert result.n_errors / result.n_answered <= result.risk_upper_bound <= 1.0
    assert "400 cases, 4000 requests" in result.summary()
    # The bound on the chosen threshold's risk is the HB one at delta / len(grid).
    best = result.grid.index(result.threshold)
    assert result.p_value == result.p_values[best]
    fixed = st.select_threshold_by_case(
        confidence, correct, case, max_risk=0.08, delta=0.05, method="fixed_sequence", start=0.99
    )
    run = len(fixed.certified_thresholds)
    first = fixed.grid.index(0.99)
    assert fixed.certified_thresholds == fixed.grid[first : first + run]
    assert all(p <= 0.05 for p in fixed.p_values[first : first + run])
    assert fixed.p_values[first + run] > 0.05


def test_correlated_requests_certify_less_than_independent_ones():
    # The same requests: when a case's ten requests all share one outcome, there are 10x fewer
    # independent draws, and the case-level test must see that.
    rng = np.random.default_rng(4)
    confidence = np.repeat(np.round(rng.random(300), 2), 10)
    correct = np.repeat(rng.random(300) > 0.06, 10)
    alone = st.select_threshold_by_case(confidence, correct, np.arange(3000), max_risk=0.08, delta=0.05, risk="joint")
    together = st.select_threshold_by_case(
        confidence, correct, np.arange(3000) // 10, max_risk=0.08, delta=0.05, risk="joint"
    )
    assert alone.threshold < together.threshold
