"""The silent-failure criterion judges each family (or a declared traffic mix) with the case as the unit.

Adding easy suites must never be a way to pass: a run that fails on realistic input stays READY TO DEMO
whatever is added to it, clean silent failures have their own budget, and the bound the criterion
reports covers the true case-weighted rate when a case's variants share its difficulty.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

import failpath as fp
from failpath.check.summarise import over_refusal, silent_failure_families
from failpath.check.tally import ANSWERED, OUTCOMES, Tallied
from failpath.core import ConfigError, Prediction
from test_check_toy import FAULTS, HOSTILE, REALISTIC, ToySystem, index_of, make_cases, toy_kwargs
from test_stats_clustered import M, _difficulty


class WrongWhenPadded(ToySystem):
    """The toy system, confidently wrong on padded (realistic) inputs of every fifth case."""

    def __call__(self, text: str) -> Prediction:
        number = text.split()[-1]
        if text.startswith("  ") and number.isdigit() and int(number) % 5 == 1:
            return Prediction("WRONG", 0.9)
        return super().__call__(text)


class WrongOnCleanToo(ToySystem):
    """Confidently wrong on every fifth case, whatever the input (clean ones included)."""

    def __call__(self, text: str) -> Prediction:
        number = text.split()[-1]
        if number.isdigit() and int(number) % 5 == 1:
            return Prediction("WRONG", 0.9)
        return super().__call__(text)


def _wrong_share(n_cases=100, seed=7):
    """The share of evaluation cases of the toy world whose index is 1 mod 5 (the wrong ones above)."""
    from failpath.check.plan import split_cases

    split = split_cases(make_cases(n_cases), seed, 0.5)
    evaluation = [c for c, half in split.items() if half == "evaluation"]
    return sum(index_of(c) % 5 == 1 for c in evaluation) / len(evaluation), len(evaluation)


def _criterion(result, name):
    return next(c for c in result.verdict.reasons if c.name == name)


def _family(result, family):
    return next(f for f in result.silent_failure_families if f.family == family)


def test_adding_suites_never_turns_a_realistic_failure_into_ship(tmp_path):
    runs = {}
    for label, suites in (("realistic", [REALISTIC]), ("+fault", [REALISTIC, FAULTS]), ("+all", [HOSTILE, REALISTIC, FAULTS])):
        runs[label] = fp.check(**toy_kwargs(
            tmp_path / label, system=WrongWhenPadded(), suites=suites, cases=make_cases(100), worst_cases=0,
        ))
    share, _ = _wrong_share()
    for label, result in runs.items():
        assert not result.ship, label
        assert "silent_failure_bound" in {c.name for c in result.verdict.failed}
        realistic = _family(result, "realistic")
        assert not realistic.passed and realistic.rate == pytest.approx(share)
        assert "realistic" in _criterion(result, "silent_failure_bound").figure
    full = runs["+all"]
    # No severity is configured: every silent failure counts as severe, so that budget fails too.
    assert {c.name for c in full.verdict.failed} == {"silent_failure_bound", "severe_silent_failure"}
    # The pooled request count would have passed: the easy suites dilute 20% to about 3%.
    assert full.chaos.with_policy.silent_failure_upper < 0.15
    assert {f.family for f in full.silent_failure_families} == {"clean", "realistic", "hostile", "fault"}
    assert all(f.passed for f in full.silent_failure_families if f.family != "realistic")


def test_clean_silent_failures_above_budget_fail_the_verdict(tmp_path):
    result = fp.check(**toy_kwargs(
        tmp_path, system=WrongOnCleanToo(), suites=[HOSTILE, FAULTS], cases=make_cases(100), worst_cases=0,
        silent_failure_budget={"clean": 0.05, "hostile": 0.15, "fault": 0.15},
    ))
    clean = _family(result, "clean")
    assert clean.budget == 0.05 and clean.rate == pytest.approx(_wrong_share()[0]) and not clean.passed
    assert _family(result, "fault").budget == 0.15 and _family(result, "fault").passed
    failed = _criterion(result, "silent_failure_bound")
    assert not failed.passed and "clean" in failed.figure and "clean" in failed.detail
    assert not result.ship


def test_a_declared_mix_judges_the_weighted_rate_with_bonferroni(tmp_path):
    mix = {"clean": 0.6, "realistic": 0.4}
    result = fp.check(**toy_kwargs(
        tmp_path, system=WrongWhenPadded(), cases=make_cases(100), worst_cases=0, mix=mix, silent_failure_budget=0.15,
    ))
    by_family = {f.family: f for f in result.silent_failure_families}
    # Families outside the mix are still judged alone; the mix families only together.
    assert set(by_family) == {"hostile", "fault", "mix"}
    m = by_family["mix"]
    assert m.weights == mix and m.confidence == pytest.approx(1 - 0.05 / 2)
    share, n = _wrong_share()
    assert m.rate == pytest.approx(0.4 * share)
    from failpath import stats

    realistic = stats.case_rate_upper_bound(np.ones(n), (np.arange(n) < round(share * n)).astype(int), 1 - 0.025)
    assert m.upper == pytest.approx(0.6 * stats.case_rate_upper_bound(np.ones(n), np.zeros(n), 0.975).bound + 0.4 * realistic.bound)
    assert m.passed == (m.upper <= 0.15)


@pytest.mark.parametrize("bad, message", [
    ({"daily": 0.02}, "unknown families 'daily'"),
    ({"clean": 1.5}, "silent_failure budget of clean must be a number strictly between 0 and 1"),
])
def test_per_family_budgets_are_checked(tmp_path, bad, message):
    with pytest.raises(ConfigError, match=message):
        fp.check(**toy_kwargs(tmp_path, silent_failure_budget=bad))


@pytest.mark.parametrize("mix, message", [
    ({"clean": 0.6, "realistic": 0.3}, "sum to 1"),
    ({"prod": 1.0}, "unknown families 'prod'"),
    ({"clean": -0.1, "realistic": 1.1}, "must be a number in \\[0, 1\\]"),
])
def test_a_mix_is_checked(tmp_path, mix, message):
    with pytest.raises(ConfigError, match=message):
        fp.check(**toy_kwargs(tmp_path, mix=mix))


def _tallied(family: np.ndarray, case: np.ndarray, silent: np.ndarray, n_cases: int) -> Tallied:
    """A tally of evaluation rows: each row answered, wrong when ``silent``."""
    n = family.size
    families = ("clean", "realistic", "hostile", "fault")
    columns = {
        "family": family.astype(np.int16),
        "case": case.astype(np.int32),
        "evaluation": np.ones(n, dtype=bool),
        "outcome": np.full(n, ANSWERED, dtype=np.int8),
        "correct": ~silent,
        "raw_correct": ~silent,
        "leaf": family.astype(np.int32),
        "state": np.zeros(n, dtype=np.int16),
    }
    return Tallied(
        columns=columns, case_ids=tuple(f"c{i}" for i in range(n_cases)), families=families, leaves=(),
        fired={}, decided={}, ended={}, hostile_flips=0, silent=(),
    )


@pytest.mark.parametrize("design_effect", [1, 2, 4])
def test_the_criterion_bound_covers_the_true_rate_with_case_effects(design_effect):
    """Each family's bound, and the mix's, cover the true case-weighted rate at least 1 - delta of the time."""
    rng = np.random.default_rng(40 + design_effect)
    sims, n_cases, delta = 300, 60, 0.1
    means = {"realistic": 0.05, "hostile": 0.02}
    mix = {"realistic": 0.7, "hostile": 0.3}
    budgets = {"delta": delta, "silent_failure_families": dict.fromkeys(("clean", "realistic", "hostile", "fault"), 0.5)}
    misses = {"realistic": 0, "hostile": 0, "mix": 0}
    case = np.repeat(np.arange(n_cases), M)
    for _ in range(sims):
        rows_family, rows_silent = [], []
        for code, family in ((1, "realistic"), (2, "hostile")):
            p = _difficulty(rng, means[family], design_effect, (n_cases,))
            rows_silent.append(rng.random(n_cases * M) < np.repeat(p, M))
            rows_family.append(np.full(n_cases * M, code))
        t = _tallied(np.concatenate(rows_family), np.concatenate([case, case]), np.concatenate(rows_silent), n_cases)
        alone = {f.family: f for f in silent_failure_families(t, budgets)}
        misses["realistic"] += alone["realistic"].upper < means["realistic"]
        misses["hostile"] += alone["hostile"].upper < means["hostile"]
        mixed = silent_failure_families(t, {**budgets, "mix": mix})
        assert [f.family for f in mixed] == ["mix"]
        misses["mix"] += mixed[0].upper < sum(w * means[f] for f, w in mix.items())
    allowed = binom.ppf(0.999, sims, delta)
    assert all(m <= allowed for m in misses.values()), misses


SHOUT = __import__("test_check_toy")._Simple("shout", "realistic", str.upper)


def _refusing_policy():
    """The toy's full policy plus a rule that refuses every all-caps input (which the toy gets right)."""
    from test_check_toy import _rules

    rule = fp.on(fp.State("shouting", lambda value, _: value.isupper(), stage="input")).do(fp.Clarify("please rephrase"))
    return fp.Policy("toy-refuses-caps", rules=[rule, *_rules(True)], store=False)


def test_a_policy_refusing_upper_case_inputs_fails_over_refusal(tmp_path):
    from failpath.chaos import Suite

    realistic = Suite("toy-realistic", "realistic", (REALISTIC.perturbations[0], SHOUT))
    result = fp.check(**toy_kwargs(
        tmp_path, policy=_refusing_policy(), suites=[HOSTILE, realistic, FAULTS], cases=make_cases(100), worst_cases=0,
    ))
    o = result.over_refusal
    shout = next(g for g in o.groups if g.perturbation == "shout")
    pad = next(g for g in o.groups if g.perturbation == "pad")
    assert shout.rate == 1.0 and shout.refused == shout.raw_right and shout.by_state == {"shouting": shout.refused}
    assert pad.refused == 0 and pad.by_state == {}
    # Each case refuses one of its two raw-right variants: the case mean is one half.
    assert o.rate == pytest.approx(0.5) and o.upper > o.budget and not o.passed
    criterion = _criterion(result, "over_refusal")
    assert not criterion.passed and not result.ship
    assert f"shouting refused 100% of `shout` variants the model gets right ({shout.refused}/{shout.raw_right})" in criterion.detail
    # Refusing them is no way to pass the silent-failure criterion either: nothing was wrong there.
    assert _family(result, "realistic").silent_failures == 0


def test_the_same_run_without_the_refusing_rule_passes_over_refusal(tmp_path):
    from failpath.chaos import Suite

    realistic = Suite("toy-realistic", "realistic", (REALISTIC.perturbations[0], SHOUT))
    result = fp.check(**toy_kwargs(tmp_path, suites=[HOSTILE, realistic, FAULTS], cases=make_cases(100), worst_cases=0))
    assert result.over_refusal.refused == 0 and result.over_refusal.passed
    assert _criterion(result, "over_refusal").passed


def test_the_cost_policy_is_capped_by_the_certified_threshold_over_cases(tmp_path):
    """Cheap escalation would make answering from 0.5 up the cheapest rule; the certified threshold caps it."""
    from failpath import stats

    class Graded(ToySystem):
        # Wrong, with confidence 0.6, on every seventh case; right at 0.9 otherwise.
        def __call__(self, text):
            number = text.split()[-1]
            if number.isdigit() and int(number) % 7 == 3:
                return Prediction("WRONG", 0.6)
            return super().__call__(text)

    costs = {"answer": (0.0, 1.0), "escalate": (5.0, 5.0)}  # a wrong answer is cheaper than any escalation
    result = fp.check(**toy_kwargs(
        tmp_path, system=Graded(), cases=make_cases(400), suites=[REALISTIC], worst_cases=0, costs=costs,
        silent_failure_budget=0.05,
    ))
    t = result.thresholds
    assert t.certified and t.threshold > 0.6
    cost = t.cost_policy
    # Uncapped, answering the wrong 0.6 answers too would be cheapest; capped, none of them is answered.
    confidence, correct, _ = _calibration_arrays_of(result, tmp_path / "store.db")
    assert stats.cost_optimal_policy(confidence, correct, costs).tau_answer <= 0.6
    assert cost["cap"] == t.threshold and cost["tau_answer"] >= t.threshold
    assert cost["n_answer_errors"] == 0 and cost["n_answer"] > 0


def _calibration_arrays_of(result, path):
    """The governed calibration requests of a stored run: raw confidence and correctness (and the case)."""
    from failpath.store import open_store

    rows = []
    with open_store(path) as store:
        rows = [r["data"] for r in store.results(result.run_id)]
    kept = [r for r in rows if r["split"] == "calibration" and r["state"] in (None, "low_confidence")
            and r["raw_error"] is None and r["raw_confidence"] is not None]
    return (np.array([r["raw_confidence"] for r in kept]), np.array([bool(r["raw_correct"]) for r in kept]),
            [r["case_id"] for r in kept])


def test_states_exercised_says_why_a_state_never_fired(tmp_path):
    from test_check_toy import _rules

    refuse_all = fp.on(fp.State("closed", lambda value, _: True, stage="input")).do(fp.Abstain("closed"))
    policy = fp.Policy("toy-closed", rules=[refuse_all, *_rules(True)], store=False)
    result = fp.check(**toy_kwargs(tmp_path, policy=policy, worst_cases=0))
    by_state = {s.state: s for s in result.states}
    assert by_state["timeout"].fired == 0
    assert "the rule on closed decided every fault variant before the model ran" in by_state["timeout"].detail
    criterion = _criterion(result, "states_exercised")
    assert not criterion.passed and "timeout (the rule on closed decided every fault variant" in criterion.detail

    no_faults = fp.check(**toy_kwargs(tmp_path / "nf", suites=[HOSTILE, REALISTIC], worst_cases=0))
    timeout = next(s for s in no_faults.states if s.state == "timeout")
    assert timeout.detail == "handled but never exercised: no fault suite ran (add 'fault' to the suites)"
