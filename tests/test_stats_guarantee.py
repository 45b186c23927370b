"""The threshold guarantees hold in simulation, on calibration sets drawn from a known distribution.

Model: confidence ~ Uniform(0, 1); an answer with confidence c is wrong with probability
0.3 * (1 - c)^2. Then, answering when confidence >= t,

* selective risk(t) = 0.1 * (1 - t)^2   (valid for max_risk = 0.05 iff t >= 0.2929),
* joint risk(t)     = 0.1 * (1 - t)^3   (valid for max_risk = 0.05 iff t >= 0.2063).

Learn-then-Test promises P[true risk at the chosen threshold > max_risk] <= delta. Over many
simulated calibration sets the violation count must be consistent with a rate <= delta (one-sided
binomial test at 0.001), while a naive choice (lowest threshold whose *observed* risk is below
max_risk) must break it, which shows the simulation can see a violation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

import failpath.stats as st

N_SETS = 600
N_ITEMS = 1000
MAX_RISK = 0.05
DELTA = 0.1
GRID = st.threshold_grid()


def true_risk(threshold: float, risk: str) -> float:
    if threshold == math.inf:
        return 0.0
    t = min(max(threshold, 0.0), 1.0)
    return 0.1 * (1 - t) ** 2 if risk == "selective" else 0.1 * (1 - t) ** 3


def calibration_sets(seed: int, n_sets: int = N_SETS, n_items: int = N_ITEMS):
    rng = np.random.default_rng(seed)
    confidence = rng.random((n_sets, n_items))
    wrong = rng.random((n_sets, n_items)) < 0.3 * (1 - confidence) ** 2
    return confidence, ~wrong


def assert_rate_at_most(violations: int, trials: int, delta: float) -> None:
    test = binomtest(violations, trials, delta, alternative="greater")
    assert test.pvalue > 0.001, f"{violations}/{trials} violations is more than delta={delta} allows"


def naive_threshold(confidence: np.ndarray, correct: np.ndarray, risk: str) -> float:
    """The lowest grid threshold whose observed risk is <= max_risk: no guarantee at all."""
    best = math.inf
    for t in GRID:
        answered = confidence >= t
        errors = np.sum(answered & ~correct)
        denominator = answered.sum() if risk == "selective" else confidence.size
        if denominator and errors / denominator <= MAX_RISK:
            best = t
    return best


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, risk, options",
    [
        ("holm", "selective", {}),
        ("bonferroni", "selective", {}),
        # From 1.00 nothing is answered (confidence is continuous), so the sequence starts lower.
        ("fixed_sequence", "selective", {"start": 0.9}),
        ("split_fixed_sequence", "selective", {}),
        ("holm", "joint", {}),
        ("fixed_sequence", "joint", {}),
    ],
)
def test_ltt_violation_rate_is_at_most_delta(method, risk, options):
    confidence, correct = calibration_sets(seed=11)
    violations = 0
    certified = 0
    for conf, right in zip(confidence, correct):
        result = st.select_threshold(
            conf, right, max_risk=MAX_RISK, delta=DELTA, method=method, risk=risk, **options
        )
        violations += true_risk(result.threshold, risk) > MAX_RISK
        certified += result.certified
    assert_rate_at_most(violations, N_SETS, DELTA)
    # The guarantee is not bought by refusing to answer: most sets certify a useful threshold.
    assert certified > 0.9 * N_SETS


@pytest.mark.parametrize("risk", ["selective", "joint"])
def test_the_simulation_detects_an_unguarded_choice(risk):
    confidence, correct = calibration_sets(seed=12, n_sets=200)
    violations = sum(
        true_risk(naive_threshold(conf, right, risk), risk) > MAX_RISK for conf, right in zip(confidence, correct)
    )
    with pytest.raises(AssertionError):
        assert_rate_at_most(violations, 200, DELTA)


def test_exact_test_is_tight_at_the_boundary():
    """One threshold, true risk just above max_risk: the violation rate is close to delta, not above.

    This is where a wrong p-value (an off-by-one in the binomial tail, the wrong tail) shows: the
    rate would be far above delta or near zero.
    """
    rng = np.random.default_rng(13)
    n_sets, n_items, risk = 2000, 2000, 0.0505
    errors = rng.binomial(n_items, risk, size=n_sets)
    violations = 0
    for k in errors:
        correct = np.arange(n_items) >= k
        result = st.select_threshold(
            np.full(n_items, 0.5), correct, max_risk=MAX_RISK, delta=DELTA, grid=[0.5]
        )
        violations += result.certified
    assert_rate_at_most(violations, n_sets, DELTA)
    assert violations > 0.5 * DELTA * n_sets


def test_conformal_risk_control_bounds_expected_joint_risk():
    confidence, correct = calibration_sets(seed=14, n_sets=400, n_items=300)
    risks = np.array(
        [
            true_risk(
                st.select_threshold(conf, right, max_risk=MAX_RISK, delta=None, method="crc", risk="joint").threshold,
                "joint",
            )
            for conf, right in zip(confidence, correct)
        ]
    )
    standard_error = risks.std(ddof=1) / math.sqrt(risks.size)
    assert risks.mean() <= MAX_RISK + 3 * standard_error
    assert risks.mean() > 0.5 * MAX_RISK  # and it does use the risk budget
