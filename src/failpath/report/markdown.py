"""The Markdown summary of a check: the verdict, the criteria table, the suites, the figures per case tag
and the worst cases.

Sized for a CI step summary (``$GITHUB_STEP_SUMMARY``) or a pull-request comment: a few tables, the
worst cases cut to one line each, far below the 65,536 characters a GitHub comment may hold.
Inputs and outputs are shown as text: Markdown punctuation is escaped with a backslash, ``<``, ``>``
and ``&`` as entities, invisible and control characters as escapes (``\\u200b``), so nothing a chaos
input carries is rendered as a link, an image, markup or a table cell of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from failpath.report import inputs
from failpath.report.json_report import check_document

__all__ = ["render", "cell", "WORST_CASES_SHOWN"]

#: How many worst cases the summary lists.
WORST_CASES_SHOWN = 5

_VALUE_CHARS = 80
_SPECIAL = re.compile(r"([\\`*_\[\]|~!])")


def cell(value: Any, limit: int = _VALUE_CHARS) -> str:
    """``value`` as inert Markdown text for one table cell: one line, cut to ``limit`` characters."""
    from failpath.report.terminal import visible

    text = visible(value, limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", text)


def _pct(x: Any, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * float(x):.{digits}f}%"


def _pts(x: Any) -> str:
    return "—" if x is None else f"{100 * float(x):+.1f}"


def _criteria(doc: Mapping[str, Any]) -> list[str]:
    lines = ["| | criterion | figure | detail |", "|---|---|---|---|"]
    for criterion in (doc.get("verdict") or {}).get("reasons") or ():
        mark = "✅" if criterion.get("passed") else "❌"
        lines.append(
            f"| {mark} | {cell(criterion.get('name'), 60)} | {cell(criterion.get('figure') or '', 160)} "
            f"| {cell(criterion.get('detail') or '', 240)} |"
        )
    return lines


def _suites(doc: Mapping[str, Any]) -> list[str]:
    lines = [
        "| suite | requests | clean → chaos accuracy | gap, points [95% CI] | silent failures with policy (≤ bound) | without policy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    groups = [g for g in doc.get("groups") or () if g.get("perturbation") is None and g.get("suite") != "chaos"]
    for g in [*groups, doc.get("clean") or {}]:
        if not g.get("n"):
            continue
        with_policy, without = g.get("with_policy") or {}, g.get("without_policy") or {}
        if g.get("suite") == "clean":
            accuracy, gap = _pct(g.get("accuracy")), "—"
        else:
            accuracy = f"{_pct(g.get('clean_accuracy'))} → {_pct(g.get('accuracy'))}"
            gap = f"{_pts(g.get('gap'))} [{_pts(g.get('gap_low'))}, {_pts(g.get('gap_high'))}]"
        lines.append(
            f"| {cell(g.get('suite'), 40)} | {int(g.get('n') or 0):,} | {accuracy} | {gap} "
            f"| {_pct(with_policy.get('silent_failure_rate'), 2)} (≤ {_pct(with_policy.get('silent_failure_upper'), 2)}) "
            f"| {_pct(without.get('silent_failure_rate'), 2)} |"
        )
    return lines


def _tags(doc: Mapping[str, Any]) -> list[str]:
    """Figures per case tag: silent failures per family and over-refusal, rate ≤ bound over the tag's cases."""
    from failpath.report.tag_table import tag_table

    table = tag_table(doc)
    if table is None:
        return []
    families = " | ".join(table.families)
    lines = ["", "### Per tag", "",
             f"Silent failures per family and over-refusal, rate ≤ bound at {table.level} over the tag's cases "
             "(evaluation half; ❌ over the run's budget; not criteria of the verdict).", "",
             f"| tag | cases | requests | silent failures | {families} | over-refusal |",
             "|---|---:|---:|---:|" + "---:|" * len(table.families) + "---:|"]
    for row in table.rows:
        cells = " | ".join(("❌ " if c.over else "") + c.text for c in (*row.families, row.over_refusal))
        lines.append(f"| {cell(row.tag, 60)} | {row.n_cases:,} | {row.n:,} | {row.silent_failures:,} | {cells} |")
    return lines


def _worst(doc: Mapping[str, Any], limit: int) -> list[str]:
    """The first ``limit`` worst cases, under the heading of their cause (see :mod:`failpath.report.worst`)."""
    from failpath.report.worst import edits_text, groups, shown, shown_input

    every = list(doc.get("worst_cases") or ())
    worst = every[:limit]
    if not worst:
        return []
    lines = ["", f"### Worst cases ({len(worst)} of {len(every)})"]
    number = 0
    for _, title, members in groups(worst):
        lines += ["", f"**{cell(title, 120)}**", "",
                  "| # | where | input | edits | expected | output | confidence |", "|---:|---|---|---|---|---|---:|"]
        for case in members:
            number += 1
            confidence = case.get("confidence")
            lines.append(
                f"| {number} | {cell(case.get('suite'), 30)} / {cell(case.get('perturbation'), 30)}, case {cell(case.get('case_id'), 40)} "
                f"| {cell(shown_input(case))} | {cell(edits_text(case.get('edits')) or '—')} | {cell(case.get('expected'))} "
                f"| {cell(shown(case.get('output')))} | {'—' if confidence is None else f'{float(confidence):.2f}'} |"
            )
    return lines


def _worst_thing(doc: Mapping[str, Any]) -> list[str]:
    """The section answering "what is the worst thing this can do, and have we handled it?"."""
    from failpath.report.terminal import visible
    from failpath.report.worst_thing import TITLE, worst_thing

    section = worst_thing(doc, visible)
    if section is None:
        return []
    lines = ["", f"### {TITLE}", "", f"**{cell(section.headline, 400)}**", "", cell(section.graded, 400), "",
             f"Severe silent failures per family: {cell(section.bounds, 600)}"]
    if section.with_policy:
        lines += ["", "With the policy (answered, wrong, most severe first):", ""]
        lines += [f"- {cell(line, 400)}" for line in section.with_policy]
    lines += ["", cell(section.raw, 400)]
    if section.without_policy:
        lines += [""] + [f"- {cell(line, 400)}" for line in section.without_policy]
    return lines


def render(result: Any, *, worst_cases: int = WORST_CASES_SHOWN, comparison: str | None = None) -> str:
    """The Markdown summary of a check result (``CheckResult``, its document or a report document).

    ``comparison``: Markdown to append (the comparison with a baseline run, from ``failpath compare``).
    """
    doc = check_document(result)
    verdict = doc.get("verdict") or {}
    ship = bool(verdict.get("ship"))
    title = cell(doc.get("name") or doc.get("system") or "", 80)
    chaos = (doc.get("chaos") or {})
    with_policy, without = chaos.get("with_policy") or {}, chaos.get("without_policy") or {}
    lines = [
        f"## {'✅ READY TO SHIP' if ship else '❌ READY TO DEMO'} · failpath check{' · ' + title if title else ''}",
        "",
        f"Run `{doc.get('run_id', '?')}` · policy {cell(doc.get('policy') or '—', 60)} · "
        f"{int(doc.get('n_rows') or 0):,} requests over {int(doc.get('n_cases') or 0):,} cases",
        "",
        *_criteria(doc),
    ]
    if chaos.get("n"):
        lines += [
            "",
            f"Under chaos, silent failures: **{_pct(with_policy.get('silent_failure_rate'), 2)}** with the policy "
            f"(≤ {_pct(with_policy.get('silent_failure_upper'), 2)} at 95%), "
            f"{_pct(without.get('silent_failure_rate'), 2)} without it.",
        ]
    thresholds = doc.get("thresholds") or {}
    if thresholds and not thresholds.get("certified"):
        lines += ["", f"> **{cell(thresholds.get('message') or 'NOTHING CERTIFIED', 400)}**"]
    lines += _worst_thing(doc)
    lines += ["", "### Suites", "", *_suites(doc)]
    lines += inputs.markdown_lines(doc, cell)  # input detectors, variants per perturbation
    lines += _tags(doc)
    lines += _worst(doc, worst_cases)
    if comparison:
        lines += ["", comparison.strip()]
    return "\n".join(lines) + "\n"
