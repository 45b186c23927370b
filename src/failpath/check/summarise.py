"""The summarise stage of a check: the figures, from the tallied rows (:class:`failpath.check.tally.Tallied`).

Figures are computed on the evaluation half (per suite, per perturbation, the chaos suites pooled and
the clean pass), the confidence threshold is certified on the calibration half and measured on the
evaluation half, and the drift monitor's baseline and the report's curves come from the same columns.
The definitions are those of :mod:`failpath.check.metrics` (which computes them from rows).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from failpath.check.metrics import (
    HANDLED_KINDS,
    _confidence_quality,
    _policy_figures,
    _raw_figures,
    derive_int_seed,
    gap_from_counts,
)
from failpath.check.plan import BUDGET_FAMILIES, CLEAN
from failpath.check.result import (
    ConfidenceQuality,
    FamilyBound,
    GroupFigures,
    OverRefusal,
    RefusalFigures,
    StateCoverage,
    ThresholdReport,
)
from failpath.check.tally import ANSWERED, ESCAPED, OUTCOMES, Tallied
from failpath.check.verdict import coverage_from_counts
from failpath.core import OUTCOME_KINDS, STATES

__all__ = ["Summary", "summarise", "case_bound", "family_bounds", "silent_failure_families", "over_refusal", "thresholds", "baseline", "curves"]

_HANDLED_CODES = np.asarray([OUTCOMES.index(k) for k in HANDLED_KINDS], dtype=np.int8)


@dataclass(frozen=True)
class Summary:
    """The figures of a run, before the verdict: what :func:`failpath.check.verdict.decide` and the
    result document are made of."""

    clean: GroupFigures
    chaos: GroupFigures
    groups: tuple[GroupFigures, ...]
    confidence: ConfidenceQuality
    states: tuple[StateCoverage, ...]
    thresholds: ThresholdReport
    baseline: dict[str, Any]
    curves: dict[str, Any]
    n_rows: int
    n_calibration: int
    n_evaluation: int
    escapes: int
    flips: int
    n_hostile_answered: int
    families: tuple[FamilyBound, ...] = ()
    over_refusal: OverRefusal | None = None


def _count(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask))


class _Groups:
    """Figures of groups of evaluation rows, each given as a mask over the columns."""

    def __init__(self, t: Tallied, *, delta: float, seed: int) -> None:
        self.t, self.delta, self.seed = t, delta, seed
        c = t.columns
        n_cases = len(t.case_ids)
        self.id_order = np.asarray(sorted(range(n_cases), key=t.case_ids.__getitem__), dtype=np.int64)
        clean_eval = np.isin(c["leaf"], np.asarray(self.leaf_codes(CLEAN), dtype=np.int32)) & c["evaluation"]
        self.has_clean = np.zeros(n_cases, dtype=bool)
        self.clean_right = np.zeros(n_cases, dtype=bool)
        self.has_clean[c["case"][clean_eval]] = True
        self.clean_right[c["case"][clean_eval]] = c["raw_correct"][clean_eval]

    def leaf_codes(self, suite: str, perturbation: str | None = None) -> list[int]:
        return [
            i for i, leaf in enumerate(self.t.leaves)
            if leaf.suite == suite and (perturbation is None or leaf.perturbation == perturbation)
        ]

    def figures(self, mask: np.ndarray, leaves: Sequence[int], suite: str, family: str, perturbation: str | None) -> GroupFigures:
        """Every figure of the rows in ``mask`` (which lie in ``leaves``), as :func:`metrics.group_figures`."""
        c = self.t.columns
        outcome = c["outcome"][mask]
        n = int(outcome.size)
        counts = np.bincount(outcome, minlength=len(OUTCOMES))
        kinds = {OUTCOMES[i]: int(k) for i, k in enumerate(counts.tolist()) if k}
        answered = outcome == ANSWERED
        correct = c["correct"][mask]
        raw_ok = c["raw_correct"][mask]
        raw_answered = c["raw_answered"][mask]
        judged = self.t.judged[mask]  # the rest count as answered or handled, never right or wrong
        n_judged = _count(judged)
        handled = np.isin(outcome, _HANDLED_CODES)
        n_right = _count(raw_ok)
        confidence = c["raw_confidence"][mask]
        scored = raw_answered & ~np.isnan(confidence) & judged
        states: Counter[str] = Counter()
        contracts: set[str] = set()
        for leaf in leaves:
            states.update(self.t.leaves[leaf].states)
            contracts |= self.t.leaves[leaf].contracts
        clean_acc, acc, gap, low, high, flip = self.gap(c["case"][mask & self.t.judged], raw_ok[judged], suite, perturbation)
        if acc is None and n_judged:
            acc = n_right / n_judged
        return GroupFigures(
            suite=suite,
            family=family,
            perturbation=perturbation,
            contract=contracts.pop() if len(contracts) == 1 else "mixed",
            n=n,
            n_cases=int(np.unique(c["case"][mask]).size),
            clean_accuracy=clean_acc,
            accuracy=acc,
            gap=gap,
            gap_low=low,
            gap_high=high,
            flip_rate=flip,
            with_policy=_policy_figures(n, kinds, _count(answered & ~correct & judged), delta=self.delta,
                                        scored=(n_judged, _count(answered & judged))),
            without_policy=_raw_figures(n, n - _count(raw_answered), _count(raw_answered & ~raw_ok & judged), delta=self.delta,
                                        scored=(n_judged, _count(raw_answered & judged))),
            catch_rate=_count(~raw_ok & handled & judged) / (n_judged - n_right) if n_judged - n_right else None,
            false_alarm_rate=_count(raw_ok & handled) / n_right if n_right else None,
            repaired=_count(~raw_ok & answered & correct),
            states=dict(sorted(states.items())),
            confidence=_confidence_quality(confidence[scored], raw_ok[scored], n),
        )

    def gap(self, cases: np.ndarray, raw_ok: np.ndarray, suite: str, perturbation: str | None) -> tuple[Any, ...]:
        """The paired gap over the cases that have a clean evaluation row, cases in id order."""
        n_cases = len(self.t.case_ids)
        variants = np.bincount(cases, minlength=n_cases)
        right = np.bincount(cases[raw_ok], minlength=n_cases)
        chosen = self.id_order[(self.has_clean & (variants > 0))[self.id_order]]
        return gap_from_counts(
            self.clean_right[chosen].tolist(), right[chosen].tolist(), variants[chosen].tolist(),
            seed=derive_int_seed(self.seed, "gap", suite, perturbation or ""), confidence=1.0 - self.delta,
        )


def _suite_groups(g: _Groups, suites: Sequence[str], evaluation: np.ndarray) -> list[GroupFigures]:
    """Each chaos suite's figures, then those of each of its perturbations (in key order)."""
    c, t = g.t.columns, g.t
    groups: list[GroupFigures] = []
    for suite in suites:
        leaves = g.leaf_codes(suite)
        mask = np.isin(c["leaf"], np.asarray(leaves, dtype=np.int32)) & evaluation
        if not mask.any():
            continue
        family = t.families[int(c["family"][mask][0])]
        groups.append(g.figures(mask, leaves, suite, family, None))
        present = [i for i in leaves if (evaluation & (c["leaf"] == i)).any()]
        present.sort(key=lambda i: t.leaves[i].perturbation + "/")
        for leaf in present:
            groups.append(g.figures((c["leaf"] == leaf) & evaluation, [leaf], suite, family, t.leaves[leaf].perturbation))
    return groups


def summarise(
    t: Tallied,
    *,
    suites: Sequence[str],
    handled: Mapping[str, Sequence[str]],
    budgets: Mapping[str, Any],
    costs: Mapping[str, Any],
    seed: int,
    policy_name: str,
    run_id: str,
) -> Summary:
    """The figures of a run from its tallied rows (``budgets`` as stored in the run's result)."""
    c = t.columns
    delta = float(budgets["delta"])
    evaluation = c["evaluation"]
    g = _Groups(t, delta=delta, seed=seed)
    clean_leaves = g.leaf_codes(CLEAN)
    chaos_leaves = [i for i, leaf in enumerate(t.leaves) if leaf.suite != CLEAN]
    is_clean = np.isin(c["leaf"], np.asarray(clean_leaves, dtype=np.int32))
    clean_eval = is_clean & evaluation
    chaos_eval = ~is_clean & evaluation
    hostile_answered = (c["family"] == t.family_code("hostile")) & evaluation & (c["outcome"] == ANSWERED)
    states = _with_reasons(coverage_from_counts(t.fired, t.decided, t.ended, handled, budgets["accepted"]), t)
    return Summary(
        clean=g.figures(clean_eval, clean_leaves, CLEAN, CLEAN, None),
        chaos=g.figures(chaos_eval, chaos_leaves, "chaos", "chaos", None),
        groups=tuple(_suite_groups(g, suites, evaluation)),
        confidence=_confidence_quality(*_scored(t, evaluation), _count(evaluation)),
        states=states,
        thresholds=thresholds(t, budgets, costs),
        baseline=baseline(t, clean_eval, policy_name, run_id),
        curves=curves(*_scored(t, chaos_eval)),
        n_rows=t.n,
        n_calibration=int(np.unique(c["case"][~evaluation]).size),
        n_evaluation=int(np.unique(c["case"][evaluation]).size),
        escapes=_count(c["outcome"] == ESCAPED),
        flips=t.hostile_flips,
        n_hostile_answered=_count(hostile_answered),
        families=silent_failure_families(t, budgets),
        over_refusal=over_refusal(t, budgets),
    )


#: The states only the model side reaches: the fault suite is what exercises them.
MODEL_SIDE_STATES = ("provider_error", "timeout", "invalid_output", "unexpected")


def _with_reasons(states: Sequence[StateCoverage], t: Tallied) -> tuple[StateCoverage, ...]:
    """Each handled state that never fired, with why: no fault suite ran, or one rule decided every fault
    variant before the model was called, or simply no request of the run was detected as it."""
    import dataclasses

    c = t.columns
    fault = c["family"] == t.family_code("fault")
    deciders = np.bincount(c["state"][fault], minlength=len(t.state_names)) if fault.any() else None
    result = []
    for s in states:
        if s.handled_by and s.fired == 0:
            if s.state in MODEL_SIDE_STATES and deciders is None:
                why = "no fault suite ran (add 'fault' to the suites)"
            elif s.state in MODEL_SIDE_STATES and deciders is not None and deciders.max() == _count(fault) \
                    and t.state_names[int(deciders.argmax())] not in ("none", *MODEL_SIDE_STATES):
                why = (f"the rule on {t.state_names[int(deciders.argmax())]} decided every fault variant before "
                       "the model ran, so no fault reached the model")
            else:
                why = "no request of this run was detected as it"
            s = dataclasses.replace(s, detail=f"handled but never exercised: {why}")
        result.append(s)
    return tuple(result)


def case_bound(requests: np.ndarray, failures: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    """(mean over cases of each case's failure share, its Hoeffding–Bentkus upper bound), over cases with requests."""
    made = requests > 0
    if not made.any():
        return None, None
    from failpath import stats

    bound = stats.case_rate_upper_bound(requests[made], failures[made], confidence)
    return bound.estimate, bound.bound


def silent_failure_families(t: Tallied, budgets: Mapping[str, Any]) -> tuple[FamilyBound, ...]:
    """The silent-failure criterion's figures: one per family present on the evaluation half, and the mix.

    Each family present (clean, realistic, hostile, fault) is judged alone against its own budget
    (``budgets["silent_failure_families"]``), on the upper bound at 1 − delta of the mean over cases of
    each case's silent-failure share (:func:`failpath.stats.case_rate_upper_bound`: the case is the
    independent unit). When a traffic mix is declared (``budgets["mix"]``), the families it weighs are
    judged together instead: the weighted sum of their case means against the weighted sum of their
    budgets, bounded by the weighted sum of their upper bounds, each at 1 − delta / k for the k families
    of the mix (Bonferroni: all k bounds hold together with probability at least 1 − delta, so their
    weighted sum bounds the weighted rate). A family of the mix with no evaluated request fails the
    criterion, as nothing bounds it. Requests are never pooled across families.
    """
    per_family = budgets.get("silent_failure_families") or {f: float(budgets["silent_failure"]) for f in BUDGET_FAMILIES}
    counts = {f: t.case_counts(f) for f in BUDGET_FAMILIES}
    return family_bounds(counts, per_family, budgets.get("mix") or {}, float(budgets["delta"]))


def family_bounds(
    counts: Mapping[str, tuple[np.ndarray, np.ndarray]],
    budgets: Mapping[str, float],
    mix: Mapping[str, float],
    delta: float,
) -> tuple[FamilyBound, ...]:
    """One bound per family with requests (``counts[family]`` = per-case requests and failures), and the mix.

    Each family alone at 1 − delta, except the families of a declared ``mix``, judged together on the weighted rate with each
    bound at 1 − delta / k (Bonferroni); a mix family without requests fails, as nothing bounds it.
    """
    result = []
    for family in BUDGET_FAMILIES:
        requests, failures = counts[family]
        if family in mix or requests.sum() == 0:
            continue
        rate, upper = case_bound(requests, failures, 1.0 - delta)
        result.append(FamilyBound(
            family=family, n=int(requests.sum()), n_cases=int(np.count_nonzero(requests)),
            silent_failures=int(failures.sum()), rate=rate, upper=upper, confidence=1.0 - delta,
            budget=budgets[family], passed=upper is not None and upper <= budgets[family],
        ))
    if mix:
        level = 1.0 - delta / len(mix)
        rate_sum = upper_sum = 0.0
        missing = False
        for family, weight in mix.items():
            rate, upper = case_bound(*counts[family], level)
            if rate is None or upper is None:
                missing = True
                continue
            rate_sum += weight * rate
            upper_sum += weight * upper
        budget = sum(weight * budgets[family] for family, weight in mix.items())
        result.append(FamilyBound(
            family="mix", n=sum(int(counts[f][0].sum()) for f in mix),
            n_cases=int(np.count_nonzero(sum(counts[f][0] for f in mix))),
            silent_failures=sum(int(counts[f][1].sum()) for f in mix),
            rate=None if missing else rate_sum, upper=None if missing else min(1.0, upper_sum), confidence=level,
            budget=budget, passed=not missing and upper_sum <= budget, weights=dict(mix),
        ))
    return tuple(result)


def over_refusal(t: Tallied, budgets: Mapping[str, Any]) -> OverRefusal | None:
    """The over-refusal criterion's figures on the realistic family (None when the run has none).

    Over the realistic requests of the evaluation half that the raw system answered right: each case's
    share of them the policy ended in a handled outcome (clarify, escalate, abstain, default); the
    criterion bounds the mean over cases of that share (Hoeffding–Bentkus, 1 − delta) against
    ``budgets["false_alarm"]``. ``groups`` gives the same count per realistic suite and perturbation, with
    the deciding state of each refusal: the detector responsible.
    """
    from failpath.check.plan import DEFAULT_FALSE_ALARM

    code = t.family_code("realistic")
    c = t.columns
    right = (c["family"] == code) & c["evaluation"] & c["raw_correct"]
    if code < 0 or not right.any():
        return None
    delta = float(budgets["delta"])
    budget = float(budgets.get("false_alarm", DEFAULT_FALSE_ALARM))
    refused = right & np.isin(c["outcome"], _HANDLED_CODES)
    n_cases = len(t.case_ids)
    requests = np.bincount(c["case"][right], minlength=n_cases)
    refusals = np.bincount(c["case"][refused], minlength=n_cases)
    rate, upper = case_bound(requests, refusals, 1.0 - delta)
    groups = []
    for suite in dict.fromkeys(t.leaves[int(i)].suite for i in np.unique(c["leaf"][right])):
        leaves = [i for i, leaf in enumerate(t.leaves) if leaf.suite == suite]
        by_name = sorted(leaves, key=lambda i: t.leaves[i].perturbation)
        members = [(None, leaves)] + [(t.leaves[i].perturbation, [i]) for i in by_name]
        for perturbation, codes in members:
            in_group = np.isin(c["leaf"], np.asarray(codes, dtype=np.int32))
            n_right, n_refused = _count(right & in_group), _count(refused & in_group)
            if not n_right:
                continue
            states = np.bincount(c["state"][refused & in_group], minlength=len(t.state_names))
            groups.append(RefusalFigures(
                suite=suite, perturbation=perturbation, raw_right=n_right, refused=n_refused,
                rate=n_refused / n_right,
                by_state={t.state_names[i]: int(k) for i, k in enumerate(states.tolist()) if k},
            ))
    return OverRefusal(
        n=_count(right), n_cases=int(np.count_nonzero(requests)), refused=_count(refused), rate=rate, upper=upper,
        confidence=1.0 - delta, budget=budget, passed=upper is not None and upper <= budget, groups=tuple(groups),
    )


def _scored(t: Tallied, mask: np.ndarray, *, governed_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Raw confidences and correctness of the rows in ``mask`` that have both (optionally: only threshold-governed rows)."""
    c = t.columns
    keep = mask & c["raw_answered"] & ~np.isnan(c["raw_confidence"]) & t.judged
    if governed_only:
        keep &= c["governed"]
    return c["raw_confidence"][keep], c["raw_correct"][keep]


def threshold_budget(budgets: Mapping[str, Any]) -> float:
    """The risk budget of the certified threshold: the smallest of the families' silent-failure budgets."""
    families = budgets.get("silent_failure_families")
    return float(min(families.values())) if families else float(budgets["silent_failure"])


def thresholds(t: Tallied, budgets: Mapping[str, Any], costs: Mapping[str, Any]) -> ThresholdReport:
    """Certify a confidence threshold on the calibration half; measure it on the evaluation half.

    The risk is the one the verdict's budget counts: silent failures per request (joint risk), with
    the case as the independent unit (:func:`failpath.stats.select_threshold_by_case`: each case's share
    of requests answered and wrong, Hoeffding–Bentkus p-values over cases, Holm). The threshold governs
    the calls no other rule handled (their deciding state is none, or ``low_confidence``); the calls an
    injection, anomaly or fault rule handled are never answered at any threshold, so they count, with
    their case, as requests with no silent failure. The guarantee reads "answering the governed calls
    from the threshold up, the mean over cases of each case's silent-failure share stays at most the
    budget, with probability at least 1 - ``delta``", for traffic drawn like the check's. The budget is
    the smallest of the families' silent-failure budgets.
    """
    from failpath import stats

    risk_budget = threshold_budget(budgets)
    delta = float(budgets["delta"])
    evaluation = t.columns["evaluation"]
    judged = t.judged  # requests no one can judge right or wrong teach a threshold nothing
    n_calibration, n_evaluation = _count(~evaluation & judged), _count(evaluation & judged)
    confidence, correct, cases = _calibration_arrays(t)
    method = "Learn-then-Test, Hoeffding–Bentkus p-values over cases, Holm"
    if not np.any(confidence >= 0.0):
        return ThresholdReport(
            certified=False, threshold=None, risk_budget=risk_budget, delta=delta, method=method,
            n_calibration=0, calibration_coverage=None, calibration_risk=None, evaluation_coverage=None,
            evaluation_risk=None, evaluation_silent_failure_rate=None,
            message="NOTHING CERTIFIED: the raw system gave no confidence on the calibration half, so no "
            "threshold can be chosen; the only guaranteed policy is never to answer.",
        )
    chosen = stats.select_threshold_by_case(
        confidence, correct, cases, max_risk=risk_budget, delta=delta, method="holm", risk="joint",
    )
    ev_cov = ev_risk = ev_sfr = None
    if chosen.certified and n_evaluation:
        eval_conf, eval_correct = _scored(t, evaluation, governed_only=True)
        answered = eval_correct[eval_conf >= chosen.threshold]
        errors = _count(~answered)
        ev_cov = answered.size / n_evaluation
        ev_risk = errors / answered.size if answered.size else None
        ev_sfr = errors / n_evaluation
    return ThresholdReport(
        certified=chosen.certified,
        threshold=chosen.threshold if chosen.certified else None,
        risk_budget=risk_budget,
        delta=delta,
        method=method,
        n_calibration=n_calibration,
        calibration_coverage=chosen.n_answered / n_calibration if chosen.certified else chosen.coverage,
        calibration_risk=(chosen.n_errors / chosen.n_answered) if chosen.n_answered else None,
        evaluation_coverage=ev_cov,
        evaluation_risk=ev_risk,
        evaluation_silent_failure_rate=ev_sfr,
        message=chosen.summary(),
        cost_policy=_cost_policy(t, confidence, correct, costs, chosen),
    )


def _calibration_arrays(t: Tallied) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confidence, correctness and case of every calibration request, as the threshold sees them.

    The governed requests with a raw confidence keep theirs; every other calibration request (handled
    by another rule, or without a confidence) is one the threshold never answers: confidence -1 (below
    every grid point), counted right, with its case. Requests that cannot be judged (a realistic
    ``not_preserved`` variant) are left out.
    """
    c = t.columns
    calibration = ~c["evaluation"] & t.judged
    scored = calibration & c["raw_answered"] & ~np.isnan(c["raw_confidence"]) & c["governed"]
    confidence = np.where(scored, c["raw_confidence"], -1.0)[calibration]
    correct = np.where(scored, c["raw_correct"], True)[calibration]
    return confidence, correct, c["case"][calibration]


def _cost_policy(
    t: Tallied, confidence: np.ndarray, correct: np.ndarray, costs: Mapping[str, Any], cap: Any
) -> dict[str, Any]:
    """The answer / clarify / escalate rule of least cost on the calibration half, capped by the certified threshold.

    The rule is chosen on the same requests as the certified threshold (the never-answered ones included),
    among the pairs ``tau_answer >= tau_clarify`` of the grid (and never): ``tau_answer`` may not go below
    the certified threshold (``cap``; nothing certified: never answer). Among equally cheap pairs the
    highest ``tau_answer`` wins, then the highest ``tau_clarify``. The reported counts and mean cost are
    then those of the rule on the governed calibration requests (:func:`failpath.stats.evaluate_policy`).
    """
    from failpath import stats

    floor = cap.threshold if cap.certified else math.inf
    grid = np.asarray(cap.grid, dtype=float)
    candidates = [math.inf, *grid.tolist()]
    best: tuple[float, float, float] | None = None
    try:
        for tau_answer in candidates:
            if tau_answer < floor:
                continue
            for tau_clarify in candidates:
                if tau_clarify > tau_answer:
                    continue
                if "clarify" not in costs and tau_clarify != tau_answer:
                    continue
                cost = stats.evaluate_policy(
                    confidence, correct, costs, tau_answer=tau_answer, tau_clarify=tau_clarify
                ).mean_cost
                if best is None or cost < best[0] - 1e-12 * max(1.0, abs(best[0])):
                    best = (cost, tau_answer, tau_clarify)
        assert best is not None
        governed = confidence >= 0.0
        policy = stats.evaluate_policy(
            confidence[governed], correct[governed], costs, tau_answer=best[1], tau_clarify=best[2]
        )
    except stats.StatsInputError as exc:
        return {"error": str(exc)}
    return {
        "tau_answer": _finite(policy.tau_answer),
        "tau_clarify": _finite(policy.tau_clarify),
        "cap": _finite(floor),
        "mean_cost": policy.mean_cost,
        "n_answer": policy.n_answer,
        "n_clarify": policy.n_clarify,
        "n_escalate": policy.n_escalate,
        "n_answer_errors": policy.n_answer_errors,
        "n": policy.n,
        "costs": {k: list(v) for k, v in costs.items()},
        "bayes": {
            "escalate_to_clarify": _finite(policy.bayes.escalate_to_clarify),
            "clarify_to_answer": _finite(policy.bayes.clarify_to_answer),
        },
    }


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


#: Raw confidences kept in the drift monitor's baseline (evenly spaced over the clean pass).
BASELINE_SAMPLE = 5000


def baseline(t: Tallied, clean_eval: np.ndarray, policy: str, run_id: str) -> dict[str, Any]:
    """The drift monitor's reference: the clean evaluation pass with the policy."""
    c = t.columns
    n = _count(clean_eval)
    counts = np.bincount(c["outcome"][clean_eval], minlength=len(OUTCOMES)).tolist()
    kinds = dict(zip(OUTCOMES, counts))
    states: Counter[str] = Counter()
    for leaf in t.leaves:
        if leaf.suite == CLEAN:
            states.update(leaf.states)
    confidence = c["raw_confidence"][clean_eval]
    confidences = confidence[~np.isnan(confidence)].tolist()
    if len(confidences) > BASELINE_SAMPLE:
        step = len(confidences) / BASELINE_SAMPLE
        confidences = [confidences[int(i * step)] for i in range(BASELINE_SAMPLE)]
    return {
        "policy": policy,
        "run_id": run_id,
        "n": n,
        "coverage": kinds.get("answered", 0) / n if n else 0.0,
        "confidence_sample": confidences,
        "state_rates": {s: (states.get(s, 0) / n if n else 0.0) for s in sorted(set(STATES) | set(states))},
        "outcome_rates": {k: (kinds.get(k, 0) / n if n else 0.0) for k in OUTCOME_KINDS},
    }


def curves(confidence: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """Risk–coverage points (with the oracle's) and reliability bins of the pooled raw chaos answers."""
    if not confidence.size:
        return {"risk_coverage": None, "reliability": None}
    from failpath import stats

    curve = stats.risk_coverage(confidence, correct)
    n = int(correct.size)
    # The oracle answers the right ones first: after k answers, max(0, k - right) of them are wrong.
    right = _count(correct)
    oracle_cov = [round(k / n, 6) for k in range(1, n + 1)]
    oracle_risk = [round(max(0, k - right) / k, 6) for k in range(1, n + 1)]
    bins = []
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        inside = (lo < confidence) & (confidence <= hi)
        if b == 0:
            inside |= confidence == 0.0
        members = confidence[inside].tolist()
        bins.append({
            "lo": round(lo, 6),
            "hi": round(hi, 6),
            "count": len(members),
            "confidence": sum(members) / len(members) if members else None,
            "accuracy": _count(correct[inside]) / len(members) if members else None,
        })
    return {
        "risk_coverage": {
            "n": n,
            "thresholds": [round(float(t), 6) for t in curve.thresholds],
            "coverage": [round(float(c), 6) for c in curve.coverage],
            "selective_risk": [round(float(r), 6) for r in curve.selective_risk],
            "oracle": {"coverage": oracle_cov, "selective_risk": oracle_risk},
        },
        "reliability": {"n": n, "bins": bins},
    }
