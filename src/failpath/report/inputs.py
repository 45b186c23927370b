"""The report's sections on inputs: what each input detector flags, and what each perturbation made.

Built from the check document's ``detectors`` and ``perturbation_counts`` (see
:mod:`failpath.check.inputs`), for the terminal (rich renderables) and Markdown; the HTML report has the
same sections in ``templates/inputs.html.j2``. A perturbation that made nothing for the whole dataset
is named in every one of them: a suite that silently tested less than it says is a defect of the report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["detector_rows", "detector_label", "fitted_sentence", "count_line", "terminal_sections", "markdown_lines"]


def detector_label(detector: Mapping[str, Any]) -> str:
    """How a detector is named in a report: its state and rule, ``anomalous_input (rule 3)``."""
    return f"{detector.get('state')} (rule {int(detector.get('rule') or 0) + 1})"


def _rate_text(rate: Mapping[str, Any] | None) -> str:
    if not rate or not rate.get("n"):
        return "—"
    return f"{100 * float(rate['rate']):.1f}% ({int(rate['flagged']):,}/{int(rate['n']):,})"


def detector_rows(detectors: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """The detectors' figures as rows ``(kind, label, one cell per detector)``: realistic variants (suite,
    then each perturbation), clean inputs, then each shifted source. ``kind`` is ``suite``, ``perturbation``,
    ``clean`` or ``shifted``."""
    order: list[tuple[str, str | None, str | None]] = []
    for detector in detectors:
        for rate in [*(detector.get("false_alarms") or ()), *(detector.get("shifted") or ())]:
            where = (rate.get("group"), rate.get("suite"), rate.get("perturbation"))
            if where not in order:
                order.append(where)
    rows = []
    for group, suite, perturbation in order:
        cells = []
        for detector in detectors:
            found = None
            for rate in [*(detector.get("false_alarms") or ()), *(detector.get("shifted") or ())]:
                if (rate.get("group"), rate.get("suite"), rate.get("perturbation")) == (group, suite, perturbation):
                    found = rate
            cells.append(_rate_text(found))
        if group == "realistic":
            kind, label = ("suite", f"{suite} (all)") if perturbation is None else ("perturbation", f"  {perturbation}")
        elif group == "clean":
            kind, label = "clean", "clean inputs"
        else:
            kind, label = "shifted", f"shifted: {perturbation}"
        rows.append((kind, label, cells))
    return rows


def fitted_sentence(detector: Mapping[str, Any]) -> str | None:
    """What a check-fitted detector was fitted on (None for one the check did not fit)."""
    if not detector.get("fitted_by_check"):
        return None
    text = (
        f"{detector_label(detector)} was fitted by the check on the calibration half: "
        f"{int(detector.get('reference_cases') or 0):,} clean inputs + {int(detector.get('reference_variants') or 0):,} "
        f"realistic variants the raw system answered right (of {int(detector.get('reference_tried') or 0):,} tried)"
    )
    if detector.get("saved_to"):
        text += f"; saved to {detector['saved_to']}"
    return text


def count_line(suite: Mapping[str, Any]) -> str:
    """One suite's perturbations with their variant counts: ``typo 399, abbreviate 145 (74 n/a), ...``."""
    parts = []
    for p in suite.get("perturbations") or ():
        if p.get("other_input_kind"):
            continue
        text = f"{p.get('name')} {int(p.get('n_variants') or 0):,}"
        if p.get("n_not_applicable"):
            text += f" ({int(p['n_not_applicable']):,} n/a)"
        parts.append(text)
    return ", ".join(parts)


def _no_op_reasons(suite: Mapping[str, Any]) -> str:
    shown = []
    for p in suite.get("perturbations") or ():
        if p.get("no_op"):
            reasons = list((p.get("reasons") or {}).keys())
            shown.append(f"{p.get('name')}" + (f" ({reasons[0]})" if reasons else ""))
    return "; ".join(shown)


def terminal_sections(doc: Mapping[str, Any], visible: Callable[[Any, int], str]) -> list[Any]:
    """The terminal renderables: the detectors' table with its notes, then the variants per suite.

    ``visible(value, limit)`` is the terminal report's plain-text rendering of an untrusted value.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    detectors = list(doc.get("detectors") or ())
    if detectors:
        table = Table(
            title="Input detectors: share flagged (evaluation half; realistic and clean: inputs the raw system answered right)",
            box=box.SIMPLE_HEAD, title_justify="left",
        )
        table.add_column("inputs", overflow="fold", max_width=30)
        for detector in detectors:
            table.add_column(visible(detector_label(detector), 40), justify="right", overflow="fold")
        for kind, label, cells in detector_rows(detectors):
            style = "bold" if kind in ("suite", "clean") else ""
            table.add_row(Text(visible(label, 60), style=style), *cells)
        parts.append(table)
        for detector in detectors:
            sentence = fitted_sentence(detector)
            if sentence:
                parts.append(Text(visible(sentence, 400), style="dim"))
    counts = list(doc.get("perturbation_counts") or ())
    if counts:
        table = Table(title="Variants made per perturbation (both halves; n/a: cases it had nothing to do for)",
                      box=box.SIMPLE_HEAD, title_justify="left")
        table.add_column("suite", no_wrap=True)
        table.add_column("cases", justify="right")
        table.add_column("perturbation variants", overflow="fold", ratio=1)
        for suite in counts:
            table.add_row(Text(visible(suite.get("suite"), 30), style="bold"), f"{int(suite.get('n_cases') or 0):,}",
                          Text(visible(count_line(suite), 2000)))
        parts.append(table)
        for suite in counts:
            if suite.get("no_ops"):
                parts.append(Text(
                    f"no-op in {visible(suite.get('suite'), 30)}: made nothing for any case — {visible(_no_op_reasons(suite), 600)}",
                    style="bold red",
                ))
            if suite.get("other_input_kind"):
                parts.append(Text(
                    f"{visible(suite.get('suite'), 30)}: {visible(', '.join(suite['other_input_kind']), 400)} work on another kind of "
                    "input than these cases and made nothing", style="dim",
                ))
    return parts


def markdown_lines(doc: Mapping[str, Any], cell: Callable[[Any, int], str]) -> list[str]:
    """The Markdown lines of the two sections (empty when the document has neither); ``cell(value, limit)``
    is the Markdown report's inert rendering of an untrusted value."""
    lines: list[str] = []
    detectors = list(doc.get("detectors") or ())
    if detectors:
        lines += ["", "### Input detectors", "",
                  "Share flagged on the evaluation half (realistic and clean: inputs the raw system answered right).", "",
                  "| inputs | " + " | ".join(cell(detector_label(d), 60) for d in detectors) + " |",
                  "|---|" + "---:|" * len(detectors)]
        for kind, label, cells in detector_rows(detectors):
            if kind == "perturbation" and all(c.startswith("0.0%") or c == "—" for c in cells):
                continue  # perturbations nothing flagged: the suite's row counts them
            shown = cell(label.strip(), 60)
            lines.append(f"| {'**' + shown + '**' if kind in ('suite', 'clean') else shown} | " + " | ".join(cells) + " |")
        for detector in detectors:
            sentence = fitted_sentence(detector)
            if sentence:
                lines += ["", cell(sentence, 400)]
    counts = list(doc.get("perturbation_counts") or ())
    if counts:
        lines += ["", "### Variants per perturbation", ""]
        for suite in counts:
            lines.append(f"- **{cell(suite.get('suite'), 40)}** ({int(suite.get('n_cases') or 0):,} cases): {cell(count_line(suite), 1500)}")
            if suite.get("no_ops"):
                lines.append(f"  - ❌ **no-op**: made nothing for any case: {cell(_no_op_reasons(suite), 600)}")
            if suite.get("other_input_kind"):
                lines.append(f"  - work on another kind of input, made nothing: {cell(', '.join(suite['other_input_kind']), 400)}")
    return lines
