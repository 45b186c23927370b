"""Criteria of the verdict that keep it from being gamed by leaving things out.

- ``families_run``: the realistic, hostile and fault families (:data:`failpath.check.plan.REQUIRED_FAMILIES`)
  each ran on the evaluation half, or were waived with a written reason: dropping a chaos suite must
  never be a way to pass.
- ``severe_silent_failure``: per family (or on the declared mix), the upper bound of the severe
  silent-failure rate, with the case as the unit, is within ``severe_silent_failure``; with no severity
  configured every wrong answer counts as severe.

And the plain note a bound gets when its family has too few cases to show any rate under its budget.
"""

from __future__ import annotations

from collections.abc import Mapping

from failpath.check.plan import REQUIRED_FAMILIES
from failpath.check.result import Criterion, FamilyBound, SeverityReport

__all__ = ["families_run_criterion", "severe_criterion", "too_few_cases"]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def too_few_cases(f: FamilyBound) -> str | None:
    """``"N cases cannot show a rate under B; need at least M"`` when even no failure at all could not
    bring ``f``'s bound (at its level) within its budget: M evaluation cases are needed. None otherwise,
    and for the mix."""
    if f.family == "mix" or f.upper is None or f.passed:
        return None
    from failpath import stats

    needed = stats.cases_needed(f.budget, f.confidence)
    if f.n_cases >= needed:
        return None
    return f"{f.n_cases} cases cannot show a rate under {_pct(f.budget)}; need at least {needed}"


def families_run_criterion(evaluated: Mapping[str, int], ran: Mapping[str, int], waived: Mapping[str, str]) -> Criterion:
    """``families_run``: each required family has evaluated requests, or a waiver with its reason.

    ``evaluated`` counts each family's requests on the evaluation half, ``ran`` its requests on both halves.
    """
    missing, notes = [], []
    for family in REQUIRED_FAMILIES:
        if evaluated.get(family, 0) > 0:
            notes.append(f"{family} ran ({evaluated[family]} evaluated requests)")
        elif family in waived:
            notes.append(f"{family} waived: {waived[family]}")
        else:
            missing.append(family)
            if ran.get(family, 0) > 0:
                notes.append(f"{family} ran but none of its {ran[family]} requests fell on the evaluation half; add cases")
            else:
                notes.append(f"no {family} suite ran: add one to suites, or waive it: [waive] {family} = \"why\"")
    n_run = sum(1 for f in REQUIRED_FAMILIES if evaluated.get(f, 0) > 0)
    n_waived = sum(1 for f in REQUIRED_FAMILIES if f in waived and not evaluated.get(f, 0))
    return Criterion(
        name="families_run",
        passed=not missing,
        figure=f"{n_run} run + {n_waived} waived of {len(REQUIRED_FAMILIES)} required families"
        + (f"; missing: {', '.join(missing)}" if missing else ""),
        detail="; ".join(notes),
    )


def severe_criterion(report: SeverityReport | None) -> Criterion:
    """``severe_silent_failure``: every family (and the declared mix) within the severe budget."""
    if report is None or not report.families:
        return Criterion(
            name="severe_silent_failure", passed=False, figure="no request was evaluated",
            detail="no family had an evaluated request, so nothing bounds the severe silent-failure rate",
        )
    failed = [f for f in report.families if not f.passed]
    # The family to name first: one whose severe failures break the budget before one that only lacks cases.
    worst = max(failed or report.families, key=lambda f: (f.silent_failures > 0, (f.upper or 0.0) / f.budget))
    graded = f"graded by {report.graded_by}" if report.graded_by else "no severity configured: every wrong answer counts as severe"
    parts = []
    for f in report.families:
        bound = "no request" if f.upper is None else f"{_pct(f.rate)} ≤ {_pct(f.upper)} vs {_pct(f.budget)}"
        note = too_few_cases(f)
        parts.append(f"{f.family} {'PASS' if f.passed else 'FAIL'} {bound} ({f.silent_failures}/{f.n}, {f.n_cases} cases)"
                     + (f": {note}" if note else ""))
    head = "over budget" if failed else "worst"
    figure = (f"{head}: {worst.family} {_pct(worst.rate)} ≤ {_pct(worst.upper)} (budget {_pct(worst.budget)}); "
              f"{report.severe_with_policy} severe silent failures, {report.severe_without_policy} without the policy; "
              f"severity ≥ {report.cut:g}, {graded}")
    return Criterion(
        name="severe_silent_failure",
        passed=not failed,
        figure=figure,
        detail="; ".join(parts),
    )
