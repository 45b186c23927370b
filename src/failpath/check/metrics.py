"""The figures of a check, computed from its result rows with ``failpath.stats``.

A result row is the JSON record of one request (one variant of one case in one suite): what the
guarded call ended in, and what the raw system answered. The keys used here:

``suite, family, perturbation, case_id, variant, split, contract`` — where the row comes from;
``outcome`` (an outcome kind, or ``"escaped"``), ``state``, ``states``, ``actions``, ``value``,
``confidence``, ``correct`` (bool for an answered outcome, else None) — with the policy;
``raw_output, raw_confidence, raw_error, raw_correct`` — the raw system's first answer.

Definitions (over n requests): coverage = answered / n; silent-failure rate = answered-and-wrong / n;
selective risk = answered-and-wrong / answered; catch rate = raw-wrong turned into a handled outcome /
raw-wrong; false-alarm rate = handled although raw-right / raw-right; gap = clean accuracy − accuracy
under a perturbation, paired by case; flip rate = share of variants whose correctness differs from
their clean case's.

A realistic variant whose contract is ``not_preserved`` may have changed the right answer (dropping the
comma of "Smith, John" makes "Smith John", whose labels are not the clean case's), so it is judged
neither right nor wrong: it counts in ``n`` and in what the policy ended in (answered or handled), and
in none of the figures of correctness (silent failures, accuracy, gap, catch and false-alarm rates,
confidence quality), whose denominators are the judged requests (:func:`is_judged`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from failpath.check.result import ConfidenceQuality, GroupFigures, PolicyFigures
from failpath.core import OUTCOME_KINDS, is_valid_confidence

__all__ = [
    "HANDLED_KINDS",
    "is_judged",
    "policy_figures",
    "raw_figures",
    "confidence_quality",
    "group_figures",
    "derive_int_seed",
    "gap_from_counts",
]

HANDLED_KINDS = frozenset(k for k in OUTCOME_KINDS if k != "answered")

#: Bootstrap resamples for the gap interval (BCa); enough for a stable 95% interval, fast on 2 cores.
BOOTSTRAP_RESAMPLES = 2000


def derive_int_seed(*parts: Any) -> int:
    """A 32-bit seed from ``parts`` (stable across processes), for bootstraps and splits."""
    import hashlib

    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "big")


def is_judged(row: Mapping[str, Any]) -> bool:
    """Whether ``row``'s answers can be judged right or wrong against its expected answer.

    Not for a realistic variant whose contract is ``not_preserved``: its edit may have changed the right
    answer, so the clean label no longer holds; it counts only as answered or handled.
    """
    return not (row.get("family") == "realistic" and row.get("contract") == "not_preserved")


def _ratio(k: int, n: int) -> float | None:
    return k / n if n else None


def _upper(k: int, n: int, delta: float) -> float | None:
    if n == 0:
        return None
    from failpath.stats import binomial_upper_bound

    return float(binomial_upper_bound(k, n, confidence=1.0 - delta))


def policy_figures(rows: Sequence[Mapping[str, Any]], *, delta: float) -> PolicyFigures:
    """What the guarded calls in ``rows`` ended in (with the policy)."""
    kinds = Counter(r["outcome"] for r in rows)
    judged = [r for r in rows if is_judged(r)]
    silent = sum(1 for r in judged if r["outcome"] == "answered" and not r.get("correct"))
    scored = (len(judged), sum(1 for r in judged if r["outcome"] == "answered"))
    return _policy_figures(len(rows), kinds, silent, delta=delta, scored=scored)


def _policy_figures(
    n: int, kinds: Mapping[str, int], silent: int, *, delta: float, scored: tuple[int, int] | None = None
) -> PolicyFigures:
    """``scored``: the judged requests and the answered ones among them (default: every request)."""
    answered = kinds.get("answered", 0)
    escaped = kinds.get("escaped", 0)
    outcomes = {k: kinds.get(k, 0) for k in (*OUTCOME_KINDS, "escaped")}
    n_judged, answered_judged = scored if scored is not None else (n, answered)
    return PolicyFigures(
        n=n,
        answered=answered,
        silent_failures=silent,
        escaped=escaped,
        coverage=_ratio(answered, n),
        silent_failure_rate=_ratio(silent, n_judged),
        silent_failure_upper=_upper(silent, n_judged, delta),
        selective_risk=_ratio(silent, answered_judged),
        outcomes=outcomes,
    )


def raw_figures(rows: Sequence[Mapping[str, Any]], *, delta: float) -> PolicyFigures:
    """What the raw system's first answers in ``rows`` amount to (without the policy).

    The raw system answers whenever it returns; an exception is an escape (and counts as wrong).
    """
    escaped = sum(1 for r in rows if r.get("raw_error") is not None)
    judged = [r for r in rows if is_judged(r)]
    silent = sum(1 for r in judged if r.get("raw_error") is None and not r.get("raw_correct"))
    scored = (len(judged), sum(1 for r in judged if r.get("raw_error") is None))
    return _raw_figures(len(rows), escaped, silent, delta=delta, scored=scored)


def _raw_figures(n: int, escaped: int, silent: int, *, delta: float, scored: tuple[int, int] | None = None) -> PolicyFigures:
    """``scored``: the judged requests and the answered ones among them (default: every request)."""
    answered = n - escaped
    n_judged, answered_judged = scored if scored is not None else (n, answered)
    return PolicyFigures(
        n=n,
        answered=answered,
        silent_failures=silent,
        escaped=escaped,
        coverage=_ratio(answered, n),
        silent_failure_rate=_ratio(silent, n_judged),
        silent_failure_upper=_upper(silent, n_judged, delta),
        selective_risk=_ratio(silent, answered_judged),
        outcomes={"answered": answered, "escaped": escaped},
    )


def _finite(value: float) -> float | None:
    import math

    return float(value) if value is not None and math.isfinite(value) else None


def confidence_quality(rows: Sequence[Mapping[str, Any]]) -> ConfidenceQuality:
    """AUROC, AURC, E-AURC, ECE, adaptive ECE and Brier of the raw confidences in ``rows``.

    Only raw answers that carried a valid confidence in [0, 1] count (``n`` of ``n_total``).
    """
    scored = [r for r in rows if r.get("raw_error") is None and is_valid_confidence(r.get("raw_confidence")) and is_judged(r)]
    confidence = [float(r["raw_confidence"]) for r in scored]
    correct = [bool(r.get("raw_correct")) for r in scored]
    return _confidence_quality(confidence, correct, len(rows))


def _confidence_quality(confidence: Sequence[float], correct: Sequence[bool], n_total: int) -> ConfidenceQuality:
    """The figures of :func:`confidence_quality` from the scored answers (lists or numpy arrays)."""
    n = len(confidence)
    if n == 0:
        return ConfidenceQuality(n=0, n_total=n_total)
    from failpath import stats

    n_right = int(correct.sum()) if hasattr(correct, "sum") else sum(correct)
    return ConfidenceQuality(
        n=n,
        n_total=n_total,
        accuracy=n_right / n,
        auroc=_finite(stats.auroc(confidence, correct)),
        aurc=_finite(stats.aurc(confidence, correct)),
        e_aurc=_finite(stats.e_aurc(confidence, correct)),
        ece=_finite(stats.ece(confidence, correct)),
        adaptive_ece=_finite(stats.adaptive_ece(confidence, correct)),
        brier=_finite(stats.brier(confidence, correct)),
    )


def _gap(
    rows: Sequence[Mapping[str, Any]],
    clean_raw: Mapping[str, bool],
    *,
    seed: int,
    confidence: float,
) -> tuple[float | None, float | None, float | None, float | None, float | None, float | None]:
    """(clean accuracy, chaos accuracy, gap, low, high, flip rate) over the cases that have a clean row."""
    per_case: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        if r["case_id"] in clean_raw and is_judged(r):
            per_case[r["case_id"]].append(bool(r.get("raw_correct")))
    return _gap_of(per_case, clean_raw, seed=seed, confidence=confidence)


def _gap_of(
    per_case: Mapping[str, list[bool]],
    clean_raw: Mapping[str, bool],
    *,
    seed: int,
    confidence: float,
) -> tuple[float | None, float | None, float | None, float | None, float | None, float | None]:
    cases = sorted(per_case)
    return gap_from_counts(
        [clean_raw[c] for c in cases], [sum(per_case[c]) for c in cases], [len(per_case[c]) for c in cases],
        seed=seed, confidence=confidence,
    )


def gap_from_counts(
    clean: Sequence[bool],
    right: Sequence[int],
    variants: Sequence[int],
    *,
    seed: int,
    confidence: float,
) -> tuple[float | None, float | None, float | None, float | None, float | None, float | None]:
    """(clean accuracy, chaos accuracy, gap, low, high, flip rate) from per-case counts, cases in id order.

    ``clean[i]``: the raw system was right on case i's clean input; ``right[i]`` of its ``variants[i]``
    variants were answered right (every case has at least one variant).
    """
    if not clean:
        return None, None, None, None, None, None
    chaos_mean = [k / n for k, n in zip(right, variants)]
    n_variants = sum(variants)
    flips = sum((n - k) if ok else k for ok, k, n in zip(clean, right, variants))
    clean_acc = sum(clean) / len(clean)
    chaos_acc = sum(chaos_mean) / len(chaos_mean)  # each case once, as in the paired gap
    flip_rate = flips / n_variants
    if len(clean) < 2:
        return clean_acc, chaos_acc, clean_acc - chaos_acc, None, None, flip_rate
    from failpath import stats

    if all(n == 1 for n in variants):
        result = stats.paired_gap(
            list(clean), [bool(k) for k in right], seed=seed, confidence=confidence,
            n_resamples=BOOTSTRAP_RESAMPLES,
        )
        return clean_acc, chaos_acc, result.estimate, result.low, result.high, flip_rate
    # Several variants of a case: resample cases, each carrying its mean difference (still paired by case).
    import numpy as np

    differences = np.asarray(clean, dtype=float) - np.asarray(chaos_mean, dtype=float)
    try:
        interval = stats.bootstrap_ci(
            np.mean, differences, n_resamples=BOOTSTRAP_RESAMPLES, confidence=confidence, seed=seed
        )
        low, high, estimate = interval.low, interval.high, interval.estimate
    except stats.StatsInputError:
        interval = stats.bootstrap_ci(
            np.mean, differences, n_resamples=BOOTSTRAP_RESAMPLES, confidence=confidence, seed=seed,
            method="percentile",
        )
        low, high, estimate = interval.low, interval.high, interval.estimate
    return clean_acc, chaos_acc, estimate, low, high, flip_rate


# long: one pass over the rows gathers every count the figures need (a hot path: one loop, not one per figure)
def group_figures(
    rows: Sequence[Mapping[str, Any]],
    *,
    suite: str,
    family: str,
    perturbation: str | None,
    clean_raw: Mapping[str, bool],
    delta: float,
    seed: int,
) -> GroupFigures:
    """Every figure of one group of rows (a suite, or one perturbation in it), with and without the policy.

    ``clean_raw`` maps a case id to whether the raw system was right on its clean input (the pairing
    for the gap and flip rate).
    """
    # One pass over the rows gathers everything the figures are made of (the same definitions as
    # policy_figures, raw_figures, confidence_quality and _gap, which read the rows one figure at a time).
    kinds: Counter[str] = Counter()
    states: Counter[str] = Counter()
    per_case: dict[str, list[bool]] = defaultdict(list)
    contracts: set[str] = set()
    case_ids: set[str] = set()
    confidence: list[float] = []
    correct: list[bool] = []
    silent = raw_escaped = raw_silent = n_wrong = n_right = caught = repaired = alarms = 0
    n_judged = answered_judged = raw_answered_judged = 0
    for r in rows:
        outcome = r["outcome"]
        case_id = r["case_id"]
        raw_ok = bool(r.get("raw_correct"))
        raw_error = r.get("raw_error")
        kinds[outcome] += 1
        fired = r.get("states")
        if fired:
            states.update(set(fired))
        contracts.add(r.get("contract") or "unchanged")
        case_ids.add(case_id)
        if raw_error is not None:
            raw_escaped += 1
        if not is_judged(r):  # answered or handled, never right or wrong
            continue
        n_judged += 1
        answered_judged += outcome == "answered"
        answered_right = outcome == "answered" and bool(r.get("correct"))
        if outcome == "answered" and not answered_right:
            silent += 1
        handled = outcome in HANDLED_KINDS
        if raw_ok:
            n_right += 1
            alarms += handled
        else:
            n_wrong += 1
            caught += handled
            repaired += answered_right
        if raw_error is None:
            raw_answered_judged += 1
            if not raw_ok:
                raw_silent += 1
            c = r.get("raw_confidence")
            if is_valid_confidence(c):
                confidence.append(float(c))
                correct.append(raw_ok)
        if case_id in clean_raw:
            per_case[case_id].append(raw_ok)
    n = len(rows)
    clean_acc, acc, gap, low, high, flip = _gap_of(per_case, clean_raw, seed=seed, confidence=1.0 - delta)
    if acc is None and n_judged:
        acc = n_right / n_judged
    return GroupFigures(
        suite=suite,
        family=family,
        perturbation=perturbation,
        contract=contracts.pop() if len(contracts) == 1 else "mixed",
        n=n,
        n_cases=len(case_ids),
        clean_accuracy=clean_acc,
        accuracy=acc,
        gap=gap,
        gap_low=low,
        gap_high=high,
        flip_rate=flip,
        with_policy=_policy_figures(n, kinds, silent, delta=delta, scored=(n_judged, answered_judged)),
        without_policy=_raw_figures(n, raw_escaped, raw_silent, delta=delta, scored=(n_judged, raw_answered_judged)),
        catch_rate=_ratio(caught, n_wrong),
        false_alarm_rate=_ratio(alarms, n_right),
        repaired=repaired,
        states=dict(sorted(states.items())),
        confidence=_confidence_quality(confidence, correct, n),
    )
