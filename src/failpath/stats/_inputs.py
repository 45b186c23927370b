"""Checking and converting the arrays every statistic takes."""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import numpy as np

from failpath.core import FailpathError

__all__ = ["StatsInputError", "expand_groups"]


class StatsInputError(FailpathError, ValueError):
    """An argument to a statistic is unusable: the message names the argument, position and value."""


def as_scores(values: Any, name: str = "confidence", *, unit_interval: bool = False) -> np.ndarray:
    """``values`` as a 1-D float array, finite, and within [0, 1] when ``unit_interval``."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StatsInputError(f"{name} must be a list or array of numbers: {exc}") from None
    if array.ndim != 1:
        raise StatsInputError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise StatsInputError(f"{name} is empty: at least one value is needed")
    bad = ~np.isfinite(array)
    if unit_interval:
        bad |= (array < 0.0) | (array > 1.0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        allowed = "a number in [0, 1]" if unit_interval else "a finite number"
        raise StatsInputError(
            f"{name}[{index}] = {array[index].item()!r} is not {allowed} "
            f"({int(bad.sum())} such value(s)); drop or fix those items"
        )
    return array


def as_correct(values: Any, name: str = "correct") -> np.ndarray:
    """``values`` as a 1-D bool array; accepts bools or the numbers 0 and 1."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise StatsInputError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise StatsInputError(f"{name} is empty: at least one value is needed")
    if array.dtype == bool:
        return array
    try:
        numbers = array.astype(float)
    except (TypeError, ValueError):
        raise StatsInputError(f"{name} must hold booleans or 0/1, got dtype {array.dtype}") from None
    bad = (numbers != 0.0) & (numbers != 1.0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise StatsInputError(
            f"{name}[{index}] = {array[index].item()!r}: correctness must be True/False or 1/0"
        )
    return numbers == 1.0


def as_pair(
    confidence: Any, correct: Any, *, unit_interval: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(confidence, correct)`` arrays of equal length."""
    scores = as_scores(confidence, unit_interval=unit_interval)
    right = as_correct(correct)
    if scores.size != right.size:
        raise StatsInputError(
            f"confidence has {scores.size} values but correct has {right.size}: "
            "they must describe the same items, in the same order"
        )
    return scores, right


def as_probability(value: float, name: str, *, open_interval: bool = True) -> float:
    """``value`` as a float strictly inside (0, 1) (or within [0, 1] when not ``open_interval``).

    Every level, confidence, ``alpha``, ``delta`` and ``max_risk`` of ``failpath.stats`` goes
    through here, so each refuses the same values (outside the interval, NaN, booleans, text,
    None) with the same :class:`StatsInputError`: ``"<name> must be strictly between 0 and 1,
    got <value>"``.
    """
    bounds = "strictly between 0 and 1" if open_interval else "between 0 and 1"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise StatsInputError(f"{name} must be {bounds}, got {value!r}")
    number = float(value)
    inside = 0.0 < number < 1.0 if open_interval else 0.0 <= number <= 1.0
    if not inside:
        raise StatsInputError(f"{name} must be {bounds}, got {value!r}")
    return number


def expand_groups(groups: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Expand grouped data into per-item ``(confidence, correct)`` arrays.

    Each group is ``(confidence, count, errors)``: ``count`` items sharing that confidence, of which
    ``errors`` are wrong. Groups expand in the order given; inside a group the correct items come
    first, then the wrong ones (only adaptive ECE, whose equal-count bins may split a group, depends
    on that order). Every statistic in ``failpath.stats`` then applies unchanged.
    """
    confidences: list[float] = []
    counts: list[int] = []
    errors: list[int] = []
    for position, group in enumerate(groups):
        try:
            confidence, count, n_errors = group
        except (TypeError, ValueError):
            raise StatsInputError(
                f"groups[{position}] = {group!r}: each group must be (confidence, count, errors)"
            ) from None
        if not all(_is_whole(v) for v in (count, n_errors)) or not 0 <= n_errors <= count:
            raise StatsInputError(
                f"groups[{position}] = {group!r}: count and errors must be whole numbers "
                "with 0 <= errors <= count"
            )
        confidences.append(confidence)
        counts.append(int(count))
        errors.append(int(n_errors))
    if not counts or sum(counts) == 0:
        raise StatsInputError("groups hold no items: at least one group with count > 0 is needed")
    scores = as_scores(confidences, "group confidence")
    count_array = np.asarray(counts)
    error_array = np.asarray(errors)
    confidence = np.repeat(scores, count_array)
    # Within each group, position < count - errors means correct.
    offsets = np.arange(confidence.size) - np.repeat(np.cumsum(count_array) - count_array, count_array)
    correct = offsets < np.repeat(count_array - error_array, count_array)
    return confidence, correct


def _is_whole(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return float(value) == int(value)
    except (TypeError, ValueError, OverflowError):
        return False
