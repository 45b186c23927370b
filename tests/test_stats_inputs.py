"""Bad input gets a clear error naming the argument, position and value; the package imports light."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pytest

import failpath as fp
import failpath.stats as st
from failpath.core import FailpathError


def test_errors_are_failpath_and_value_errors():
    assert issubclass(st.StatsInputError, FailpathError)
    assert issubclass(st.StatsInputError, ValueError)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: st.aurc([0.9, 0.8], [1]), r"confidence has 2 values but correct has 1"),
        (lambda: st.auroc([0.9, float("nan")], [1, 0]), r"confidence\[1\] = nan is not a finite number"),
        (lambda: st.ece([0.9, 1.2], [1, 0]), r"confidence\[1\] = 1.2 is not a number in \[0, 1\]"),
        (lambda: st.brier([0.9, -0.1], [1, 0]), r"confidence\[1\]"),
        (lambda: st.aurc([0.9, 0.8], [1, "yes"]), r"correct must hold booleans or 0/1"),
        (lambda: st.aurc([0.9, 0.8], [1, 2]), r"correct\[1\] = 2: correctness must be True/False or 1/0"),
        (lambda: st.aurc([], []), r"confidence is empty"),
        (lambda: st.aurc([[0.9]], [[1]]), r"one-dimensional"),
        (lambda: st.aurc(["high"], [1]), r"confidence must be a list or array of numbers"),
        (lambda: st.ece([0.5], [1], bins=0), r"bins must be a positive whole number, got 0"),
        (lambda: st.aurc([0.5], [1], ties="random"), r"ties must be"),
        (lambda: st.selective_risk_at_coverage([0.5], [1], 0), r"coverage must be greater than 0"),
        (lambda: st.selective_risk_at_coverage([0.5], [1], 1.5), r"coverage must be between 0 and 1"),
        (lambda: st.expand_groups([(0.9, 10, 11)]), r"groups\[0\] = \(0.9, 10, 11\)"),
        (lambda: st.expand_groups([(0.9, 10)]), r"each group must be \(confidence, count, errors\)"),
        (lambda: st.expand_groups([]), r"groups hold no items"),
        (lambda: st.clopper_pearson(5, 3), r"k must not exceed n"),
        (lambda: st.clopper_pearson(1.5, 3), r"k must be a non-negative whole number"),
        (lambda: st.clopper_pearson(1, 3, alpha=0), r"alpha must be strictly between 0 and 1"),
        (lambda: st.p_value_binomial(3, 2, 0.1), r"n_errors must not exceed n_trials"),
        (lambda: st.bootstrap_ci(np.mean), r"at least one array"),
        (lambda: st.bootstrap_ci(np.mean, [1.0]), r"at least 2 values"),
        (lambda: st.conformal_p_values([], [0.5]), r"calibration_scores is empty"),
        (lambda: st.mahalanobis_squared([[0, 0], [1, 1], [2, 2]], [[0, 0]]), r"singular; pass ridge > 0"),
        (lambda: st.fit_mahalanobis([[0, 1], [1, 0], [1, 1]]).squared([[1, 2, 3]]), r"3 features but the model"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises(st.StatsInputError, match=message):
        call()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_risk=0.0, delta=0.05), r"max_risk must be strictly between 0 and 1, got 0.0"),
        (dict(max_risk=0.05, delta=None), r"needs delta"),
        (dict(max_risk=0.05, delta=1.0), r"delta must be strictly between 0 and 1"),
        (dict(max_risk=0.05, delta=0.05, method="sidak"), r"method must be one of"),
        (dict(max_risk=0.05, delta=0.05, risk="marginal"), r"risk must be 'selective' or 'joint'"),
        (dict(max_risk=0.05, delta=0.05, grid=[0.5, 0.9]), r"grid must be strictly decreasing.*grid\[1\] = 0.9"),
        (dict(max_risk=0.05, delta=0.05, method="fixed_sequence", start=0.555), r"start=0.555 is not a threshold"),
        (dict(max_risk=0.05, delta=0.05, start=0.5), r"start is only used by method='fixed_sequence'"),
        (dict(max_risk=0.05, delta=None, method="crc"), r"use it with risk='joint'"),
        (dict(max_risk=0.05, delta=0.05, method="split_fixed_sequence", split_fraction=0.01), r"leaves one part"),
        (dict(max_risk=0.05, delta=0.05, p_value="t-test"), r"p_value must be"),
    ],
)
def test_select_threshold_refuses_bad_settings(kwargs, message):
    confidence = np.linspace(0.0, 1.0, 50)
    with pytest.raises(st.StatsInputError, match=message):
        st.select_threshold(confidence, confidence > 0.2, **kwargs)


@pytest.mark.parametrize(
    "costs, message",
    [
        ({"answer": (0, 10)}, r"costs lack \['escalate'\]"),
        ({"answer": (0, 10), "escalate": (3, 3), "about": "x"}, r"unknown action\(s\) in costs: \['about'\]"),
        ({"answer": 5, "escalate": (3, 3)}, r"costs\['answer'\] = 5"),
        ({"answer": (0, math.inf), "escalate": (3, 3)}, r"finite"),
        ({"answer": (10, 0), "escalate": (3, 3)}, r"costs are inverted: .* escalate -> answer -> escalate|answer -> escalate"),
        ([("answer", (0, 1))], r"costs must be a mapping"),
    ],
)
def test_bad_costs_are_named(costs, message):
    with pytest.raises(st.StatsInputError, match=message):
        st.bayes_cutoffs(costs)


def test_cost_policy_cap_needs_both_settings():
    with pytest.raises(st.StatsInputError, match="needs both max_risk and delta"):
        st.cost_optimal_policy([0.5, 0.9], [1, 1], {"answer": (0, 1), "escalate": (1, 1)}, max_risk=0.1)


def test_threshold_grid_is_exact_decimal():
    grid = st.threshold_grid()
    assert len(grid) == 101 and grid[0] == 1.0 and grid[-1] == 0.0 and grid[4] == 0.96
    assert st.threshold_grid(1.0, 0.4) == tuple(round(1.0 - i / 100, 2) for i in range(61))
    assert st.threshold_grid(0.9, 0.5, 0.1) == (0.9, 0.8, 0.7, 0.6, 0.5)
    with pytest.raises(st.StatsInputError):
        st.threshold_grid(0.2, 0.5)


def test_public_names_have_docstrings_and_are_exported():
    assert sorted(st.__all__) == sorted(set(st.__all__))
    for name in st.__all__:
        value = getattr(st, name)
        assert value.__doc__ and len(value.__doc__.strip()) > 20, name
    assert fp.stats is st


def test_stats_needs_no_scipy_at_import_and_failpath_no_numpy():
    code = (
        "import sys, failpath; assert 'numpy' not in sys.modules, 'failpath imported numpy'; "
        "import failpath.stats; assert 'scipy' not in sys.modules, 'failpath.stats imported scipy'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


_DATA = np.linspace(0.0, 1.0, 40)
_RIGHT = _DATA > 0.2
_COSTS = {"answer": (0, 10), "escalate": (1, 1)}

#: Every function of failpath.stats that takes a level (confidence, alpha, delta) or a risk budget.
_LEVEL_TAKERS = {
    "clopper_pearson(alpha)": ("alpha", lambda v: st.clopper_pearson(3, 10, v)),
    "binomial_upper_bound(confidence)": ("confidence", lambda v: st.binomial_upper_bound(3, 10, v)),
    "bootstrap_ci(confidence)": ("confidence", lambda v: st.bootstrap_ci(np.mean, _DATA, confidence=v)),
    "paired_gap(confidence)": ("confidence", lambda v: st.paired_gap(_RIGHT, _DATA > 0.3, confidence=v)),
    "mean_upper_bound(confidence)": ("confidence", lambda v: st.mean_upper_bound(_DATA, v)),
    "mean_upper_bound(confidence, betting)": (
        "confidence", lambda v: st.mean_upper_bound(_DATA, v, method="betting")
    ),
    "case_rate_upper_bound(confidence)": ("confidence", lambda v: st.case_rate_upper_bound([3, 4], [1, 0], v)),
    "select_threshold(delta)": ("delta", lambda v: st.select_threshold(_DATA, _RIGHT, max_risk=0.1, delta=v)),
    "select_threshold(delta, crc)": (
        "delta", lambda v: st.select_threshold(_DATA, _RIGHT, max_risk=0.1, delta=v, method="crc", risk="joint")
    ),
    "select_threshold(max_risk)": ("max_risk", lambda v: st.select_threshold(_DATA, _RIGHT, max_risk=v, delta=0.1)),
    "select_threshold_by_case(delta)": (
        "delta", lambda v: st.select_threshold_by_case(_DATA, _RIGHT, np.arange(40) // 4, max_risk=0.1, delta=v)
    ),
    "select_threshold_by_case(max_risk)": (
        "max_risk", lambda v: st.select_threshold_by_case(_DATA, _RIGHT, np.arange(40) // 4, max_risk=v, delta=0.1)
    ),
    "cost_optimal_policy(delta)": (
        "delta", lambda v: st.cost_optimal_policy(_DATA, _RIGHT, _COSTS, max_risk=0.1, delta=v)
    ),
    "cost_optimal_policy(max_risk)": (
        "max_risk", lambda v: st.cost_optimal_policy(_DATA, _RIGHT, _COSTS, max_risk=v, delta=0.1)
    ),
    "pass_k_lower_bound(confidence)": ("confidence", lambda v: st.pass_k_lower_bound([3, 4], [4, 4], 2, v)),
    "p_value_binomial(max_risk)": ("max_risk", lambda v: st.p_value_binomial(1, 10, v)),
    "p_value_hoeffding_bentkus(max_risk)": ("max_risk", lambda v: st.p_value_hoeffding_bentkus(1, 10, v)),
    "p_value_bounded_mean(max_risk)": ("max_risk", lambda v: st.p_value_bounded_mean(0.1, 10, v)),
}


_NONE_MEANS_NOT_GIVEN = {
    "select_threshold(delta)", "select_threshold(delta, crc)", "cost_optimal_policy(delta)", "cost_optimal_policy(max_risk)"
}


@pytest.mark.parametrize("value", [1.5, -0.1, 0.0, 1.0, float("nan"), float("inf"), True, "0.95", None])
@pytest.mark.parametrize("function", sorted(_LEVEL_TAKERS))
def test_every_level_outside_zero_one_is_refused_the_same_way(function, value):
    name, call = _LEVEL_TAKERS[function]
    if value is None and function in _NONE_MEANS_NOT_GIVEN:
        return  # there None means "not given" (conformal risk control, or no risk cap)
    expected = rf"^{name} must be strictly between 0 and 1, got {re.escape(repr(value))}$"
    with pytest.raises(st.StatsInputError, match=expected):
        call(value)


@pytest.mark.parametrize("function", sorted(_LEVEL_TAKERS))
def test_every_level_taker_accepts_a_numpy_level(function):
    _, call = _LEVEL_TAKERS[function]
    call(np.float64(0.1))


def test_stats_functions_never_import_scipy_stats():
    code = (
        "import sys, numpy as np, failpath.stats as st\n"
        "c = np.linspace(0, 1, 300); k = c > 0.3\n"
        "st.auroc(c, k); st.bootstrap_ci(np.mean, c, seed=0); st.paired_gap(k, c > 0.35, seed=0)\n"
        "st.select_threshold(c, k, max_risk=0.1, delta=0.1)\n"
        "st.select_threshold_by_case(c, k, np.arange(300) // 3, max_risk=0.1, delta=0.1)\n"
        "st.mean_upper_bound(c); st.mean_upper_bound(c, method='betting')\n"
        "st.cost_optimal_policy(c, k, {'answer': (0, 10), 'escalate': (1, 1)})\n"
        "assert 'scipy.stats' not in sys.modules, 'a statistic imported scipy.stats'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
