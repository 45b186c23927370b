"""Figures per case tag: the silent-failure rate per family with its case-level bound, over-refusal and counts.

A case may carry tags (``Case.tags``; a dataset's ``tags`` column). :func:`tag_figures` measures the
cases of each tag as the verdict measures the whole run (:mod:`failpath.check.summarise`): on the
evaluation half, per family, the mean over the tag's cases of each case's silent-failure share with its
Hoeffding–Bentkus upper bound, and over-refusal on the realistic requests the raw system answered
right. Requests are never pooled across families. The figures inform; they are not criteria.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from failpath.check.metrics import HANDLED_KINDS
from failpath.check.plan import BUDGET_FAMILIES
from failpath.check.result import OverRefusal, TagFigures
from failpath.check.summarise import case_bound, family_bounds
from failpath.check.tally import OUTCOMES, Tallied

__all__ = ["tag_figures"]

_HANDLED_CODES = np.asarray([OUTCOMES.index(k) for k in sorted(HANDLED_KINDS)], dtype=np.int8)


def tag_figures(t: Tallied, case_tags: Mapping[str, Sequence[str]], budgets: Mapping[str, Any]) -> tuple[TagFigures, ...]:
    """The figures of every tag of the run's cases (``case_tags``: case id -> its tags), tags in name order."""
    members: dict[str, list[int]] = {}
    for index, case_id in enumerate(t.case_ids):
        for tag in dict.fromkeys(case_tags.get(case_id) or ()):
            members.setdefault(str(tag), []).append(index)
    if not members:
        return ()
    delta = float(budgets["delta"])
    given = budgets.get("silent_failure_families") or {}
    per_family = {f: float(given.get(f, budgets["silent_failure"])) for f in BUDGET_FAMILIES}
    counts = {f: t.case_counts(f) for f in BUDGET_FAMILIES}
    refusal = _refusal_counts(t)
    n_cases = len(t.case_ids)
    result = []
    for tag in sorted(members):
        member = np.zeros(n_cases, dtype=bool)
        member[members[tag]] = True
        mine = {f: (counts[f][0] * member, counts[f][1] * member) for f in BUDGET_FAMILIES}
        families = family_bounds(mine, per_family, {}, delta)  # each family alone, as the verdict bounds it
        n = sum(int(requests.sum()) for requests, _ in mine.values())
        silent_total = sum(int(silent.sum()) for _, silent in mine.values())
        evaluated = np.logical_or.reduce([requests > 0 for requests, _ in mine.values()])
        result.append(TagFigures(
            tag=tag, n_cases=int(np.count_nonzero(evaluated)), n=n, silent_failures=silent_total,
            families=tuple(families), over_refusal=_over_refusal(refusal, member, budgets, delta),
        ))
    return tuple(result)


def _refusal_counts(t: Tallied) -> tuple[np.ndarray, np.ndarray] | None:
    """Per case: its realistic evaluation requests the raw system answered right, and those the policy refused."""
    code = t.family_code("realistic")
    if code < 0:
        return None
    c = t.columns
    right = (c["family"] == code) & c["evaluation"] & c["raw_correct"]
    refused = right & np.isin(c["outcome"], _HANDLED_CODES)
    n_cases = len(t.case_ids)
    return np.bincount(c["case"][right], minlength=n_cases), np.bincount(c["case"][refused], minlength=n_cases)


def _over_refusal(
    counts: tuple[np.ndarray, np.ndarray] | None, member: np.ndarray, budgets: Mapping[str, Any], delta: float
) -> OverRefusal | None:
    if counts is None:
        return None
    requests, refusals = counts[0] * member, counts[1] * member
    if not requests.any():
        return None
    from failpath.check.plan import DEFAULT_FALSE_ALARM

    budget = float(budgets.get("false_alarm", DEFAULT_FALSE_ALARM))
    rate, upper = case_bound(requests, refusals, 1.0 - delta)
    return OverRefusal(
        n=int(requests.sum()), n_cases=int(np.count_nonzero(requests)), refused=int(refusals.sum()), rate=rate,
        upper=upper, confidence=1.0 - delta, budget=budget, passed=upper is not None and upper <= budget,
    )
