"""The JSON report: the check's result plus every figure the reports draw, as one versioned document.

``build_report(result)`` returns ``{"schema": "failpath.report/1", "check": <failpath.check/2>, ...}``:
the check result untouched (its ``curves`` hold the risk–coverage points, the oracle's, and the
reliability bins), and beside it the figures the reports derive from it: an exact interval for every
accuracy, and the outcome mix of each group with and without the policy. The HTML report is
rendered from this document; ``docs/report-schema.md`` describes every field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from failpath.core import OUTCOME_KINDS, FailpathError

__all__ = [
    "REPORT_SCHEMA",
    "CHECK_SCHEMA",
    "ReportError",
    "build_report",
    "check_document",
    "render",
    "write",
]

REPORT_SCHEMA = "failpath.report/1"
CHECK_SCHEMA = "failpath.check/2"
#: Check documents a report is built from: this version and the earlier ones ``CheckResult.from_dict`` reads.
_READABLE_CHECK = ("failpath.check/1", CHECK_SCHEMA)
_MIX_KINDS = ("right", "silent_failure", "clarify", "escalated", "abstained", "defaulted", "error")


class ReportError(FailpathError):
    """A document cannot be turned into a report: the message names what is wrong and what to do."""


def check_document(result: Any) -> dict[str, Any]:
    """The ``failpath.check/2`` document of ``result`` (a ``CheckResult``, its dict, or a report document)."""
    if hasattr(result, "to_dict") and callable(result.to_dict):
        result = result.to_dict()
    if not isinstance(result, Mapping):
        raise ReportError(f"expected a check result or its JSON document, got {type(result).__name__}")
    if result.get("schema") == REPORT_SCHEMA:
        result = result.get("check") or {}
    schema = result.get("schema")
    if schema not in _READABLE_CHECK:
        raise ReportError(
            f"not a check result: schema is {schema!r}, expected {CHECK_SCHEMA!r} "
            "(give the output of `failpath report --format json` or CheckResult.to_dict())"
        )
    return dict(result)


def build_report(result: Any) -> dict[str, Any]:
    """The ``failpath.report/1`` document for a check result (a report document is returned as it is)."""
    if isinstance(result, Mapping) and result.get("schema") == REPORT_SCHEMA:
        check_document(result)
        return dict(result)
    check = check_document(result)
    return {
        "schema": REPORT_SCHEMA,
        "check": check,
        "accuracy": _accuracy_rows(check),
        "outcome_mix": _outcome_mix(check),
    }


def render(result: Any, *, indent: int | None = 2) -> str:
    """The JSON text of ``build_report(result)``."""
    return json.dumps(build_report(result), indent=indent, ensure_ascii=False, allow_nan=False)


def write(result: Any, path: str | Path) -> Path:
    """Write the JSON report to ``path`` (parent folders created) and return the path."""
    from failpath.report.files import write_atomic

    return write_atomic(path, render(result) + "\n")


# --------------------------------------------------------------------------- derived figures


def _group_label(group: Mapping[str, Any]) -> str:
    if group.get("perturbation"):
        return f"{group['suite']}: {group['perturbation']}"
    return f"{group['suite']} (all)"


def _accuracy_rows(check: Mapping[str, Any]) -> list[dict[str, Any]]:
    from failpath.stats import clopper_pearson

    delta = float((check.get("budgets") or {}).get("delta") or 0.05)  # the check's level, 1 - delta
    rows = []
    groups = [dict(check["clean"], _label="clean")] + [dict(g, _label=_group_label(g)) for g in check.get("groups", ())]
    for group in groups:
        accuracy, n = group.get("accuracy"), int(group.get("n") or 0)
        if accuracy is None or n == 0:
            continue
        interval = clopper_pearson(round(accuracy * n), n, alpha=delta)
        rows.append({
            "label": group["_label"],
            "suite": group.get("suite"),
            "family": group.get("family"),
            "perturbation": group.get("perturbation"),
            "n": n,
            "accuracy": accuracy,
            "low": _finite(interval.low),
            "high": _finite(interval.high),
        })
    return rows


def _mix(figures: Mapping[str, Any]) -> dict[str, int]:
    outcomes = dict(figures.get("outcomes") or {})
    answered = int(figures.get("answered") or 0)
    silent = int(figures.get("silent_failures") or 0)
    counts = {"right": answered - silent, "silent_failure": silent}
    for kind in OUTCOME_KINDS[1:]:
        counts[kind] = int(outcomes.get(kind, 0))
    counts["error"] = int(figures.get("escaped") or 0)
    return {k: counts.get(k, 0) for k in _MIX_KINDS}


def _outcome_mix(check: Mapping[str, Any]) -> list[dict[str, Any]]:
    groups = [("chaos", check.get("chaos")), ("clean", check.get("clean"))]
    groups += [(g.get("suite"), g) for g in check.get("groups") or () if g.get("perturbation") is None]
    rows = []
    for name, group in groups:
        if not group or not group.get("n"):
            continue
        for policy in ("without_policy", "with_policy"):
            figures = group[policy]
            rows.append({
                "group": name,
                "policy": policy == "with_policy",
                "label": f"{name}, {'with' if policy == 'with_policy' else 'without'} policy",
                "n": int(figures.get("n") or 0),
                "counts": _mix(figures),
                "silent_failure_rate": figures.get("silent_failure_rate"),
                "silent_failure_upper": figures.get("silent_failure_upper"),
            })
    return rows


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None

