"""The JSON report: the check's result plus every figure the reports draw, as one versioned document.

``build_report(result)`` returns ``{"schema": "failpath.report/1", "check": <failpath.check/1>, ...}``:
the check result untouched, and beside it the figures derived for the charts (accuracy intervals,
outcome mix, risk–coverage points and the oracle's, reliability bins). The HTML report is rendered
from this document; ``docs/report-schema.md`` describes every field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from failpath.core import OUTCOME_KINDS, FailpathError

__all__ = [
    "REPORT_SCHEMA",
    "CHECK_SCHEMA",
    "ReportError",
    "build_report",
    "check_document",
    "confidence_curves",
    "render",
    "write",
]

REPORT_SCHEMA = "failpath.report/1"
CHECK_SCHEMA = "failpath.check/1"
RELIABILITY_BINS = 15
_MIX_KINDS = ("right", "silent_failure", "clarify", "escalated", "abstained", "defaulted", "error")


class ReportError(FailpathError):
    """A document cannot be turned into a report: the message names what is wrong and what to do."""


def check_document(result: Any) -> dict[str, Any]:
    """The ``failpath.check/1`` document of ``result`` (a ``CheckResult``, its dict, or a report document)."""
    if hasattr(result, "to_dict") and callable(result.to_dict):
        result = result.to_dict()
    if not isinstance(result, Mapping):
        raise ReportError(f"expected a check result or its JSON document, got {type(result).__name__}")
    if result.get("schema") == REPORT_SCHEMA:
        result = result.get("check") or {}
    schema = result.get("schema")
    if schema != CHECK_SCHEMA:
        raise ReportError(
            f"not a check result: schema is {schema!r}, expected {CHECK_SCHEMA!r} "
            "(give the output of `failpath report --format json` or CheckResult.to_dict())"
        )
    return dict(result)


def build_report(result: Any, *, answers: Iterable[tuple[float, bool]] | None = None) -> dict[str, Any]:
    """The ``failpath.report/1`` document for a check result.

    ``answers`` are ``(confidence, correct)`` pairs of the raw system's answers the confidence charts are
    drawn from (the pooled chaos answers of the evaluation half). Without them, the curves come from the
    check document when it carries them; otherwise ``risk_coverage`` and ``reliability`` are ``null``.
    A report document passed in is returned as it is.
    """
    if isinstance(result, Mapping) and result.get("schema") == REPORT_SCHEMA:
        check_document(result)
        return dict(result)
    check = check_document(result)
    curves = confidence_curves(answers) if answers is not None else _curves_from_check(check)
    return {
        "schema": REPORT_SCHEMA,
        "check": check,
        "accuracy": _accuracy_rows(check),
        "outcome_mix": _outcome_mix(check),
        "risk_coverage": curves["risk_coverage"],
        "reliability": curves["reliability"],
    }


def render(result: Any, *, indent: int | None = 2, **options: Any) -> str:
    """The JSON text of ``build_report(result, **options)``."""
    return json.dumps(build_report(result, **options), indent=indent, ensure_ascii=False, allow_nan=False)


def write(result: Any, path: str | Path, **options: Any) -> Path:
    """Write the JSON report to ``path`` (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result, **options) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- derived figures


def _group_label(group: Mapping[str, Any]) -> str:
    if group.get("perturbation"):
        return f"{group['suite']}: {group['perturbation']}"
    return f"{group['suite']} (all)"


def _accuracy_rows(check: Mapping[str, Any]) -> list[dict[str, Any]]:
    from failpath.stats.intervals import clopper_pearson

    rows = []
    groups = [dict(check["clean"], _label="clean")] + [dict(g, _label=_group_label(g)) for g in check.get("groups", ())]
    for group in groups:
        accuracy, n = group.get("accuracy"), int(group.get("n") or 0)
        if accuracy is None or n == 0:
            continue
        interval = clopper_pearson(round(accuracy * n), n)
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
    rows = []
    for name, group in (("clean", check.get("clean")), ("chaos", check.get("chaos"))):
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


def confidence_curves(answers: Iterable[tuple[float, bool]]) -> dict[str, Any]:
    """Risk–coverage points (system and oracle) and reliability bins from ``(confidence, correct)`` pairs."""
    import numpy as np

    pairs = [(float(c), bool(r)) for c, r in answers if c is not None and math.isfinite(float(c))]
    if not pairs:
        return {"risk_coverage": None, "reliability": None}
    scores = np.clip(np.array([c for c, _ in pairs]), 0.0, 1.0)
    right = np.array([r for _, r in pairs], dtype=bool)
    return {"risk_coverage": _risk_coverage(scores, right), "reliability": _reliability(scores, right)}


def _risk_coverage(scores: Any, right: Any) -> dict[str, Any]:
    import numpy as np

    from failpath.stats.confidence import risk_coverage

    curve = risk_coverage(scores, right)
    n = int(right.size)
    # The oracle answers the right items first: its risk is zero until coverage reaches the accuracy.
    ordered = np.sort(right.astype(int))[::-1]
    answered = np.arange(1, n + 1)
    errors = np.cumsum(1 - ordered)
    return {
        "n": n,
        "thresholds": [round(float(t), 6) for t in curve.thresholds],
        "coverage": [round(float(c), 6) for c in curve.coverage],
        "selective_risk": [round(float(r), 6) for r in curve.selective_risk],
        "oracle": {
            "coverage": [round(float(c), 6) for c in answered / n],
            "selective_risk": [round(float(r), 6) for r in errors / answered],
        },
    }


def _reliability(scores: Any, right: Any) -> dict[str, Any]:
    import numpy as np

    edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
    # (lo, hi] bins, confidence 0 in the first bin: the convention of failpath.stats.ece.
    index = np.clip(np.digitize(scores, edges, right=True) - 1, 0, RELIABILITY_BINS - 1)
    bins = []
    for b in range(RELIABILITY_BINS):
        members = index == b
        count = int(members.sum())
        bins.append({
            "lo": round(float(edges[b]), 6),
            "hi": round(float(edges[b + 1]), 6),
            "count": count,
            "confidence": float(scores[members].mean()) if count else None,
            "accuracy": float(right[members].mean()) if count else None,
        })
    return {"n": int(right.size), "bins": bins}


def _curves_from_check(check: Mapping[str, Any]) -> dict[str, Any]:
    curves = check.get("curves")
    if isinstance(curves, Mapping):
        return {"risk_coverage": curves.get("risk_coverage"), "reliability": curves.get("reliability")}
    return {"risk_coverage": None, "reliability": None}


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None

