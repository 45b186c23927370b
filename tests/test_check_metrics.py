"""Group figures on hand-made rows: every definition of the design, checked by hand."""

import pytest

from failpath.check.metrics import confidence_quality, group_figures


def row(case, raw_correct, outcome="answered", correct=None, raw_error=None, conf=0.9, states=()):
    return {
        "case_id": case, "raw_correct": raw_correct, "raw_error": raw_error, "raw_confidence": conf,
        "outcome": outcome, "correct": correct, "states": list(states), "contract": "unchanged",
    }


CLEAN = {"a": True, "b": True, "c": True, "d": False}


def test_several_variants_of_a_case_count_as_its_mean_and_the_gap_is_paired():
    rows = [
        row("a", True, correct=True),
        row("a", False, outcome="abstained", states=["low_confidence"]),
        row("b", False, correct=False),
        row("c", True, correct=True),
        row("d", True, correct=True),
    ]
    g = group_figures(rows, suite="s", family="realistic", perturbation="p", clean_raw=CLEAN, delta=0.05, seed=1)
    assert g.clean_accuracy == pytest.approx(3 / 4)
    assert g.accuracy == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    assert g.gap == pytest.approx(g.clean_accuracy - g.accuracy)
    assert g.gap_low <= g.gap <= g.gap_high
    assert g.flip_rate == pytest.approx(3 / 5)  # a's second variant, b, and d flipped
    assert (g.n, g.n_cases) == (5, 4)
    w = g.with_policy
    assert (w.answered, w.silent_failures, w.escaped) == (4, 1, 0)
    assert w.coverage == pytest.approx(4 / 5) and w.silent_failure_rate == pytest.approx(1 / 5)
    assert w.selective_risk == pytest.approx(1 / 4)
    assert w.outcomes["abstained"] == 1
    assert g.catch_rate == pytest.approx(1 / 2)  # raw wrong: a's second (abstained: caught) and b (answered)
    assert g.false_alarm_rate == 0.0
    assert g.states == {"low_confidence": 1}


def test_without_the_policy_an_exception_is_an_escape_and_wrong():
    rows = [row("a", False, raw_error="ValueError: x", conf=None, outcome="abstained"), row("b", True, correct=True)]
    g = group_figures(rows, suite="s", family="hostile", perturbation=None, clean_raw=CLEAN, delta=0.05, seed=1)
    raw = g.without_policy
    assert (raw.answered, raw.escaped, raw.silent_failures) == (1, 1, 0)
    assert raw.coverage == 0.5 and g.catch_rate == 1.0 and g.repaired == 0


def test_a_retry_that_fixes_a_wrong_raw_answer_is_repaired_not_caught():
    rows = [row("a", False, correct=True), row("b", False, correct=False)]
    g = group_figures(rows, suite="s", family="fault", perturbation=None, clean_raw=CLEAN, delta=0.05, seed=1)
    assert g.repaired == 1 and g.catch_rate == 0.0


def test_confidence_quality_uses_valid_raw_confidences_only():
    rows = [row("a", True, conf=0.9), row("b", False, conf=0.2), row("c", True, conf=None), row("d", False, conf=float("nan"))]
    q = confidence_quality(rows)
    assert (q.n, q.n_total) == (2, 4)
    assert q.auroc == 1.0 and q.accuracy == 0.5
    assert q.brier == pytest.approx(((0.9 - 1) ** 2 + 0.2**2) / 2)
    assert confidence_quality([row("a", True, conf=None)]).auroc is None


def test_group_figures_agree_with_the_one_figure_helpers_on_any_rows():
    """group_figures gathers everything in one pass; each figure must equal its own helper's."""
    import math

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from failpath.check import metrics

    row = st.fixed_dictionaries(
        {
            "outcome": st.sampled_from(["answered", "abstained", "escalated", "clarify", "defaulted", "escaped"]),
            "case_id": st.sampled_from(["a", "b", "c", "d"]),
            "correct": st.sampled_from([True, False, None]),
            "raw_correct": st.sampled_from([True, False, None]),
            "raw_error": st.sampled_from([None, None, "TimeoutError: slow"]),
            "raw_confidence": st.sampled_from([None, 0.1, 0.5, 0.97, 1.0, float("nan"), 1.5, "0.3"]),
            "states": st.lists(st.sampled_from(["low_confidence", "timeout", "injection_suspected"]), max_size=3),
            "contract": st.sampled_from([None, "unchanged", "transformed"]),
        }
    )

    def same(a, b):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return a == b

    @settings(max_examples=150, deadline=None)
    @given(st.lists(row, max_size=30), st.dictionaries(st.sampled_from(["a", "b", "c"]), st.booleans()))
    def check(rows, clean_raw):
        g = metrics.group_figures(rows, suite="s", family="f", perturbation=None, clean_raw=clean_raw, delta=0.1, seed=3)
        assert g.with_policy == metrics.policy_figures(rows, delta=0.1)
        assert g.without_policy == metrics.raw_figures(rows, delta=0.1)
        assert g.confidence == metrics.confidence_quality(rows)
        gap = metrics._gap(rows, clean_raw, seed=3, confidence=0.9)
        assert all(same(x, y) for x, y in zip((g.clean_accuracy, g.gap, g.gap_low, g.gap_high, g.flip_rate),
                                              (gap[0], gap[2], gap[3], gap[4], gap[5])))
        raw_wrong = [r for r in rows if not r.get("raw_correct")]
        raw_right = [r for r in rows if r.get("raw_correct")]
        assert g.repaired == sum(1 for r in raw_wrong if r["outcome"] == "answered" and r.get("correct"))
        assert g.catch_rate == (sum(r["outcome"] in metrics.HANDLED_KINDS for r in raw_wrong) / len(raw_wrong) if raw_wrong else None)
        assert g.false_alarm_rate == (sum(r["outcome"] in metrics.HANDLED_KINDS for r in raw_right) / len(raw_right) if raw_right else None)
        contracts = {r.get("contract") or "unchanged" for r in rows}
        assert g.contract == (contracts.pop() if len(contracts) == 1 else "mixed")
        assert g.n == len(rows) and g.n_cases == len({r["case_id"] for r in rows})

    check()
