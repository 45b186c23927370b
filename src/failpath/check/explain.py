"""The explain stage of a check: the worst silent failures, each searched back to a small reproduction.

:func:`worst_cases` takes the candidates the tally kept (one per case: its most confident silent
failure) in two groups: first the failures a perturbation caused (the raw system answered the clean
input right, the variant was answered wrong), ranked by confidence, each searched from the clean case
with ``chaos.search`` for the smallest input the guarded system answers wrongly; then, apart, cases
already wrong on their clean input (no perturbation needed, so no search).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from failpath.check.result import Reproduction, WorstCase
from failpath.check.runner import is_async_system
from failpath.core import Case

__all__ = ["worst_cases", "choose_worst"]


def choose_worst(silent: Sequence[Mapping[str, Any]], k: int) -> list[Mapping[str, Any]]:
    """At most ``k`` of ``silent`` (ranked worst first) for each cause, one per case, in the order of ``silent``.

    A row without a ``cause`` counts as caused by its perturbation.
    """
    chosen: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    taken: dict[str, int] = {}
    for r in silent:
        cause = r.get("cause") or "perturbation"
        if r["case_id"] in seen or taken.get(cause, 0) >= k:
            continue
        seen.add(r["case_id"])
        taken[cause] = taken.get(cause, 0) + 1
        chosen.append(r)
    return chosen


def worst_cases(
    silent: Sequence[Mapping[str, Any]],
    *,
    k: int,
    seconds: float,
    policy: Any,
    system: Any,
    judge: Any,
    cases: Mapping[str, Case],
    seed: int,
    scratch: Any,
    suites: Mapping[str, Any],
) -> list[WorstCase]:
    """The worst silent failures of the evaluation half: those a perturbation caused first, shrunk by
    ``chaos.search`` (``seconds`` shared among them), then the cases already wrong on clean input.

    ``silent`` holds the candidate rows, worst first (see :func:`failpath.check.tally.worst_candidates`).
    """
    chosen = choose_worst(silent, k)
    if not chosen:
        return []
    from failpath.chaos.reveal import reveal  # the chaos package loads only when there is a worst case

    searched = [r for r in chosen if (r.get("cause") or "perturbation") == "perturbation"]
    result = []
    budget_each = seconds / max(1, len(searched))
    for r in chosen:
        case = cases.get(r["case_id"])
        reproduction = None
        cause = r.get("cause") or "perturbation"
        if case is not None and seconds > 0 and cause == "perturbation":
            reproduction = _reproduce(case, r, policy=policy, system=system, judge=judge, seed=seed,
                                      seconds=budget_each, scratch=scratch, suites=suites)
        text = r.get("input")
        result.append(
            WorstCase(
                key=r["key"],
                suite=r["suite"],
                perturbation=r["perturbation"],
                case_id=r["case_id"],
                input=text,
                expected=r.get("expected"),
                output=r.get("value"),
                confidence=r.get("confidence"),
                edits=tuple(r.get("edits") or ()),
                reproduction=reproduction,
                cause=cause,
                input_visible=reveal(text) if isinstance(text, str) else None,
            )
        )
    return result


def _reproduce(
    case: Case,
    row: Mapping[str, Any],
    *,
    policy: Any,
    system: Any,
    judge: Any,
    seed: int,
    seconds: float,
    scratch: Any,
    suites: Mapping[str, Any],
) -> Reproduction:
    """Search from the clean case for the smallest input the guarded system answers wrongly.

    The search first composes the worst case's own perturbation alone (the shortest way back to this
    failure), then together with the realistic perturbations that keep the expected answer; a fault
    case searches the system wrapped in its fault. The time budget covers both searches.
    """
    from failpath import chaos
    from failpath.chaos.finder import DEFAULT_SEARCH_PERTURBATIONS

    raw_system = system
    suite = suites.get(row["suite"])
    own = next((p for p in suite.perturbations if p.name == row["perturbation"]), None) if suite else None
    # First the case's own perturbation alone (the shortest path back to this failure), then the
    # realistic perturbations that keep the answer, together with it.
    attempts: list[list[Any]] = [list(DEFAULT_SEARCH_PERTURBATIONS)]
    if own is not None and isinstance(own, chaos.Fault):
        raw_system = own.wrap_variant(system, seed, row["case_id"], row.get("variant") or 0)
    elif own is not None:
        attempts = [[own], [own, *(p for p in DEFAULT_SEARCH_PERTURBATIONS if p.name != own.name)]]
    guarded = policy.wrap(raw_system).with_store(scratch)
    silent: Any = _SilentFailureAsync(guarded) if is_async_system(raw_system) else _SilentFailure(guarded)
    start = time.perf_counter()
    found = None
    n_tried = 0
    for perturbations in attempts:
        remaining = seconds - (time.perf_counter() - start)
        if remaining <= 0:
            break
        try:
            found = chaos.search(
                silent, case, _AnsweredWrong(judge), perturbations=perturbations, seed=seed, timeout=remaining,
                max_examples=100,
            )
        except Exception as exc:  # a search that breaks must not lose the run
            return Reproduction(found=False, note=f"search failed: {type(exc).__name__}: {exc}",
                                seconds=round(time.perf_counter() - start, 3))
        n_tried += found.n_tried
        if found.found:
            break
    elapsed = round(time.perf_counter() - start, 3)
    if found is None or not found.found:
        return Reproduction(found=False, n_tried=n_tried, seconds=elapsed,
                            note="no failing input found from the clean case within the time budget")
    return Reproduction(
        found=True,
        input=found.input,
        expected=found.expected,
        edits=tuple(e.to_dict() for e in found.edits),
        output=found.output,
        confidence=found.confidence,
        n_tried=n_tried,
        seconds=elapsed,
        perturbation="+".join(([own.name] if own is not None and raw_system is not system else []) + [n for n, _ in found.steps]) or "clean",
        minimal=found.minimal,
    )


class _SilentFailure:
    """A guarded system seen as a plain system for the search: answers pass through, handled outcomes become a marker."""

    def __init__(self, guarded: Any):
        self.guarded = guarded

    def __call__(self, value: Any) -> Any:
        from failpath.core import Answered, Prediction

        outcome = self.guarded(value)
        if isinstance(outcome, Answered):
            return Prediction(outcome.value, outcome.confidence)
        return _HANDLED


class _SilentFailureAsync(_SilentFailure):
    """The async twin of :class:`_SilentFailure`."""

    async def __call__(self, value: Any) -> Any:  # type: ignore[override]
        from failpath.core import Answered, Prediction

        outcome = await self.guarded(value)
        if isinstance(outcome, Answered):
            return Prediction(outcome.value, outcome.confidence)
        return _HANDLED


class _Handled:
    def __repr__(self) -> str:
        return "<handled>"


_HANDLED = _Handled()


class _AnsweredWrong:
    """The search's judge: a handled outcome is fine; an answer must be right."""

    def __init__(self, judge: Any):
        self.judge = judge

    def __call__(self, output: Any, expected: Any) -> bool:
        if output is _HANDLED:
            return True
        return bool(self.judge(output, expected))
