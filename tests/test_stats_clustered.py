"""Simulations: with a case's requests sharing its difficulty, the case-level bounds and thresholds keep their promise.

Each simulated case draws a failure probability ``p`` from a beta distribution with mean ``MEAN``;
its ``M`` requests then fail independently given ``p``. The design effect of a case's request count
is ``1 + (M - 1) * ICC`` with ``ICC = 1 / (a + b + 1)`` for ``Beta(a, b)``, so the beta's total
``a + b`` is chosen to hit design effects 1 (no case effect), 2 and 4. Seeds are fixed.

A bound at level ``1 - DELTA`` may miss in at most ``DELTA`` of the simulations; with ``SIMS``
simulations the count of misses is allowed up to the 99.9% quantile of ``Binomial(SIMS, DELTA)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

import failpath.stats as st
from failpath.stats.bounds import _hb_upper_bound
from failpath.stats.thresholds import _case_p_values, _fixed_sequence, _holm

M = 37  # requests per case, as in the bundled example
MEAN = 0.05
DELTA = 0.1
SIMS = 2000
ALLOWED_MISSES = int(binom.ppf(0.999, SIMS, DELTA))


def _difficulty(rng: np.random.Generator, mean: float, design_effect: float, shape: tuple[int, ...]) -> np.ndarray:
    """Per-case failure probabilities with the given mean and design effect for M requests."""
    if design_effect == 1:
        return np.full(shape, mean)
    total = (M - 1) / (design_effect - 1) - 1  # ICC = 1 / (total + 1)
    return rng.beta(mean * total, (1 - mean) * total, size=shape)


def _design_effect(p: np.ndarray, mean: float) -> float:
    return 1 + (M - 1) * np.var(p) / (mean * (1 - mean))


@pytest.mark.parametrize("design_effect", [1, 2, 4])
def test_case_level_bound_covers_the_true_rate(design_effect):
    rng = np.random.default_rng(100 + design_effect)
    n_cases = 60
    p = _difficulty(rng, MEAN, design_effect, (SIMS, n_cases))
    assert _design_effect(p, MEAN) == pytest.approx(design_effect, rel=0.05)
    failures = rng.binomial(M, p)
    bounds = _hb_upper_bound(np.sum(failures / M, axis=1), np.full(SIMS, n_cases), DELTA)
    # The vectorised bound is the public one.
    for i in range(3):
        public = st.case_rate_upper_bound(np.full(n_cases, M), failures[i], 1 - DELTA)
        assert bounds[i] == pytest.approx(public.bound, rel=1e-12)
    misses = int(np.sum(bounds < MEAN))
    assert misses <= ALLOWED_MISSES, (design_effect, misses)


def test_betting_bound_covers_the_true_rate_with_a_strong_case_effect():
    rng = np.random.default_rng(7)
    sims, n_cases = 300, 60
    p = _difficulty(rng, MEAN, 4, (sims, n_cases))
    shares = rng.binomial(M, p) / M
    misses = sum(st.mean_upper_bound(s, 1 - DELTA, method="betting").bound < MEAN for s in shares)
    assert misses <= binom.ppf(0.999, sims, DELTA), misses


def test_request_level_bound_under_covers_with_a_strong_case_effect():
    # Why the case is the unit: the exact binomial bound over requests treats the 37 requests of a
    # case as independent and misses far more often than DELTA at design effect 4.
    rng = np.random.default_rng(4)
    n_cases = 60
    p = _difficulty(rng, MEAN, 4, (SIMS, n_cases))
    failures = rng.binomial(M, p).sum(axis=1)
    bounds = st.binomial_upper_bound(failures, n_cases * M, 1 - DELTA)
    misses = int(np.sum(bounds < MEAN))
    assert misses > 1.5 * SIMS * DELTA, misses  # coverage clearly below 1 - DELTA (about 80% here)


def test_case_level_bound_covers_pooled_suites_of_different_difficulty():
    # Three suites (easy, medium, hard) of 20 cases each, with their own case effects, pooled.
    rng = np.random.default_rng(9)
    suites = [(0.01, 2), (0.05, 4), (0.2, 4)]
    p = np.concatenate([_difficulty(rng, mean, de, (SIMS, 20)) for mean, de in suites], axis=1)
    true_rate = np.mean([mean for mean, _ in suites])
    shares = rng.binomial(M, p) / M
    bounds = _hb_upper_bound(shares.sum(axis=1), np.full(SIMS, 60), DELTA)
    assert int(np.sum(bounds < true_rate)) <= ALLOWED_MISSES


# --------------------------------------------------------------------------- Learn-then-Test over cases

LEVELS = np.round(np.arange(0.95, 0.0, -0.1), 2)  # confidences 0.95, 0.85, ..., 0.05; also the grid
WRONG_WEIGHT = (1 - LEVELS) / 0.95  # P(wrong | confidence c, case difficulty p) = p * WRONG_WEIGHT


def _true_risk(mean: float, risk: str, weight: np.ndarray = WRONG_WEIGHT) -> np.ndarray:
    """True risk at each grid threshold (answer when confidence >= t), for cases of mean difficulty."""
    cumulative = np.cumsum(weight)
    answered_levels = np.arange(1, LEVELS.size + 1)
    if risk == "joint":
        return mean * cumulative / LEVELS.size
    # Confidence is independent of the case's difficulty: E[W/A | A > 0] = mean * average weight
    # of the answered levels (whether a case's requests share one confidence level or not).
    return mean * cumulative / answered_levels


def _simulate_counts(rng, sims, n_cases, mean, design_effect, *, weight=WRONG_WEIGHT, shared_confidence=False):
    """Per simulation, case and grid threshold: requests answered and answered-and-wrong.

    Each request's confidence is one of LEVELS, uniformly; with ``shared_confidence`` all the
    requests of a case share one (as variants of one case often do).
    """
    p = _difficulty(rng, mean, design_effect, (sims, n_cases))
    if shared_confidence:
        at_level = rng.multinomial(1, np.full(LEVELS.size, 1 / LEVELS.size), size=(sims, n_cases)) * M
    else:
        at_level = rng.multinomial(M, np.full(LEVELS.size, 1 / LEVELS.size), size=(sims, n_cases))
    wrong_at_level = rng.binomial(at_level, p[..., None] * weight)
    return np.cumsum(at_level, axis=-1), np.cumsum(wrong_at_level, axis=-1)


def _chosen(p_values: np.ndarray, method: str) -> np.ndarray:
    """Index of the chosen (lowest certified) grid threshold per simulation; -1 when none."""
    chosen = np.full(p_values.shape[0], -1)
    for i, row in enumerate(p_values):
        certified = np.flatnonzero(_holm(row, DELTA) if method == "holm" else _fixed_sequence(row, DELTA, 0))
        if certified.size:
            chosen[i] = certified[-1]
    return chosen


@pytest.mark.parametrize("design_effect", [1, 2, 4])
@pytest.mark.parametrize("risk, budget", [("selective", 0.06), ("joint", 0.04)])
def test_case_level_thresholds_violate_at_most_delta(design_effect, risk, budget):
    rng = np.random.default_rng(200 + design_effect)
    sims, n_cases, mean = 1000, 300, 0.2
    answered, wrong = _simulate_counts(rng, sims, n_cases, mean, design_effect)
    truth = _true_risk(mean, risk)
    assert truth[0] < budget < truth[-1]  # the budget crosses the risk curve inside the grid
    p_values = _case_p_values(answered, wrong, np.full((sims, n_cases, 1), float(M)), budget, risk)
    allowed = binom.ppf(0.999, sims, DELTA)
    for method in ("holm", "fixed_sequence"):
        chosen = _chosen(p_values, method)
        assert np.mean(chosen >= 0) > 0.9, method  # the test has power: nearly every run certifies
        violations = int(np.sum((chosen >= 0) & (truth[np.maximum(chosen, 0)] > budget)))
        assert violations <= allowed, (method, violations)
    # The vectorised path is the public function.
    case = np.repeat(np.arange(n_cases), M)
    for i in range(2):
        per_level = np.diff(answered[i], prepend=0, axis=-1).ravel()
        wrong_per_level = np.diff(wrong[i], prepend=0, axis=-1).ravel()
        confidence = np.repeat(np.tile(LEVELS, n_cases), per_level)
        correct = np.concatenate([np.r_[np.ones(a - w, bool), np.zeros(w, bool)] for a, w in zip(per_level, wrong_per_level)])
        public = st.select_threshold_by_case(
            confidence, correct, case, max_risk=budget, delta=DELTA, grid=tuple(LEVELS), risk=risk
        )
        assert public.p_values == pytest.approx(tuple(p_values[i]), rel=1e-12)


@pytest.mark.parametrize(
    "risk, weight, share",
    [("selective", np.full(LEVELS.size, 0.5), 0.97), ("joint", WRONG_WEIGHT, 0.99)],
)
def test_request_level_thresholds_violate_too_often_where_case_level_ones_hold(risk, weight, share):
    # A case's requests share its difficulty and its confidence, with design effect 4. The budget
    # is a little below the true risk at the sixth grid threshold (selective: at every threshold,
    # the confidence carrying no information), so certifying there is a violation. Request-level
    # binomial p-values with fixed-sequence testing violate far more often than DELTA allows; the
    # case-level ones stay within it, with Holm and with fixed sequence.
    rng = np.random.default_rng(31)
    sims, n_cases, mean = 1000, 300, 0.2
    answered, wrong = _simulate_counts(rng, sims, n_cases, mean, 4, weight=weight, shared_confidence=True)
    truth = _true_risk(mean, risk, weight)
    budget = share * truth[5]
    allowed = binom.ppf(0.999, sims, DELTA)

    def violations(p_values: np.ndarray, method: str) -> int:
        chosen = _chosen(p_values, method)
        return int(np.sum((chosen >= 0) & (truth[np.maximum(chosen, 0)] > budget)))

    by_case = _case_p_values(answered, wrong, np.full((sims, n_cases, 1), float(M)), budget, risk)
    for method in ("holm", "fixed_sequence"):
        assert violations(by_case, method) <= allowed, method
    total_answered, total_wrong = answered.sum(axis=1), wrong.sum(axis=1)
    trials = total_answered if risk == "selective" else np.full_like(total_answered, n_cases * M)
    by_request = st.p_value_binomial(total_wrong, trials, budget)
    assert violations(by_request, "fixed_sequence") > allowed
