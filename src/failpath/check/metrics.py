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
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from failpath.check.result import ConfidenceQuality, GroupFigures, PolicyFigures
from failpath.core import OUTCOME_KINDS, is_valid_confidence

__all__ = [
    "HANDLED_KINDS",
    "policy_figures",
    "raw_figures",
    "confidence_quality",
    "group_figures",
    "derive_int_seed",
]

HANDLED_KINDS = frozenset(k for k in OUTCOME_KINDS if k != "answered")

#: Bootstrap resamples for the gap interval (BCa); enough for a stable 95% interval, fast on 2 cores.
BOOTSTRAP_RESAMPLES = 2000


def derive_int_seed(*parts: Any) -> int:
    """A 32-bit seed from ``parts`` (stable across processes), for bootstraps and splits."""
    import hashlib

    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "big")


def _ratio(k: int, n: int) -> float | None:
    return k / n if n else None


def _upper(k: int, n: int, delta: float) -> float | None:
    if n == 0:
        return None
    from failpath.stats import binomial_upper_bound

    return float(binomial_upper_bound(k, n, confidence=1.0 - delta))


def policy_figures(rows: Sequence[Mapping[str, Any]], *, delta: float) -> PolicyFigures:
    """What the guarded calls in ``rows`` ended in (with the policy)."""
    n = len(rows)
    kinds = Counter(r["outcome"] for r in rows)
    answered = kinds.get("answered", 0)
    silent = sum(1 for r in rows if r["outcome"] == "answered" and not r.get("correct"))
    escaped = kinds.get("escaped", 0)
    outcomes = {k: kinds.get(k, 0) for k in (*OUTCOME_KINDS, "escaped")}
    return PolicyFigures(
        n=n,
        answered=answered,
        silent_failures=silent,
        escaped=escaped,
        coverage=_ratio(answered, n),
        silent_failure_rate=_ratio(silent, n),
        silent_failure_upper=_upper(silent, n, delta),
        selective_risk=_ratio(silent, answered),
        outcomes=outcomes,
    )


def raw_figures(rows: Sequence[Mapping[str, Any]], *, delta: float) -> PolicyFigures:
    """What the raw system's first answers in ``rows`` amount to (without the policy).

    The raw system answers whenever it returns; an exception is an escape (and counts as wrong).
    """
    n = len(rows)
    escaped = sum(1 for r in rows if r.get("raw_error") is not None)
    answered = n - escaped
    silent = sum(1 for r in rows if r.get("raw_error") is None and not r.get("raw_correct"))
    return PolicyFigures(
        n=n,
        answered=answered,
        silent_failures=silent,
        escaped=escaped,
        coverage=_ratio(answered, n),
        silent_failure_rate=_ratio(silent, n),
        silent_failure_upper=_upper(silent, n, delta),
        selective_risk=_ratio(silent, answered),
        outcomes={"answered": answered, "escaped": escaped},
    )


def _finite(value: float) -> float | None:
    import math

    return float(value) if value is not None and math.isfinite(value) else None


def confidence_quality(rows: Sequence[Mapping[str, Any]]) -> ConfidenceQuality:
    """AUROC, AURC, E-AURC, ECE, adaptive ECE and Brier of the raw confidences in ``rows``.

    Only raw answers that carried a valid confidence in [0, 1] count (``n`` of ``n_total``).
    """
    scored = [r for r in rows if r.get("raw_error") is None and is_valid_confidence(r.get("raw_confidence"))]
    n = len(scored)
    if n == 0:
        return ConfidenceQuality(n=0, n_total=len(rows))
    from failpath import stats

    confidence = [float(r["raw_confidence"]) for r in scored]
    correct = [bool(r.get("raw_correct")) for r in scored]
    return ConfidenceQuality(
        n=n,
        n_total=len(rows),
        accuracy=sum(correct) / n,
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
        if r["case_id"] in clean_raw:
            per_case[r["case_id"]].append(bool(r.get("raw_correct")))
    if not per_case:
        return None, None, None, None, None, None
    cases = sorted(per_case)
    clean = [clean_raw[c] for c in cases]
    chaos_mean = [sum(per_case[c]) / len(per_case[c]) for c in cases]
    n_variants = sum(len(v) for v in per_case.values())
    flips = sum(1 for c in cases for ok in per_case[c] if ok != clean_raw[c])
    clean_acc = sum(clean) / len(clean)
    chaos_acc = sum(chaos_mean) / len(chaos_mean)  # each case once, as in the paired gap
    flip_rate = flips / n_variants
    if len(cases) < 2:
        return clean_acc, chaos_acc, clean_acc - chaos_acc, None, None, flip_rate
    from failpath import stats

    if all(len(per_case[c]) == 1 for c in cases):
        result = stats.paired_gap(
            clean, [bool(per_case[c][0]) for c in cases], seed=seed, confidence=confidence,
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


def _contract(rows: Iterable[Mapping[str, Any]]) -> str:
    contracts = {r.get("contract") or "unchanged" for r in rows}
    return contracts.pop() if len(contracts) == 1 else "mixed"


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
    clean_acc, acc, gap, low, high, flip = _gap(rows, clean_raw, seed=seed, confidence=1.0 - delta)
    raw_wrong = [r for r in rows if not r.get("raw_correct")]
    raw_right = [r for r in rows if r.get("raw_correct")]
    caught = sum(1 for r in raw_wrong if r["outcome"] in HANDLED_KINDS)
    repaired = sum(1 for r in raw_wrong if r["outcome"] == "answered" and r.get("correct"))
    alarms = sum(1 for r in raw_right if r["outcome"] in HANDLED_KINDS)
    states: Counter[str] = Counter()
    for r in rows:
        states.update(set(r.get("states") or ()))
    if acc is None and rows:
        acc = sum(bool(r.get("raw_correct")) for r in rows) / len(rows)
    return GroupFigures(
        suite=suite,
        family=family,
        perturbation=perturbation,
        contract=_contract(rows),
        n=len(rows),
        n_cases=len({r["case_id"] for r in rows}),
        clean_accuracy=clean_acc,
        accuracy=acc,
        gap=gap,
        gap_low=low,
        gap_high=high,
        flip_rate=flip,
        with_policy=policy_figures(rows, delta=delta),
        without_policy=raw_figures(rows, delta=delta),
        catch_rate=_ratio(caught, len(raw_wrong)),
        false_alarm_rate=_ratio(alarms, len(raw_right)),
        repaired=repaired,
        states=dict(sorted(states.items())),
        confidence=confidence_quality(rows),
    )
