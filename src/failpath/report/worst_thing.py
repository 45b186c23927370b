"""The answer every report gives to "what is the worst thing this can do, and have we handled it?".

Made from the ``severity`` block of a check result document (:class:`failpath.check.result.SeverityReport`)
as plain sentences, so the terminal, HTML, Markdown and JUnit reports say the same thing: how wrong
answers were graded, the most severe silent failures that got through the policy (or that none did, and
the bound that shows how rare they are), and the most severe wrong answers of the raw system with what
the policy did with each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["WorstThing", "worst_thing", "TITLE"]

#: The heading of the section in every report.
TITLE = "The worst thing it can do"

_HANDLED_WORDS = {
    "answered": "let it through (answered)",
    "clarify": "asked the user to clarify",
    "escalated": "escalated it to a person",
    "abstained": "abstained",
    "defaulted": "gave its safe default",
    "escaped": "raised (escaped the guard)",
}


@dataclass(frozen=True)
class WorstThing:
    """The section's sentences: ``headline`` answers the question, ``graded`` says how severity was graded,
    ``bounds`` the severe rate's bound per family, ``with_policy`` / ``without_policy`` one line per case."""

    passed: bool
    headline: str
    graded: str
    bounds: str
    raw: str
    with_policy: tuple[str, ...]
    without_policy: tuple[str, ...]


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.2f}%"


Show = Callable[[Any, int], str]


def _too_few(families: list[Mapping[str, Any]]) -> str:
    """The families that failed with no severe silent failure at all: too few cases, and how many they need."""
    from failpath import stats

    parts = []
    for f in families:
        if f.get("passed") or f.get("silent_failures") or f.get("family") == "mix" or f.get("upper") is None:
            continue
        needed = stats.cases_needed(float(f.get("budget") or 1.0), float(f.get("confidence") or 0.95))
        parts.append(f"{f.get('family')} ({f.get('n_cases')} cases of the {needed} needed)")
    return ", ".join(parts)


def _case_line(case: Mapping[str, Any], show: Show, *, raw: bool) -> str:
    graded = "" if case.get("graded", True) else " (ungraded: counted as severe)"
    confidence = case.get("confidence")
    line = (
        f"severity {float(case.get('severity') or 0):g}{graded} · {show(case.get('family'), 20)}/{show(case.get('perturbation'), 40)} "
        f"case {show(case.get('case_id'), 40)}: {show(case.get('input'), 80)} → {show(case.get('output'), 80)} "
        f"(expected {show(case.get('expected'), 80)}"
        + ("" if confidence is None else f", confidence {float(confidence):.2f}") + ")"
    )
    if raw:
        outcome = str(case.get("outcome") or "")
        line += f"; the policy {_HANDLED_WORDS.get(outcome, outcome)}"
    return line


def worst_thing(doc: Mapping[str, Any], show: Show, limit: int = 3) -> WorstThing | None:
    """The section for a check result document (None for a result made before severity was measured).

    ``show(value, limit)`` turns an input, output or expected value into one line of inert text
    (:func:`failpath.report.terminal.visible`): chaos inputs hold control and bidirectional characters.
    """
    sev = doc.get("severity")
    if not sev:
        return None
    families = list(sev.get("families") or ())
    budget = sev.get("budget")
    level = f"{100 * float(families[0].get('confidence') or 0.95):g}%" if families else "95%"
    passed = bool(families) and all(f.get("passed") for f in families)
    worst_upper = max((f.get("upper") or 0.0 for f in families), default=None)
    n_with = int(sev.get("severe_with_policy") or 0)
    if n_with == 0:
        headline = (
            f"No severe silent failure got through the policy on the evaluation half; the severe rate is at most "
            f"{_pct(worst_upper)} in every family at {level} (budget {_pct(budget)})"
        )
    else:
        over = [str(f.get("family")) for f in families if not f.get("passed") and f.get("silent_failures")]
        headline = (
            f"{n_with} severe silent failure{'s' if n_with != 1 else ''} got through the policy on the evaluation half"
            + (f"; over the severe budget of {_pct(budget)}: {', '.join(over)}" if over
               else f", within the severe budget of {_pct(budget)} in every family at {level}" if passed else "")
        )
    short = _too_few(families)
    if short:
        headline += f"; too few cases to show the budget: {short}"
    graded_by = sev.get("graded_by")
    graded = (
        f"Severity graded by {graded_by}; severe means at least {float(sev.get('cut') or 0):g}."
        if graded_by
        else "No severity is configured, so every wrong answer counts as severe (severity 1); give the check a "
        "severity function or per-field / per-label weights to tell a wrong ZIP code from a harmless slip."
    )
    bounds = "; ".join(
        f"{f.get('family')} {_pct(f.get('rate'))} ≤ {_pct(f.get('upper'))} ({'PASS' if f.get('passed') else 'FAIL'})"
        for f in families
    ) or "no request was evaluated"
    n_raw, handled = int(sev.get("severe_without_policy") or 0), int(sev.get("severe_handled") or 0)
    raw = (
        "Without the policy the system gave no severe wrong answer." if n_raw == 0
        else f"Without the policy the system gave {n_raw} severe wrong answer{'s' if n_raw != 1 else ''}; "
        f"the policy handled {handled} of them ({_pct(handled / n_raw)})."
    )
    return WorstThing(
        passed=passed,
        headline=headline,
        graded=graded,
        bounds=bounds,
        raw=raw,
        with_policy=tuple(_case_line(c, show, raw=False) for c in list(sev.get("worst") or ())[:limit]),
        without_policy=tuple(_case_line(c, show, raw=True) for c in list(sev.get("worst_without_policy") or ())[:limit]),
    )
