"""Properties of the confidence-quality metrics, thresholds and policy, checked on generated data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

import failpath.stats as st

SETTINGS = settings(max_examples=60, deadline=None)

# Few distinct values, so that ties (the tricky part of every definition) are common.
confidences = hs.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.7, 0.9, 0.95, 1.0])


@hs.composite
def labeled(draw, min_size: int = 1, max_size: int = 40):
    n = draw(hs.integers(min_size, max_size))
    confidence = draw(hs.lists(confidences, min_size=n, max_size=n))
    correct = draw(hs.lists(hs.booleans(), min_size=n, max_size=n))
    return np.array(confidence), np.array(correct)


@given(labeled())
@SETTINGS
def test_auroc_is_in_unit_interval_and_symmetric(data):
    confidence, correct = data
    area = st.auroc(confidence, correct)
    if correct.all() or (~correct).all():
        assert math.isnan(area)
        return
    assert 0.0 <= area <= 1.0
    assert st.auroc(confidence, ~correct) == pytest.approx(1.0 - area)
    assert st.auroc(-confidence, correct) == pytest.approx(1.0 - area)


@given(labeled(max_size=15))
@SETTINGS
def test_auroc_is_the_share_of_right_wrong_pairs_ordered_correctly(data):
    confidence, correct = data
    right, wrong = confidence[correct], confidence[~correct]
    if right.size == 0 or wrong.size == 0:
        return
    pairs = [1.0 if r > w else 0.5 if r == w else 0.0 for r in right for w in wrong]
    assert st.auroc(confidence, correct) == pytest.approx(np.mean(pairs))


@given(labeled())
@SETTINGS
def test_aurc_is_at_least_the_oracle_and_between_tie_orders(data):
    confidence, correct = data
    average = st.aurc(confidence, correct)
    optimistic = st.aurc(confidence, correct, ties="optimistic")
    pessimistic = st.aurc(confidence, correct, ties="pessimistic")
    oracle = st.oracle_aurc(correct)
    assert oracle - 1e-12 <= optimistic <= average + 1e-12 <= pessimistic + 2e-12
    assert st.e_aurc(confidence, correct) >= -1e-12
    assert 0.0 <= st.augrc(confidence, correct) <= average + 1e-12


@given(labeled(max_size=6))
@settings(max_examples=30, deadline=None)
def test_aurc_averages_over_every_order_of_tied_items(data):
    confidence, correct = data
    ranks = np.arange(1, confidence.size + 1)
    areas = []
    for permutation in itertools.permutations(range(confidence.size)):
        order = np.array(permutation)[np.argsort(-confidence[list(permutation)], kind="stable")]
        areas.append(np.mean(np.cumsum(~correct[order]) / ranks))
    assert st.aurc(confidence, correct) == pytest.approx(np.mean(areas))


@given(labeled())
@SETTINGS
def test_calibration_errors_are_in_unit_interval(data):
    confidence, correct = data
    for bins in (1, 10, 15):
        assert 0.0 <= st.ece(confidence, correct, bins) <= 1.0
        assert 0.0 <= st.adaptive_ece(confidence, correct, bins) <= 1.0
    assert 0.0 <= st.brier(confidence, correct) <= 1.0


@given(labeled())
@SETTINGS
def test_reliability_bins_partition_the_items(data):
    confidence, correct = data
    bins = st.reliability_bins(confidence, correct, bins=10)
    assert bins.count.sum() == confidence.size == bins.n
    filled = bins.count > 0
    assert np.all(np.isnan(bins.accuracy[~filled])) and np.all((bins.accuracy[filled] >= 0) & (bins.accuracy[filled] <= 1))
    for b in np.flatnonzero(filled):
        low, high = bins.edges[b], bins.edges[b + 1]
        assert np.all((bins.mean_confidence[b] > low - 1e-12) & (bins.mean_confidence[b] <= high + 1e-12))
    assert bins.ece == st.ece(confidence, correct, bins=10)


def test_ece_bins_are_closed_on_the_right():
    # 0.6 sits on an edge of 10 equal bins: it belongs to (0.5, 0.6], with 0.55, not with 0.65.
    assert st.ece([0.55, 0.6], [1, 0], bins=10) == pytest.approx(abs(0.5 - 0.575))
    assert st.ece([0.6, 0.65], [1, 0], bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.65)
    # Confidence 0 goes to the first bin, with 0.05.
    assert st.ece([0.0, 0.05], [0, 0], bins=10) == pytest.approx(0.025)
    assert st.ece([1.0, 1.0, 1.0], [1, 1, 1]) == 0.0


@given(labeled())
@SETTINGS
def test_risk_coverage_is_monotone(data):
    confidence, correct = data
    curve = st.risk_coverage(confidence, correct)
    assert np.all(np.diff(curve.thresholds) < 0)
    assert np.all(np.diff(curve.coverage) > 0) and curve.coverage[-1] == 1.0
    assert np.all(np.diff(curve.n_errors) >= 0) and np.all(np.diff(curve.joint_risk) >= 0)
    assert curve.n_errors[-1] == int((~correct).sum())
    for t, answered, errors in zip(curve.thresholds, curve.n_answered, curve.n_errors):
        chosen = confidence >= t
        assert (answered, errors) == (chosen.sum(), (chosen & ~correct).sum())
    with pytest.raises(ValueError):
        curve.coverage[0] = 0.5  # the curve is a frozen value


@given(labeled(), hs.floats(0.01, 1.0))
@SETTINGS
def test_selective_risk_at_coverage_uses_the_smallest_set_reaching_it(data, coverage):
    confidence, correct = data
    risk = st.selective_risk_at_coverage(confidence, correct, coverage)
    curve = st.risk_coverage(confidence, correct)
    i = int(np.flatnonzero(curve.coverage >= coverage - 1e-12)[0])
    assert risk == curve.selective_risk[i]
    assert i == 0 or curve.coverage[i - 1] < coverage


@given(
    hs.lists(hs.tuples(confidences, hs.integers(0, 30), hs.integers(0, 30)), min_size=1, max_size=8)
    .map(lambda groups: [(c, n + e, e) for c, n, e in groups])
    .filter(lambda groups: sum(n for _, n, _ in groups) > 0)
)
@SETTINGS
def test_expand_groups_keeps_counts(groups):
    confidence, correct = st.expand_groups(groups)
    assert confidence.size == sum(n for _, n, _ in groups)
    for value in {c for c, _, _ in groups}:
        members = confidence == value
        assert members.sum() == sum(n for c, n, _ in groups if c == value)
        assert (~correct[members]).sum() == sum(e for c, _, e in groups if c == value)


# --------------------------------------------------------------------------- thresholds


@hs.composite
def calibration(draw):
    seed = draw(hs.integers(0, 2**32 - 1))
    n = draw(hs.integers(20, 400))
    rng = np.random.default_rng(seed)
    confidence = np.round(rng.random(n), 2)
    correct = rng.random(n) >= draw(hs.floats(0.0, 0.4)) * (1 - confidence)
    return confidence, correct


@given(calibration(), hs.sampled_from([0.02, 0.05, 0.1, 0.2]), hs.sampled_from([0.01, 0.05, 0.2]))
@SETTINGS
def test_ltt_methods_are_consistent(data, max_risk, delta):
    confidence, correct = data
    grid = st.threshold_grid(1.0, 0.0, 0.05)
    kwargs = dict(max_risk=max_risk, delta=delta, grid=grid)
    holm = st.select_threshold(confidence, correct, **kwargs)
    bonferroni = st.select_threshold(confidence, correct, method="bonferroni", **kwargs)
    fixed = st.select_threshold(confidence, correct, method="fixed_sequence", **kwargs)
    # Holm rejects everything Bonferroni does.
    assert set(bonferroni.certified_thresholds) <= set(holm.certified_thresholds)
    for result in (holm, bonferroni, fixed):
        p_values = dict(zip(result.grid, result.p_values))
        if result.certified:
            assert result.threshold == min(result.certified_thresholds)
            assert result.p_value == p_values[result.threshold] <= delta
            answered = confidence >= result.threshold
            assert result.n_answered == answered.sum() and result.n_errors == (answered & ~correct).sum()
            assert result.coverage == pytest.approx(answered.mean())
            assert result.risk_upper_bound >= result.n_errors / result.n_answered
        else:
            assert result.threshold == math.inf and result.coverage == 0 and result.certified_thresholds == ()
    # Fixed sequence certifies a run from the top of the grid.
    assert fixed.certified_thresholds == tuple(grid[: len(fixed.certified_thresholds)])
    # A looser delta never certifies less.
    looser = st.select_threshold(confidence, correct, max_risk=max_risk, delta=min(0.5, 2 * delta), grid=grid)
    assert set(holm.certified_thresholds) <= set(looser.certified_thresholds)


@given(calibration())
@SETTINGS
def test_holm_matches_the_textbook_step_down(data):
    confidence, correct = data
    delta = 0.1
    result = st.select_threshold(confidence, correct, max_risk=0.1, delta=delta, grid=st.threshold_grid(1.0, 0.0, 0.1))
    p = list(zip(result.p_values, range(len(result.grid))))
    certified = set()
    for step, (value, index) in enumerate(sorted(p)):
        if value > delta / (len(p) - step):
            break
        certified.add(result.grid[index])
    assert set(result.certified_thresholds) == certified


@given(calibration(), hs.integers(0, 1000))
@settings(max_examples=25, deadline=None)
def test_split_fixed_sequence_tests_on_held_out_items(data, seed):
    confidence, correct = data
    result = st.select_threshold(
        confidence, correct, max_risk=0.1, delta=0.1, method="split_fixed_sequence", seed=seed
    )
    assert result.n == confidence.size - confidence.size // 2
    again = st.select_threshold(
        confidence, correct, max_risk=0.1, delta=0.1, method="split_fixed_sequence", seed=seed
    )
    assert again == result  # reproducible for a given seed
    if result.certified:
        run = result.certified_thresholds
        start = result.grid.index(run[0])
        assert run == result.grid[start : start + len(run)]


# --------------------------------------------------------------------------- cost policy

COSTS = {"answer": (0, 10), "clarify": (1, 5), "escalate": (3, 3)}


@given(calibration())
@settings(max_examples=30, deadline=None)
def test_cost_optimal_policy_beats_every_grid_pair(data):
    confidence, correct = data
    grid = st.threshold_grid(1.0, 0.0, 0.1)
    best = st.cost_optimal_policy(confidence, correct, COSTS, grid=grid)
    candidates = (math.inf, *grid)
    for tau_answer, tau_clarify in itertools.combinations_with_replacement(candidates, 2):
        other = st.evaluate_policy(confidence, correct, COSTS, tau_answer=tau_answer, tau_clarify=tau_clarify)
        assert best.mean_cost <= other.mean_cost + 1e-12
    assert best.n_answer + best.n_clarify + best.n_escalate == confidence.size
    assert best.action(best.tau_answer) == "answer"


@given(calibration())
@settings(max_examples=30, deadline=None)
def test_risk_cap_never_lowers_the_answer_threshold(data):
    confidence, correct = data
    capped = st.cost_optimal_policy(confidence, correct, COSTS, max_risk=0.05, delta=0.1)
    uncapped = st.cost_optimal_policy(confidence, correct, COSTS)
    assert capped.tau_answer >= capped.risk_cap.threshold
    assert capped.mean_cost >= uncapped.mean_cost - 1e-12
    if not capped.risk_cap.certified:
        assert capped.n_answer == 0


def test_bayes_cutoffs_when_clarify_never_pays():
    # Clarifying costs more than escalating whether right or wrong: it is never chosen.
    cutoffs = st.bayes_cutoffs({"answer": (0, 10), "clarify": (4, 6), "escalate": (3, 3)})
    assert cutoffs.escalate_to_clarify == cutoffs.clarify_to_answer == pytest.approx(0.7)
    two_actions = st.bayes_cutoffs({"answer": (0, 10), "escalate": (3, 3)})
    assert two_actions == cutoffs
    # Escalating is never cheapest: clarify from p = 0.
    assert st.bayes_cutoffs({"answer": (0, 10), "clarify": (0, 1), "escalate": (3, 3)}).escalate_to_clarify == 0.0
    # Answering is never cheapest: its cutoff is infinite.
    assert st.bayes_cutoffs({"answer": (2, 10), "escalate": (1, 1)}).clarify_to_answer == math.inf


def test_bayes_fit_uses_the_cutoffs():
    confidence = [0.95, 0.9, 0.7, 0.6, 0.3, 0.2]
    correct = [1, 1, 0, 1, 0, 0]
    policy = st.cost_optimal_policy(confidence, correct, COSTS, fit="bayes")
    assert (policy.tau_answer, policy.tau_clarify) == pytest.approx((5 / 6, 0.5))
    assert (policy.n_answer, policy.n_clarify, policy.n_escalate) == (2, 2, 2)
    assert policy.mean_cost == pytest.approx((0 + 0 + 5 + 1 + 3 + 3) / 6)


def test_policy_without_clarify_entry_never_clarifies():
    rng = np.random.default_rng(3)
    confidence = rng.random(300)
    correct = rng.random(300) < confidence
    policy = st.cost_optimal_policy(confidence, correct, {"answer": (0, 10), "escalate": (3, 3)})
    assert policy.n_clarify == 0 and policy.tau_clarify == policy.tau_answer
