"""The severe silent-failure figures of a check: "what is the worst thing this can do, and have we handled it?".

From the tallied rows (:class:`failpath.check.tally.Tallied`): per family (or on the declared traffic
mix), the mean over cases of each case's share of severe silent failures (answered, wrong, severity at
least :data:`failpath.check.severity.SEVERE_CUT`), bounded with the case as the unit exactly as the
silent-failure criterion bounds all silent failures, against the ``severe_silent_failure`` budget; and
the most severe wrong answers with and without the policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from failpath.check.plan import BUDGET_FAMILIES, DEFAULT_SEVERE_SILENT_FAILURE
from failpath.check.result import SevereCase, SeverityReport
from failpath.check.severity import SEVERE_CUT
from failpath.check.summarise import family_bounds
from failpath.check.tally import ANSWERED, OUTCOMES, Tallied

__all__ = ["family_bounds", "severity_report"]

#: The outcome codes of a handled request: the policy answered with something other than the model's answer.
_HANDLED = np.asarray([OUTCOMES.index(k) for k in ("clarify", "escalated", "abstained", "defaulted")], dtype=np.int8)


def severity_report(t: Tallied, budgets: Mapping[str, Any]) -> SeverityReport:
    """The severe silent-failure figures of a run (``budgets`` as stored in the run's result)."""
    c = t.columns
    delta = float(budgets["delta"])
    budget = float(budgets.get("severe_silent_failure", DEFAULT_SEVERE_SILENT_FAILURE))
    evaluation = c["evaluation"]
    severe = evaluation & (c["outcome"] == ANSWERED) & ~c["correct"] & (c["severity"] >= SEVERE_CUT)
    severe_raw = evaluation & c["raw_answered"] & ~c["raw_correct"] & (c["raw_severity"] >= SEVERE_CUT)
    n_cases = len(t.case_ids)
    counts = {}
    for family in BUDGET_FAMILIES:
        in_family = evaluation & t.judged & (c["family"] == t.family_code(family))  # as Tallied.case_counts
        counts[family] = (
            np.bincount(c["case"][in_family], minlength=n_cases),
            np.bincount(c["case"][in_family & severe], minlength=n_cases),
        )
    graded_by = budgets.get("severity")
    return SeverityReport(
        graded_by=graded_by,
        cut=SEVERE_CUT,
        budget=budget,
        families=family_bounds(counts, {f: budget for f in BUDGET_FAMILIES}, budgets.get("mix") or {}, delta),
        n=int(np.count_nonzero(evaluation)),
        severe_with_policy=int(np.count_nonzero(severe)),
        severe_without_policy=int(np.count_nonzero(severe_raw)),
        severe_handled=int(np.count_nonzero(severe_raw & np.isin(c["outcome"], _HANDLED))),
        worst=tuple(_case(row, "with", graded_by is not None) for row in t.severe),
        worst_without_policy=tuple(_case(row, "without", graded_by is not None) for row in t.severe_raw),
    )


def _case(row: Mapping[str, Any], policy: str, graded: bool) -> SevereCase:
    with_policy = policy == "with"
    value = row.get("severity" if with_policy else "raw_severity")
    confidence = row.get("confidence" if with_policy else "raw_confidence")
    return SevereCase(
        key=str(row["key"]),
        family=str(row.get("family") or ""),
        suite=str(row.get("suite") or ""),
        perturbation=str(row.get("perturbation") or ""),
        case_id=str(row.get("case_id") or ""),
        input=row.get("input"),
        expected=row.get("expected"),
        output=row.get("value" if with_policy else "raw_output"),
        severity=float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 1.0,
        confidence=float(confidence) if isinstance(confidence, (int, float)) and not isinstance(confidence, bool) else None,
        policy=policy,
        outcome=str(row.get("outcome") if row.get("outcome") in OUTCOMES else "escaped"),
        graded=graded and isinstance(value, (int, float)) and not row.get("severity_error"),
    )
