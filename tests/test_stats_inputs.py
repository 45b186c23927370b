"""Bad input gets a clear error naming the argument, position and value; the package imports light."""

from __future__ import annotations

import math
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
