"""Every figure of the shared reference vectors (selective.json: tv1, tv2, tv3) is reproduced."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import failpath.stats as st

VECTORS = Path(__file__).resolve().parent.parent.parent / "shared" / "testvectors" / "selective.json"

pytestmark = pytest.mark.skipif(
    not VECTORS.is_file(),
    reason=f"reference vectors not found at {VECTORS} (the shared folder beside the repository)",
)

EXACT = dict(rel=1e-9, abs=1e-12)


@pytest.fixture(scope="module")
def tv() -> dict:
    return json.loads(VECTORS.read_text())


@pytest.fixture(scope="module")
def tv1(tv):
    t = tv["tv1"]
    return t, t["confidence"], t["correct"]


@pytest.fixture(scope="module")
def tv2(tv):
    t = tv["tv2"]
    confidence, correct = st.expand_groups(t["groups"])
    return t, confidence, correct


@pytest.fixture(scope="module")
def grid61():
    return st.threshold_grid(1.0, 0.40, 0.01)


@pytest.fixture(scope="module")
def costs(tv):
    return {k: v for k, v in tv["tv2"]["costs"].items() if k != "about"}


# --------------------------------------------------------------------------- tv1


def test_tv1_risk_coverage_curve(tv1):
    t, confidence, correct = tv1
    curve = st.risk_coverage(confidence, correct)
    expected = t["risk_coverage"]
    assert curve.thresholds.tolist() == pytest.approx(expected["threshold"], **EXACT)
    assert curve.n_answered.tolist() == expected["n_answered"]
    assert curve.n_errors.tolist() == expected["n_errors"]
    assert curve.coverage.tolist() == pytest.approx(expected["coverage"], **EXACT)
    assert curve.joint_risk.tolist() == pytest.approx(expected["joint_risk"], **EXACT)
    selective = np.array(expected["n_errors"]) / np.array(expected["n_answered"])
    assert curve.selective_risk.tolist() == pytest.approx(selective.tolist(), **EXACT)
    assert curve.n == 20 and len(curve) == 18
    assert 1 - curve.selective_risk[-1] == pytest.approx(t["accuracy"])


def test_tv1_area_metrics(tv1):
    t, confidence, correct = tv1
    assert st.aurc(confidence, correct) == pytest.approx(t["aurc"], **EXACT)
    assert st.aurc(confidence, correct, ties="optimistic") == pytest.approx(t["aurc_tie_order_min"], abs=1e-5)
    assert st.aurc(confidence, correct, ties="pessimistic") == pytest.approx(t["aurc_tie_order_max"], abs=1e-5)
    assert st.oracle_aurc(correct) == pytest.approx(t["oracle_aurc_discrete"], **EXACT)
    assert st.oracle_aurc(correct, form="continuous") == pytest.approx(t["oracle_aurc_continuous"], **EXACT)
    assert st.e_aurc(confidence, correct) == pytest.approx(t["e_aurc"], **EXACT)
    assert st.augrc(confidence, correct) == pytest.approx(t["augrc"], **EXACT)
    assert st.aurc([0.5] * len(correct), correct) == pytest.approx(t["aurc_if_all_tied"], **EXACT)


def test_tv1_selective_risk_at_coverage(tv1):
    t, confidence, correct = tv1
    for coverage, risk in t["selective_risk_at_coverage"].items():
        assert st.selective_risk_at_coverage(confidence, correct, float(coverage)) == pytest.approx(risk, **EXACT)


def test_tv1_separation_and_calibration(tv1):
    t, confidence, correct = tv1
    assert st.auroc(confidence, correct) == pytest.approx(t["auroc"], **EXACT)
    assert st.ece(confidence, correct) == pytest.approx(t["ece_15_bins"], **EXACT)
    assert st.ece(confidence, correct, bins=10) == pytest.approx(t["ece_10_bins"], **EXACT)
    assert st.adaptive_ece(confidence, correct, bins=5) == pytest.approx(t["adaptive_ece_5_bins"], **EXACT)
    assert st.adaptive_ece(confidence, correct, bins=15) == pytest.approx(t["adaptive_ece_15_bins"], **EXACT)
    assert st.brier(confidence, correct) == pytest.approx(t["brier"], **EXACT)


def test_tv1_accepts_arrays_and_booleans(tv1):
    t, confidence, correct = tv1
    as_arrays = (np.asarray(confidence), np.asarray(correct, dtype=bool))
    assert st.aurc(*as_arrays) == pytest.approx(t["aurc"], **EXACT)
    assert st.auroc(*as_arrays) == pytest.approx(t["auroc"], **EXACT)
    assert st.ece(*as_arrays) == pytest.approx(t["ece_15_bins"], **EXACT)


# --------------------------------------------------------------------------- tv2: grouped data


def test_tv2_groups_expand_to_items(tv2):
    t, confidence, correct = tv2
    assert confidence.size == 5600
    assert int((~correct).sum()) == 978
    assert confidence.size == sum(count for _, count, _ in t["groups"])


def test_tv2_confidence_quality(tv2):
    t, confidence, correct = tv2
    assert st.aurc(confidence, correct) == pytest.approx(t["aurc"], rel=1e-9)
    assert st.oracle_aurc(correct) == pytest.approx(t["oracle_aurc_discrete"], rel=1e-9)
    assert st.e_aurc(confidence, correct) == pytest.approx(t["e_aurc"], rel=1e-9)
    assert st.auroc(confidence, correct) == pytest.approx(t["auroc"], rel=1e-9)
    assert st.ece(confidence, correct) == pytest.approx(t["ece_15_bins"], rel=1e-9)
    assert st.brier(confidence, correct) == pytest.approx(t["brier"], rel=1e-9)


def test_tv2_binomial_p_values(tv2, grid61):
    t, confidence, correct = tv2
    result = st.select_threshold(confidence, correct, max_risk=t["max_risk"], delta=t["delta"], grid=grid61)
    by_threshold = dict(zip(result.grid, result.p_values))
    for threshold, p in t["selective_risk_ltt"]["p_values_binomial"].items():
        assert by_threshold[float(threshold)] == pytest.approx(p, rel=1e-3)


def test_tv2_hoeffding_bentkus_p_value(tv2):
    t, confidence, correct = tv2
    answered = confidence >= 0.95
    errors = int(np.sum(answered & ~correct))
    p = st.p_value_hoeffding_bentkus(errors, int(answered.sum()), t["max_risk"])
    assert p == pytest.approx(t["selective_risk_ltt"]["p_value_hoeffding_bentkus_at_0.95"], rel=1e-3)
    # For 0/1 losses the exact binomial p-value is the smaller (stronger) one.
    assert st.p_value_binomial(errors, int(answered.sum()), t["max_risk"]) < p


def test_tv2_ltt_holm(tv2, grid61):
    t, confidence, correct = tv2
    expected = t["selective_risk_ltt"]["holm"]
    result = st.select_threshold(confidence, correct, max_risk=t["max_risk"], delta=t["delta"], grid=grid61)
    assert result.certified and result.method == "holm" and result.risk == "selective"
    assert result.threshold == pytest.approx(expected["threshold"])
    assert result.coverage == pytest.approx(expected["coverage"], **EXACT)
    assert (result.n_answered, result.n_errors) == (expected["n_answered"], expected["n_errors"])
    assert result.p_value == pytest.approx(expected["p_value"], rel=1e-3)
    assert result.risk_upper_bound == pytest.approx(expected["clopper_pearson_upper_at_delta_over_61"], rel=1e-3)
    assert result.certified_thresholds == pytest.approx(tuple(expected["certified_thresholds"]))
    assert (result.delta, result.max_risk, result.n) == (t["delta"], t["max_risk"], 5600)


def test_tv2_ltt_bonferroni(tv2, grid61):
    t, confidence, correct = tv2
    expected = t["selective_risk_ltt"]["bonferroni"]
    result = st.select_threshold(
        confidence, correct, max_risk=t["max_risk"], delta=t["delta"], grid=grid61, method="bonferroni"
    )
    assert result.threshold == pytest.approx(expected["threshold"])
    assert result.coverage == pytest.approx(expected["coverage"], **EXACT)


def test_tv2_fixed_sequence_from_the_top_certifies_nothing(tv2, grid61):
    t, confidence, correct = tv2
    expected = t["selective_risk_ltt"]["fixed_sequence_from_1.00"]
    assert expected["threshold"] == "inf"
    result = st.select_threshold(
        confidence, correct, max_risk=t["max_risk"], delta=t["delta"], grid=grid61,
        method="fixed_sequence", start=1.0,
    )
    assert result.threshold == math.inf and not result.certified and result.never_answer
    assert result.coverage == expected["coverage"] == 0.0
    assert result.n_answered == 0 and result.p_value is None and result.certified_thresholds == ()
    assert "NOTHING CERTIFIED" in result.summary() and "never answer" in result.summary()
    assert not result.answers([1.0, 0.999]).any()


def test_tv2_fixed_sequence_from_099(tv2, grid61):
    t, confidence, correct = tv2
    expected = t["selective_risk_ltt"]["fixed_sequence_from_0.99"]
    result = st.select_threshold(
        confidence, correct, max_risk=t["max_risk"], delta=t["delta"], grid=grid61,
        method="fixed_sequence", start=0.99,
    )
    assert result.threshold == pytest.approx(expected["threshold"])
    assert result.coverage == pytest.approx(expected["coverage"], **EXACT)
    assert result.certified_thresholds == pytest.approx((0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93))


def test_tv2_joint_risk(tv2, grid61):
    t, confidence, correct = tv2
    expected = t["joint_risk"]
    for method in ("holm", "fixed_sequence"):
        result = st.select_threshold(
            confidence, correct, max_risk=t["max_risk"], delta=t["delta"], grid=grid61,
            method=method, risk="joint",
        )
        assert result.threshold == pytest.approx(expected[method]), method
        assert result.coverage == pytest.approx(expected["coverage"], **EXACT), method
        assert result.risk == "joint"


def test_tv2_conformal_risk_control(tv2, grid61):
    t, confidence, correct = tv2
    result = st.select_threshold(
        confidence, correct, max_risk=t["max_risk"], delta=None, grid=grid61, method="crc", risk="joint"
    )
    assert result.threshold == pytest.approx(t["joint_risk"]["crc_expectation_threshold"])
    assert result.certified and result.delta is None and result.risk_upper_bound <= t["max_risk"]


def test_tv2_bayes_cutoffs(tv, costs):
    expected = tv["tv2"]["bayes_cutoffs"]
    cutoffs = st.bayes_cutoffs(costs)
    assert cutoffs.escalate_to_clarify == pytest.approx(expected["escalate_to_clarify"], **EXACT)
    assert cutoffs.clarify_to_answer == pytest.approx(expected["clarify_to_answer"], **EXACT)


@pytest.mark.parametrize("grid", [None, "grid61"])
def test_tv2_policy_without_cap(tv2, costs, grid, request):
    t, confidence, correct = tv2
    chosen_grid = request.getfixturevalue(grid) if grid else None
    policy = st.cost_optimal_policy(confidence, correct, costs, grid=chosen_grid)
    _assert_policy(policy, t["policy_without_cap"])
    assert policy.risk_cap is None


def test_tv2_policy_with_risk_cap(tv2, costs, grid61):
    t, confidence, correct = tv2
    policy = st.cost_optimal_policy(
        confidence, correct, costs, max_risk=t["max_risk"], delta=t["delta"], grid=grid61
    )
    _assert_policy(policy, t["policy_with_risk_cap"])
    assert policy.risk_cap is not None and policy.risk_cap.threshold == pytest.approx(0.96)


def test_tv2_mean_cost_of_single_action_policies(tv2, costs):
    t, confidence, correct = tv2
    every = {
        "mean_cost_answer_all": dict(tau_answer=-math.inf, tau_clarify=-math.inf),
        "mean_cost_clarify_all": dict(tau_answer=math.inf, tau_clarify=-math.inf),
        "mean_cost_escalate_all": dict(tau_answer=math.inf, tau_clarify=math.inf),
    }
    for key, taus in every.items():
        assert st.evaluate_policy(confidence, correct, costs, **taus).mean_cost == pytest.approx(t[key], **EXACT)


def _assert_policy(policy: st.CostPolicy, expected: dict) -> None:
    assert policy.tau_answer == pytest.approx(expected["tau_answer"])
    assert policy.tau_clarify == pytest.approx(expected["tau_clarify"])
    assert policy.mean_cost == pytest.approx(expected["mean_cost"], **EXACT)
    assert (policy.n_answer, policy.n_clarify, policy.n_escalate) == (
        expected["n_answer"], expected["n_clarify"], expected["n_escalate"]
    )


# --------------------------------------------------------------------------- tv3


def test_tv3_conformal_p_values(tv):
    case = tv["tv3"]["conformal_pvalue"]
    got = st.conformal_p_values(case["calibration_scores"], case["test_scores"])
    assert got.tolist() == pytest.approx(case["p_values"], **EXACT)


def test_tv3_mahalanobis_squared(tv):
    case = tv["tv3"]["mahalanobis_squared"]
    assert st.mahalanobis_squared(case["train"], case["test"]).tolist() == pytest.approx(case["expected"], abs=1e-9)
    model = st.fit_mahalanobis(case["train"])
    assert np.linalg.inv(model.precision) == pytest.approx(np.array([[0.25, 0.0], [0.0, 0.25]]))
    assert model.squared(case["test"][1]).tolist() == pytest.approx([case["expected"][1]])
