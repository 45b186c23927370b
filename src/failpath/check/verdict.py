"""The verdict of a check: READY TO SHIP only when every criterion passes.

Criteria, in the order a report lists them:

1. ``states_handled``: every failure state of the catalog (``failpath.core.STATES``) is handled by a
   rule of the policy, or accepted in the configuration with a written reason.
2. ``states_exercised``: every state the policy handles was detected at least once in this run, and
   every call on which it was detected took one of the actions its rule declares.
3. ``families_run``: the realistic, hostile and fault families each ran on the evaluation half, or are
   waived with a written reason (see :func:`failpath.check.gate.families_run_criterion`).
4. ``silent_failure_bound``: for each family present on the evaluation half (clean, realistic, hostile,
   fault), the upper confidence bound (1 − delta) of its silent-failure rate, with the case as the
   independent unit (mean over cases of each case's share), is within that family's budget; or, for the
   families a declared traffic mix weighs, the bound of the weighted rate is within the weighted budget
   (see :func:`failpath.check.summarise.silent_failure_families`). Never a pooled count. A family with
   too few cases to show a rate under its budget even with no failure says so, and how many it needs.
5. ``severe_silent_failure``: the same per family for the silent failures whose severity is at least the
   severe cut, against the much smaller ``severe_silent_failure`` budget; with no severity configured every
   wrong answer counts as severe (see :func:`failpath.check.gate.severe_criterion`).
6. ``coverage_floor``: the share of clean evaluation requests answered is at least the floor, so
   abstaining on everything cannot pass.
7. ``over_refusal``: of the realistic requests the raw system answered right, the share the policy
   refused (a handled outcome) has its upper bound (1 − delta, case as the unit) within ``false_alarm``,
   so refusing messy input cannot pass (see :func:`failpath.check.summarise.over_refusal`).
8. ``no_escapes``: no guarded call raised (over the whole run).
9. ``hostile_answers_stable``: no hostile input changed an answer while the outcome stayed Answered
   (see :func:`hostile_flips`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from failpath.check.gate import too_few_cases
from failpath.check.result import Criterion, FamilyBound, GroupFigures, OverRefusal, StateCoverage, Verdict
from failpath.core import STATES

__all__ = [
    "state_coverage", "coverage_from_counts", "hostile_flips", "silent_failure_criterion", "over_refusal_criterion",
    "decide",
]


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


def _family_figure(f: FamilyBound) -> str:
    name = f.family if f.family != "mix" else "mix (" + ", ".join(f"{k} {v:g}" for k, v in f.weights.items()) + ")"
    if f.upper is None:
        return f"{name}: no evaluated request (budget {_pct(f.budget)})"
    return f"{name} {_pct(f.rate)} ≤ {_pct(f.upper)} (budget {_pct(f.budget)})"


def silent_failure_criterion(families: Sequence[FamilyBound]) -> Criterion:
    """``silent_failure_bound``: every family (and the declared mix) within its budget; the figure names the worst."""
    if not families:
        return Criterion(
            name="silent_failure_bound", passed=False, figure="no request was evaluated",
            detail="no family had an evaluated request, so nothing bounds the silent-failure rate",
        )
    failed = [f for f in families if not f.passed]
    worst = failed[0] if failed else max(families, key=lambda f: (f.upper or 0.0) / f.budget)
    level = f"{100 * families[0].confidence:g}%" if all(f.family != "mix" for f in families) else "1 − delta"
    parts = []
    for f in families:
        bound = "no request" if f.upper is None else f"{_pct(f.rate)} ≤ {_pct(f.upper)} vs {_pct(f.budget)}"
        note = too_few_cases(f)
        parts.append(f"{f.family} {'PASS' if f.passed else 'FAIL'} {bound} ({f.silent_failures}/{f.n}, {f.n_cases} cases)"
                     + (f": {note}" if note else ""))
    return Criterion(
        name="silent_failure_bound",
        passed=not failed,
        figure=f"{'worst' if not failed else 'over budget'}: {_family_figure(worst)}, bounds at {level} over cases",
        detail="; ".join(parts),
    )


def over_refusal_criterion(o: OverRefusal | None) -> Criterion:
    """``over_refusal``: the share of realistic raw-right requests the policy refused, bounded over cases, within budget.

    The detail names the perturbations refused most and the deciding state responsible for each.
    """
    if o is None:
        return Criterion(
            name="over_refusal", passed=True, figure="not measured",
            detail="no realistic request the raw system answered right was evaluated",
        )
    worst = sorted((g for g in o.groups if g.perturbation is not None and g.refused), key=lambda g: (-g.rate, g.perturbation))
    notes = []
    for g in worst[:3]:
        state, _ = max(g.by_state.items(), key=lambda kv: (kv[1], kv[0]))
        notes.append(f"{state} refused {100 * g.rate:.0f}% of `{g.perturbation}` variants the model gets right ({g.refused}/{g.raw_right})")
    return Criterion(
        name="over_refusal",
        passed=o.passed,
        figure=f"{_pct(o.rate)} of raw-right realistic requests refused, ≤ {_pct(o.upper)} at {100 * o.confidence:g}% (budget {_pct(o.budget)})",
        detail=("; ".join(notes) if notes else "the policy refused no realistic request the model gets right")
        + f" ({o.refused} of {o.n} requests, {o.n_cases} cases)",
    )


def decide(
    *,
    states: Sequence[StateCoverage],
    families: Sequence[FamilyBound],
    over_refusal: OverRefusal | None,
    clean: GroupFigures,
    escapes: int,
    n_rows: int,
    flips: int,
    n_hostile_answered: int,
    coverage_floor: float,
    delta: float,
    families_run: Criterion | None = None,
    severe: Criterion | None = None,
) -> Verdict:
    """The verdict from the figures of a run (see the module docstring for the criteria).

    ``families_run`` and ``severe`` are the criteria of :mod:`failpath.check.gate`, made by the caller.
    """
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
        prefix = "handled but never exercised: "
        why = {s.state: s.detail[len(prefix):] for s in handled if s.fired == 0 and s.detail.startswith(prefix)}
        problems.append("never exercised: " + ", ".join(f"{n} ({why[n]})" if n in why else n for n in never))
    if strayed:
        problems.append("did not end in the declared action: " + ", ".join(strayed))
    c2 = Criterion(
        name="states_exercised",
        passed=bool(handled) and not problems,
        figure=f"{exercised_ok}/{len(handled)} handled states exercised",
        detail="; ".join(problems) if problems else ("no state is handled" if not handled else "every handled state was exercised and took its action"),
    )
    c3 = silent_failure_criterion(families)
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
    gated = tuple(c for c in (families_run,) if c is not None)
    severe_part = tuple(c for c in (severe,) if c is not None)
    reasons = (c1, c2, *gated, c3, *severe_part, c4, over_refusal_criterion(over_refusal), c5, c6)
    return Verdict(ship=all(c.passed for c in reasons), reasons=reasons)
