"""The agent check's printed guarantees, checked by simulation on data shaped like real checks: tasks of
mixed difficulty (trials of one task share its success probability, so they are correlated through it),
chaos variants per task, infrastructure errors sprinkled in, few tasks with many trials and many tasks
with few. Each bound must cover its estimand in at least 1 - delta of the simulated checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from failpath.check.agent_summary import summarise_trials
from failpath.check.agent_trials import TrialResult
from failpath.stats.passk import upper_bounds_of_means

K = 4
#: Success probabilities of task kinds, and their shares: most easy, some flaky, a few nearly always failing.
KINDS = np.array([0.995, 0.95, 0.8, 0.3])
SHARES = np.array([0.6, 0.2, 0.15, 0.05])


def pass_hat(c: np.ndarray, n: np.ndarray, k: int = K) -> np.ndarray:
    return np.array([math.comb(int(ci), k) / math.comb(int(ni), k) for ci, ni in zip(c.ravel(), n.ravel())]).reshape(c.shape)


def allowed_misses(sims: int, delta: float) -> float:
    return binom.ppf(0.999, sims, delta)  # a bound that covers at 1 - delta misses more than this once in a thousand runs


@pytest.mark.parametrize("tasks, trials, fixed, follows", [
    (12, 8, False, 0.0), (65, 8, False, 0.0), (6, 40, True, 0.0), (30, 5, True, 0.0), (65, 8, False, 0.5),
])
def test_the_pass_k_lower_bound_covers_with_mixed_tasks_and_infrastructure_errors(tasks, trials, fixed, follows):
    # Infrastructure errors: 3% of trials at random, and (follows) a share of the failed trials filed as
    # infrastructure errors, as when the agent leaves the environment in a state something raises on. The
    # check's bound counts every infrastructure error as a failure: leaving them out would miss 7% of the
    # time at 95% with half the failures so filed (under 4% of the trials).
    rng = np.random.default_rng(tasks * 1000 + trials)
    delta, sims = 0.05, 1500
    p = np.tile(rng.choice(KINDS, size=tasks, p=SHARES), (sims, 1)) if fixed else rng.choice(KINDS, size=(sims, tasks), p=SHARES)
    truth = (p**K).mean(axis=1) if fixed else np.full(sims, float(SHARES @ KINDS**K))  # the tasks' mean, or the population's
    succeeded = rng.random((sims, tasks, trials)) < p[..., None]
    lost = (rng.random(succeeded.shape) < 0.03) | (~succeeded & (rng.random(succeeded.shape) < follows))
    successes = (succeeded & ~lost).sum(axis=-1)
    usable = (~lost).sum(axis=-1)
    lower = 1.0 - np.array(upper_bounds_of_means(list(1.0 - pass_hat(successes, np.full_like(successes, trials))), 1.0 - delta))
    assert (lower > truth).sum() <= allowed_misses(sims, delta)
    if not follows:  # errors at random: leaving them out of the estimate keeps it unbiased for the mean of p^k
        enough = usable >= K
        estimates = np.where(enough, pass_hat(successes, np.maximum(usable, K)), np.nan)
        assert np.nanmean(estimates) == pytest.approx(truth.mean(), abs=0.02)


def test_the_silent_failure_bound_covers_with_chaos_variants_per_task():
    # A family's trials per task: 2 variants x 2 chaos trials; a task's silent-failure chance is shared by its trials.
    rng = np.random.default_rng(7)
    delta, sims, tasks = 0.1, 1500, 40
    q = np.where(rng.random((sims, tasks)) < 0.15, rng.beta(2, 5, size=(sims, tasks)), 0.0)
    truth = q.mean(axis=1)
    errors = rng.binomial(4, 0.05, size=(sims, tasks))
    silent = rng.binomial(4 - errors, q)
    bounds = np.array(upper_bounds_of_means(list((silent + errors) / 4), 1.0 - delta))  # errors counted as silent failures
    assert (bounds < truth).sum() <= allowed_misses(sims, delta)


def simulated_check(rng: np.random.Generator, p: np.ndarray, trials: int, infrastructure: float) -> list[TrialResult]:
    out = []
    for task, chance in enumerate(p):
        for index in range(trials):
            if rng.random() < infrastructure:
                out.append(TrialResult(f"t{task}", index, "clean", "clean", index, "infrastructure_error"))
                continue
            ok = rng.random() < chance
            out.append(TrialResult(f"t{task}", index, "clean", "clean", index, "succeeded" if ok else "failed", silent=not ok, outcome="answered"))
        for variant in range(2):  # chaos variants: harder than clean, the same task's difficulty
            ok = rng.random() < chance * 0.8
            out.append(TrialResult(f"t{task}", 0, "fault", f"tool:timeout:{variant}", variant, "succeeded" if ok else "handled",
                                   outcome="answered" if ok else "escalated"))
    return out


def test_the_report_prints_the_bounds_simulated_above():
    # The figures the report prints come from summarise_trials; on a simulated check they are the bounds the
    # simulations above cover with: per-task unbiased pass^k with infrastructure errors left out, the task as the unit.
    rng = np.random.default_rng(18)
    p = rng.choice(KINDS, size=15, p=SHARES)
    trials = simulated_check(rng, p, 6, 0.05)
    figures = summarise_trials(trials, confidence=0.9, k=K)
    clean = [t for t in trials if t.family == "clean" and t.status != "infrastructure_error"]
    c = np.array([sum(t.status == "succeeded" for t in clean if t.task_id == f"t{i}") for i in range(15)])
    n = np.array([sum(1 for t in clean if t.task_id == f"t{i}") for i in range(15)])
    assert n.sum() < 15 * 6  # some infrastructure errors
    assert figures["pass_k_curve"][K - 1]["estimate"] == pytest.approx(pass_hat(c, n).mean())
    lower = 1.0 - upper_bounds_of_means([1.0 - pass_hat(c, np.full(15, 6))], 0.9)[0]
    assert figures["pass_k_curve"][K - 1]["lower_bound"] == pytest.approx(lower)
    assert figures["silent_failures"]["clean"]["upper_bound"] == pytest.approx(upper_bounds_of_means([(6 - c) / 6], 0.9)[0])
