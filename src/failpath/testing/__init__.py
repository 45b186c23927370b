"""Assertions for a check inside a test suite, and the pytest plugin that runs a check once per session.

``assert_ready_to_ship(result)`` passes when the verdict is READY TO SHIP; otherwise it raises
:class:`NotReadyToShip` (an ``AssertionError``) whose message lists each failed criterion with its
figure and detail, then the first failing cases (suite, perturbation, input, expected, output,
confidence) — readable in a CI log, unlike ``assert result.ship``'s ``assert False``.

The pytest plugin (:mod:`failpath.testing.pytest_plugin`, registered when failpath is installed)
adds the session fixture ``failpath_check``: the ``CheckResult`` of the project's ``failpath.toml``,
run once however many tests use it.

Like the ``failpath`` command, this is a thin layer over :mod:`failpath.check` and :mod:`failpath.report`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["NotReadyToShip", "assert_ready_to_ship", "failure_message", "FAILING_CASES_SHOWN"]

#: How many failing cases an assertion's message shows by default.
FAILING_CASES_SHOWN = 3

_VALUE_CHARS = 120


class NotReadyToShip(AssertionError):
    """A check's verdict is READY TO DEMO; ``result`` is the check's result, the message says why."""

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result


def _document(result: Any) -> dict[str, Any]:
    from failpath.report.json_report import check_document

    return check_document(result)


def failure_message(result: Any, *, cases: int = FAILING_CASES_SHOWN) -> str:
    """What is wrong with a check's result, for a test log: the verdict, each failed criterion with its
    figure and detail, and the first ``cases`` failing cases (the worst silent failures the check found)."""
    from failpath.report.terminal import visible

    doc = _document(result)
    verdict = doc.get("verdict") or {}
    label = "READY TO SHIP" if verdict.get("ship") else "READY TO DEMO"
    reasons = list(verdict.get("reasons") or ())
    failed = [r for r in reasons if not r.get("passed")]
    name = doc.get("name") or doc.get("system") or ""
    lines = [
        f"failpath check{' ' + repr(visible(name, 80)) if name else ''} is {label}: "
        f"{len(failed)} of {len(reasons)} criteria failed (run {doc.get('run_id', '?')}, "
        f"{int(doc.get('n_rows') or 0):,} requests over {int(doc.get('n_cases') or 0):,} cases)",
    ]
    for criterion in failed:
        lines.append(f"  ✗ {criterion.get('name')}: {visible(criterion.get('figure') or '', 300)}")
        if criterion.get("detail"):
            lines.append(f"      {visible(criterion['detail'], 600)}")
    lines += _failing_cases(list(doc.get("worst_cases") or ()), cases)
    thresholds = doc.get("thresholds") or {}
    if thresholds and not thresholds.get("certified"):
        lines.append(visible(thresholds.get("message") or "NOTHING CERTIFIED", 400))
    lines.append(f"rebuild the full report with: failpath report {doc.get('run_id', '')}".rstrip())
    return "\n".join(lines)


def _failing_cases(worst: list[Mapping[str, Any]], cases: int) -> list[str]:
    """The first ``cases`` worst cases, under the heading of their cause: those a perturbation caused first."""
    from failpath.report.worst import groups

    if not worst or cases <= 0:
        return []
    first = worst[:cases]
    lines = [f"first failing cases ({len(first)} of the {len(worst)} worst silent failures):"]
    for _, title, members in groups(first):
        lines.append(f"  {title}:")
        lines += [_case_line(case) for case in members]
    return lines


def _case_line(case: Mapping[str, Any]) -> str:
    from failpath.report.terminal import visible
    from failpath.report.worst import edits_text, shown, shown_input

    confidence = case.get("confidence")
    confidence_text = "" if confidence is None else f" (confidence {float(confidence):.2f})"
    edits = edits_text(case.get("edits"))
    return (
        f"  - {visible(case.get('suite'), 40)}/{visible(case.get('perturbation'), 40)}, case {visible(case.get('case_id'), 60)}: "
        f"input {visible(shown_input(case), _VALUE_CHARS)!r}\n"
        + (f"      edits {visible(edits, _VALUE_CHARS)}\n" if edits else "")
        + f"      expected {visible(case.get('expected'), _VALUE_CHARS)}\n"
        f"      answered {visible(shown(case.get('output')), _VALUE_CHARS)}{confidence_text}"
    )


def assert_ready_to_ship(result: Any, *, cases: int = FAILING_CASES_SHOWN) -> None:
    """Pass when ``result`` (a ``CheckResult`` or its JSON document) is READY TO SHIP; otherwise raise
    :class:`NotReadyToShip` with :func:`failure_message` as its message."""
    if bool((_document(result).get("verdict") or {}).get("ship")):
        return
    raise NotReadyToShip(failure_message(result, cases=cases), result)
