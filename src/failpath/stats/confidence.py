"""How well a confidence score separates right answers from wrong ones.

Conventions shared by every function here (they are part of the interface):

* an item is *answered* at threshold ``t`` when ``confidence >= t``;
* ``correct`` holds booleans or 0/1; an *error* is an item with ``correct == 0``;
* over ``n`` items: coverage = answered / n, selective risk = errors among answered / answered,
  joint risk = errors among answered / n.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from failpath.stats._inputs import StatsInputError, as_correct, as_pair, as_probability

__all__ = [
    "RiskCoverage",
    "risk_coverage",
    "aurc",
    "oracle_aurc",
    "e_aurc",
    "augrc",
    "auroc",
    "ReliabilityBins",
    "reliability_bins",
    "ece",
    "adaptive_ece",
    "brier",
    "selective_risk_at_coverage",
]


@dataclass(frozen=True)
class RiskCoverage:
    """The risk–coverage curve: one entry per distinct confidence, highest first.

    At ``thresholds[i]`` the items with ``confidence >= thresholds[i]`` are answered:
    ``n_answered[i]`` of them, ``n_errors[i]`` wrong. ``coverage = n_answered / n``,
    ``selective_risk = n_errors / n_answered``, ``joint_risk = n_errors / n``.
    """

    thresholds: np.ndarray
    n_answered: np.ndarray
    n_errors: np.ndarray
    coverage: np.ndarray
    selective_risk: np.ndarray
    joint_risk: np.ndarray
    n: int

    def __len__(self) -> int:
        return int(self.thresholds.size)


def risk_coverage(confidence: Any, correct: Any) -> RiskCoverage:
    """The risk–coverage curve over every distinct confidence value, highest threshold first.

    Definition: for each distinct confidence ``t`` (descending), answer the items with
    ``confidence >= t`` (so tied items are answered together) and count them and their errors.
    Coverage, selective risk and joint risk follow from those counts (see :class:`RiskCoverage`).
    """
    scores, right = as_pair(confidence, correct)
    thresholds, answered, errors = _counts_at_distinct(scores, right)
    n = scores.size
    return RiskCoverage(
        thresholds=_frozen(thresholds),
        n_answered=_frozen(answered),
        n_errors=_frozen(errors),
        coverage=_frozen(answered / n),
        selective_risk=_frozen(errors / answered),
        joint_risk=_frozen(errors / n),
        n=n,
    )


def aurc(
    confidence: Any,
    correct: Any,
    *,
    ties: Literal["average", "optimistic", "pessimistic"] = "average",
) -> float:
    """Area under the risk–coverage curve (lower is better), in the discrete form.

    Definition: rank the items by confidence, highest first; ``AURC = (1/n) * sum_{k=1..n} E_k / k``
    where ``E_k`` is the number of errors among the first ``k`` ranked items.

    Ties: with ``ties="average"`` (the default) ``E_k`` is averaged over every random order of tied
    items (inside a tie group of size ``m`` holding ``e`` errors, each item adds ``e/m`` errors);
    ``"optimistic"`` puts the correct items of a tie first, ``"pessimistic"`` the wrong ones first,
    which bound the average from below and above.
    """
    scores, right = as_pair(confidence, correct)
    cumulative_errors = _ranked_cumulative_errors(scores, right, ties)
    ranks = np.arange(1, scores.size + 1)
    return float(np.mean(cumulative_errors / ranks))


def oracle_aurc(correct: Any, *, form: Literal["discrete", "continuous"] = "discrete") -> float:
    """The AURC of a perfect confidence ranking (every right item ranked above every wrong one).

    Discrete form (the default, used by :func:`e_aurc`): with ``n`` items and ``E`` errors,
    ``(1/n) * sum_{k=1..n} max(0, k - (n - E)) / k``. Continuous form: ``r + (1 - r) * ln(1 - r)``
    with ``r = E / n`` (the large-``n`` limit; ``r`` when every item is wrong).
    """
    right = as_correct(correct)
    n = right.size
    n_errors = int(n - right.sum())
    if form == "continuous":
        r = n_errors / n
        return float(r if r == 1.0 else r + (1.0 - r) * np.log1p(-r))
    if form != "discrete":
        raise StatsInputError(f"form must be 'discrete' or 'continuous', got {form!r}")
    ranks = np.arange(1, n + 1)
    return float(np.mean(np.maximum(0, ranks - (n - n_errors)) / ranks))


def e_aurc(confidence: Any, correct: Any) -> float:
    """Excess AURC: ``aurc(confidence, correct) - oracle_aurc(correct)`` (discrete oracle, averaged ties).

    0 means the confidence ranks every right answer above every wrong one.
    """
    return aurc(confidence, correct) - oracle_aurc(correct)


def augrc(confidence: Any, correct: Any) -> float:
    """Area under the generalized risk–coverage curve (joint risk against coverage; lower is better).

    Definition: ``AUGRC = (1/n) * sum_{k=1..n} E_k / n`` with ``E_k`` the errors among the ``k``
    most confident items, ties averaged over random order as in :func:`aurc`.
    """
    scores, right = as_pair(confidence, correct)
    cumulative_errors = _ranked_cumulative_errors(scores, right, "average")
    return float(np.mean(cumulative_errors) / scores.size)


def auroc(confidence: Any, correct: Any) -> float:
    """Area under the ROC curve for telling right answers (positives) from wrong ones by confidence.

    Definition: the probability that a randomly drawn right item has a higher confidence than a
    randomly drawn wrong item; ties count half (the Mann–Whitney ``U / (n_right * n_wrong)``).
    Returns NaN when every item is right or every item is wrong (the area is undefined).
    """
    scores, right = as_pair(confidence, correct)
    n_right = int(right.sum())
    n_wrong = scores.size - n_right
    if n_right == 0 or n_wrong == 0:
        return float("nan")
    ranks = _average_ranks(scores)  # ties count half
    u_statistic = ranks[right].sum() - n_right * (n_right + 1) / 2.0
    return float(u_statistic / (n_right * n_wrong))


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width calibration bins: bin ``b`` covers ``(edges[b], edges[b+1]]`` (0 goes to bin 0).

    ``count[b]`` items fell in bin ``b``; ``mean_confidence[b]`` and ``accuracy[b]`` are NaN for an
    empty bin. ``n`` is the number of items.
    """

    edges: np.ndarray
    count: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray
    n: int

    @property
    def ece(self) -> float:
        """``sum_b (count_b / n) * |accuracy_b - mean_confidence_b|`` over non-empty bins."""
        filled = self.count > 0
        gaps = np.abs(self.accuracy[filled] - self.mean_confidence[filled])
        return float(np.sum(self.count[filled] * gaps) / self.n)


def reliability_bins(confidence: Any, correct: Any, bins: int = 15) -> ReliabilityBins:
    """The reliability diagram behind :func:`ece`: per equal-width bin, count, mean confidence, accuracy.

    Bin edges are ``numpy.linspace(0, 1, bins + 1)``; bin ``b`` holds confidences in
    ``(edge_b, edge_{b+1}]`` and confidence 0 goes to the first bin. Confidences must lie in [0, 1].
    """
    scores, right = as_pair(confidence, correct, unit_interval=True)
    n_bins = _bin_count(bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(scores, edges, right=True) - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=scores, minlength=n_bins) / counts
        accuracy = np.bincount(index, weights=right.astype(float), minlength=n_bins) / counts
    return ReliabilityBins(
        edges=_frozen(edges),
        count=_frozen(counts),
        mean_confidence=_frozen(mean_confidence),
        accuracy=_frozen(accuracy),
        n=int(scores.size),
    )


def ece(confidence: Any, correct: Any, bins: int = 15) -> float:
    """Expected calibration error with equal-width bins.

    Definition: bin edges ``numpy.linspace(0, 1, bins + 1)``; bin ``b`` holds the confidences in
    ``(edge_b, edge_{b+1}]`` and confidence 0 goes to the first bin.
    ``ECE = sum_b (n_b / n) * |accuracy_b - mean confidence_b|`` over non-empty bins.
    Confidences must lie in [0, 1].
    """
    return reliability_bins(confidence, correct, bins).ece


def adaptive_ece(confidence: Any, correct: Any, bins: int = 15) -> float:
    """Expected calibration error with equal-count bins.

    Definition: sort the items by confidence, ascending, with a stable sort (tied items keep their
    input order); split them with ``numpy.array_split`` into ``bins`` bins (sizes differ by at most
    one, larger bins first); ``ECE = sum_b (n_b / n) * |accuracy_b - mean confidence_b|``.
    Confidences must lie in [0, 1]. With fewer items than bins, each item is its own bin.
    """
    scores, right = as_pair(confidence, correct, unit_interval=True)
    n_bins = min(_bin_count(bins), scores.size)
    order = np.argsort(scores, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, n_bins):
        total += abs(float(right[chunk].sum()) - float(scores[chunk].sum()))
    return total / scores.size


def brier(confidence: Any, correct: Any) -> float:
    """Brier score of the confidence as a probability of being right: ``mean((confidence - correct)^2)``.

    Lower is better; confidences must lie in [0, 1].
    """
    scores, right = as_pair(confidence, correct, unit_interval=True)
    return float(np.mean((scores - right) ** 2))


def selective_risk_at_coverage(confidence: Any, correct: Any, coverage: float) -> float:
    """Selective risk of the smallest answered set, reachable by a threshold, whose coverage >= ``coverage``.

    Definition: among the thresholds of :func:`risk_coverage` (answer when ``confidence >= t``), take
    the highest one whose coverage is at least ``coverage`` (0 < coverage <= 1) and return
    errors / answered there. Tied items are answered together, so the coverage reached may exceed
    the one asked for.
    """
    target = as_probability(coverage, "coverage", open_interval=False)
    if target == 0.0:
        raise StatsInputError("coverage must be greater than 0: nothing answered has no risk to report")
    curve = risk_coverage(confidence, correct)
    # A small tolerance so that e.g. 0.25 matches 5/20 despite floating point.
    reached = np.flatnonzero(curve.coverage >= target - 1e-12)
    return float(curve.selective_risk[reached[0]])


# --------------------------------------------------------------------------- shared helpers


def _counts_at_distinct(
    scores: np.ndarray, right: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct confidences (descending) with answered and error counts at each as a threshold."""
    distinct, inverse = np.unique(-scores, return_inverse=True)
    per_value = np.bincount(inverse, minlength=distinct.size)
    errors_per_value = np.bincount(inverse, weights=~right, minlength=distinct.size)
    return -distinct, np.cumsum(per_value), np.cumsum(errors_per_value).astype(np.int64)


def _ranked_cumulative_errors(scores: np.ndarray, right: np.ndarray, ties: str) -> np.ndarray:
    """``E_k`` for k = 1..n over items ranked by confidence, highest first, with the given tie rule."""
    wrong = ~right
    if ties == "optimistic":
        return np.cumsum(wrong[np.lexsort((wrong, -scores))]).astype(float)
    if ties == "pessimistic":
        return np.cumsum(wrong[np.lexsort((right, -scores))]).astype(float)
    if ties != "average":
        raise StatsInputError(
            f"ties must be 'average', 'optimistic' or 'pessimistic', got {ties!r}"
        )
    _, inverse = np.unique(-scores, return_inverse=True)
    group_size = np.bincount(inverse)
    group_errors = np.bincount(inverse, weights=wrong)
    group_start = np.cumsum(group_size) - group_size
    errors_before = np.cumsum(group_errors) - group_errors
    ranked_group = np.sort(inverse)
    position_in_group = np.arange(1, scores.size + 1) - group_start[ranked_group]
    return (
        errors_before[ranked_group]
        + position_in_group * group_errors[ranked_group] / group_size[ranked_group]
    )


def _average_ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``scores``, ascending; tied values share the average of their ranks."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks_before = np.cumsum(counts) - counts
    return (ranks_before + (counts + 1) / 2.0)[inverse.reshape(-1)]


def _bin_count(bins: Any) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise StatsInputError(f"bins must be a positive whole number, got {bins!r}")
    return int(bins)


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    array.setflags(write=False)
    return array
