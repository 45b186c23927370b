"""The verdict of a check: READY TO SHIP only when every criterion passes.

Criteria, in the order a report lists them:

1. ``states_handled``: every failure state of the catalog (``failpath.core.STATES``) is handled by a
   rule of the policy, or accepted in the configuration with a written reason.
2. ``states_exercised``: every state the policy handles was detected at least once in this run, and
   every call on which it was detected took one of the actions its rule declares.
3. ``silent_failure_bound``: the exact upper confidence bound (1 − delta) of the silent-failure rate
   under chaos (every chaos request of the evaluation half, with the policy) is within the budget.
4. ``coverage_floor``: the share of clean evaluation requests answered is at least the floor, so
   abstaining on everything cannot pass.
5. ``no_escapes``: no guarded call raised (over the whole run).
6. ``hostile_answers_stable``: no hostile input changed an answer while the outcome stayed Answered
   (see :func:`hostile_flips`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from failpath.check.result import Criterion, GroupFigures, StateCoverage, Verdict
from failpath.core import STATES

__all__ = ["state_coverage", "coverage_from_counts", "hostile_flips", "decide"]


def state_coverage(
    rows: Sequence[Mapping[str, Any]],
    handled: Mapping[str, Sequence[str]],
    accepted: Mapping[str, str],
) -> tuple[StateCoverage, ...]:
    """Each failure state (the catalog first, then the policy's own states): how it is handled and exercised."""
    fired: dict[str, int] = {}
    decided: dict[str, int] = {}
    ended: dict[str, int] = {}
    for row in rows:
        states = set(row.get("states") or ())
        actions = set(row.get("actions") or ())
        if row.get("state"):
            decided[row["state"]] = decided.get(row["state"], 0) + 1
        for state in states:
            fired[state] = fired.get(state, 0) + 1
            declared = handled.get(state)
            if declared is not None and (not declared or actions & set(declared)):
                ended[state] = ended.get(state, 0) + 1
    return coverage_from_counts(fired, decided, ended, handled, accepted)


def coverage_from_counts(
    fired: Mapping[str, int],
    decided: Mapping[str, int],
    ended: Mapping[str, int],
    handled: Mapping[str, Sequence[str]],
    accepted: Mapping[str, str],
) -> tuple[StateCoverage, ...]:
    """:func:`state_coverage` from counts over the rows: calls on which each state was detected
    (``fired``), was the deciding state (``decided``), and took an action its rule declares (``ended``)."""
    names = list(STATES) + sorted(set(handled) - set(STATES))
    result = []
    for state in names:
        declared = tuple(handled.get(state, ()))
        is_handled = state in handled
        reason = accepted.get(state)
        n_fired, n_ended = fired.get(state, 0), ended.get(state, 0)
        if is_handled:
            ok = n_fired > 0 and n_ended == n_fired
            if n_fired == 0:
                detail = "handled but never exercised by this run"
            elif n_ended < n_fired:
                detail = f"{n_fired - n_ended} of {n_fired} calls did not take a declared action ({', '.join(declared)})"
            else:
                detail = f"exercised {n_fired}×, always by {', '.join(declared) or 'its rule'}"
        elif reason:
            ok = True
            detail = f"accepted: {reason}"
        else:
            ok = False
            detail = "no rule handles it and it is not accepted in the configuration"
        result.append(
            StateCoverage(
                state=state,
                handled_by=declared,
                accepted=reason,
                fired=n_fired,
                decided=decided.get(state, 0),
                ended_declared=n_ended,
                ok=ok,
                detail=detail,
            )
        )
    return tuple(result)


def hostile_flips(
    rows: Sequence[Mapping[str, Any]],
    clean: Mapping[str, Mapping[str, Any]],
    judge: Callable[[Any, Any], bool],
) -> list[Mapping[str, Any]]:
    """Hostile rows whose answer changed while the outcome stayed Answered.

    A hostile variant counts when both it and its clean case ended ``Answered`` and: for a variant
    whose expected answer is unchanged, the judge says the two answers differ; for a variant whose
    expected answer was transformed (or is not preserved), the clean answer was right and the
    hostile one is wrong.
    """
    flips = []
    for row in rows:
        if row.get("family") != "hostile" or row.get("outcome") != "answered":
            continue
        base = clean.get(row["case_id"])
        if base is None or base.get("outcome") != "answered":
            continue
        if (row.get("contract") or "unchanged") == "unchanged":
            try:
                same = bool(judge(row.get("value"), base.get("value")))
            except Exception:
                same = False
            if not same:
                flips.append(row)
        elif base.get("correct") and not row.get("correct"):
            flips.append(row)
    return flips


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def decide(
    *,
    states: Sequence[StateCoverage],
    chaos: GroupFigures,
    clean: GroupFigures,
    escapes: int,
    n_rows: int,
    flips: int,
    n_hostile_answered: int,
    silent_failure_budget: float,
    coverage_floor: float,
    delta: float,
) -> Verdict:
    """The verdict from the figures of a run (see the module docstring for the criteria)."""
    catalog = [s for s in states if s.state in STATES]
    unhandled = [s.state for s in catalog if not s.handled_by and not s.accepted]
    n_handled = sum(1 for s in catalog if s.handled_by)
    n_accepted = sum(1 for s in catalog if not s.handled_by and s.accepted)
    c1 = Criterion(
        name="states_handled",
        passed=not unhandled,
        figure=f"{n_handled} handled + {n_accepted} accepted of {len(catalog)}",
        detail=("unhandled: " + ", ".join(unhandled)) if unhandled else "every failure state has a defined behavior",
    )
    handled = [s for s in states if s.handled_by]
    never = [s.state for s in handled if s.fired == 0]
    strayed = [s.state for s in handled if s.fired and s.ended_declared < s.fired]
    exercised_ok = sum(1 for s in handled if s.ok)
    problems = []
    if never:
        problems.append("never exercised: " + ", ".join(never))
    if strayed:
        problems.append("did not end in the declared action: " + ", ".join(strayed))
    c2 = Criterion(
        name="states_exercised",
        passed=bool(handled) and not problems,
        figure=f"{exercised_ok}/{len(handled)} handled states exercised",
        detail="; ".join(problems) if problems else ("no state is handled" if not handled else "every handled state was exercised and took its action"),
    )
    w = chaos.with_policy
    upper = w.silent_failure_upper
    c3 = Criterion(
        name="silent_failure_bound",
        passed=upper is not None and upper <= silent_failure_budget,
        figure=f"{_pct(w.silent_failure_rate)} observed, ≤ {_pct(upper)} at {100 * (1 - delta):g}% (budget {_pct(silent_failure_budget)})",
        detail=f"{w.silent_failures} silent failures in {w.n} chaos requests"
        if w.n
        else "no chaos request was evaluated",
    )
    coverage = clean.with_policy.coverage
    c4 = Criterion(
        name="coverage_floor",
        passed=coverage is not None and coverage >= coverage_floor,
        figure=f"{_pct(coverage)} of clean requests answered (floor {_pct(coverage_floor)})",
        detail=f"{clean.with_policy.answered} of {clean.with_policy.n} clean requests answered",
    )
    c5 = Criterion(
        name="no_escapes",
        passed=escapes == 0,
        figure=f"{escapes} escaped of {n_rows} guarded calls",
        detail="every guarded call ended in a typed outcome" if escapes == 0 else "guarded calls raised instead of ending in an outcome",
    )
    c6 = Criterion(
        name="hostile_answers_stable",
        passed=flips == 0,
        figure=f"{flips} changed answers in {n_hostile_answered} answered hostile inputs",
        detail="no hostile input changed an answer that stayed Answered"
        if flips == 0
        else "hostile inputs changed answers the guard let through",
    )
    reasons = (c1, c2, c3, c4, c5, c6)
    return Verdict(ship=all(c.passed for c in reasons), reasons=reasons)
