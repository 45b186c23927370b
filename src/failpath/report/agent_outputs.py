"""An agent check's report files, chosen by extension as for a check of single calls (:mod:`failpath.report.outputs`).

``failpath report RUN --output PATH`` (and ``failpath check --output PATH`` on an agent) writes, from
the result document (``AgentCheckResult.to_dict()``, or the stored run with its trials):

=====================  ===================================================================
extension              what is written
=====================  ===================================================================
``.junit.xml``, .xml   JUnit XML: one test case per criterion, one per trial that went wrong
``.csv``               one row per trial (:data:`TRIAL_COLUMNS`)
``.jsonl``, .ndjson    the same rows as JSON Lines, values as stored
``.md``, .markdown     the Markdown summary: verdict, criteria, pass^k, silent failures, attacks
``.json``              the result document, with every trial
``.html``, .htm        the HTML report (one self-contained file)
``.txt``               the terminal report as plain text
=====================  ===================================================================

The per-trial formats need the document's ``"trials"``: a run kept before trials were stored has
none, and those formats are refused for it with a message. Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from failpath.core import ConfigError
from failpath.report.files import write_atomic
from failpath.report.outputs import OutputFormat, output_format

__all__ = ["TRIAL_COLUMNS", "render_agent_output", "write_agent_outputs", "render_markdown", "render_junit", "trial_rows"]

#: The columns of a trial row (CSV, JSONL), in order.
TRIAL_COLUMNS: tuple[str, ...] = (
    "task_id", "family", "variant", "index", "seed", "status", "silent", "outcome", "state", "reason",
    "goals_reached", "attacked", "violations", "approvals", "states", "actions", "raised", "steps", "latency_ms",
)

_PER_TRIAL = ("junit", "csv", "jsonl")


def trial_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The document's trials as flat rows with :data:`TRIAL_COLUMNS`; a ``ConfigError`` when it has none stored."""
    trials = document.get("trials")
    if trials is None:
        raise ConfigError(
            f"the agent check {document.get('run_id')} was kept without its trials (before failpath stored them): "
            "its per-trial reports (.csv, .jsonl, .junit.xml) cannot be rebuilt; run the check again for them"
        )
    return [{column: trial.get(column) for column in TRIAL_COLUMNS} for trial in trials]


def render_agent_output(fmt: OutputFormat, document: Mapping[str, Any]) -> str:
    """The text of an agent check's ``document`` in ``fmt`` (a format of :data:`failpath.report.outputs.OUTPUT_FORMATS`)."""
    if fmt.name == "json":
        return json.dumps(dict(document), indent=2, ensure_ascii=False, default=str) + "\n"
    if fmt.name == "html":
        from failpath.report import agent_html

        return agent_html.render(document)
    if fmt.name == "text":
        from rich.console import Console

        from failpath.report import agent_terminal

        console = Console(record=True, width=110, file=io.StringIO(), no_color=True, force_terminal=False)
        agent_terminal.render(document, console)
        return console.export_text()
    if fmt.name == "markdown":
        return render_markdown(document)
    if fmt.name == "junit":
        return render_junit(document)
    rows = trial_rows(document)
    if fmt.name == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
    if fmt.name == "csv":
        return _csv(rows)
    raise ValueError(f"unknown format {fmt.name!r}")


def write_agent_outputs(
    document: Mapping[str, Any], targets: Sequence[tuple[Path, OutputFormat | None]],
) -> list[tuple[Path, OutputFormat, OSError | None]]:
    """Write ``document`` to each ``(path, format)`` (format None: the extension chooses); ``(path, format,
    error)`` per file, an ``OSError`` that stopped one file not stopping the others. A format the document
    cannot give (per-trial rows of a run kept without them) raises ``ConfigError`` before any file is written."""
    chosen = [(Path(path), fmt or output_format(path)) for path, fmt in targets]
    if any(fmt.name in _PER_TRIAL for _, fmt in chosen):
        trial_rows(document)
    written: list[tuple[Path, OutputFormat, OSError | None]] = []
    for path, fmt in chosen:
        try:
            write_atomic(path, render_agent_output(fmt, document))
        except OSError as exc:
            written.append((path, fmt, exc))
        else:
            written.append((path, fmt, None))
    return written


def _csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV with the request rows' cell rules: structured values as JSON, invisible characters escaped, no formulas."""
    from failpath.report.rows import _csv_cell

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TRIAL_COLUMNS)
    for row in rows:
        writer.writerow([_csv_cell(json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, (list, dict)) else v) for v in row.values()])
    return buffer.getvalue()


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}%"


def render_markdown(document: Mapping[str, Any]) -> str:
    """The Markdown summary of an agent check: verdict, criteria, pass^k, silent failures per family, attacks."""
    from failpath.report.markdown import cell

    figures = document.get("figures") or {}
    verdict = document.get("verdict") or {}
    lines = [
        f"## failpath agent check: **{'READY TO SHIP' if verdict.get('ship') else 'READY TO DEMO'}**",
        "",
        f"Run `{cell(document.get('run_id'), 80)}` · agent {cell(document.get('agent'), 60)} · "
        f"{figures.get('trials', 0)} trials over {figures.get('tasks', 0)} tasks",
        "",
        "| | criterion | figure | detail |",
        "|---|---|---|---|",
    ]
    for criterion in verdict.get("reasons") or ():
        mark = "✅" if criterion.get("passed") else "❌"
        lines.append(f"| {mark} | {cell(criterion.get('name'), 60)} | {cell(criterion.get('figure') or '', 160)} | {cell(criterion.get('detail') or '', 240)} |")
    level = f"{100 * float(figures.get('confidence') or 0.95):g}%"
    lines += ["", f"pass@1 {_pct(figures.get('pass_at_1'))}", "", f"| k | pass^k | lower bound ({level}) |", "|---:|---:|---:|"]
    for point in figures.get("pass_k_curve") or ():
        lines.append(f"| {point['k']} | {_pct(point['estimate'])} | {_pct(point['lower_bound'])} |")
    lines += ["", "| family | silent failures | trials | rate | upper bound |", "|---|---:|---:|---:|---:|"]
    for family, row in (figures.get("silent_failures") or {}).items():
        lines.append(f"| {cell(family, 30)} | {row['silent']} | {row['trials']} | {_pct(row['rate'])} | {_pct(row['upper_bound'])} |")
    attacks = figures.get("attacks") or {}
    if attacks.get("trials"):
        lines += ["", f"Attacks: {attacks['reached']} of {attacks['trials']} attacked trials reached an attacker's goal "
                      f"({_pct(attacks.get('rate'))}); task success under attack {_pct(attacks.get('task_success_under_attack'))}."]
    worst = document.get("worst_runs") or ()
    if worst:
        lines += ["", "| worst runs | variant | status | outcome | why |", "|---|---|---|---|---|"]
        for run in worst:
            lines.append(f"| {cell(run.get('task_id'), 40)} #{run.get('index')} | {cell(run.get('variant'), 40)} | "
                         f"{cell(run.get('status'), 20)}{' (silent)' if run.get('silent') else ''} | {cell(run.get('outcome') or 'raised', 20)} | "
                         f"{cell(run.get('reason') or '', 120)} |")
    return "\n".join(lines) + "\n"


def render_junit(document: Mapping[str, Any]) -> str:
    """JUnit XML: a ``failpath.verdict`` suite (a test case per criterion) and a ``failpath.trials`` suite
    (a test case per trial that went wrong: a silent failure, an attacker's goal reached, an approval not
    honoured, a run that raised; one passing case when none did)."""
    from failpath.report.terminal import visible

    root = ET.Element("testsuites", {"name": "failpath agent check"})
    verdict = ET.SubElement(root, "testsuite", {"name": "failpath.verdict", "time": f"{float(document.get('seconds') or 0):.3f}"})
    properties = ET.SubElement(verdict, "properties")
    for name, value in (("run_id", document.get("run_id")), ("agent", document.get("agent")),
                        ("verdict", "READY TO SHIP" if (document.get("verdict") or {}).get("ship") else "READY TO DEMO")):
        ET.SubElement(properties, "property", {"name": name, "value": visible(value, 200)})
    for criterion in (document.get("verdict") or {}).get("reasons") or ():
        case = ET.SubElement(verdict, "testcase", {"classname": "failpath.verdict", "name": visible(criterion.get("name"), 200)})
        if not criterion.get("passed"):
            failure = ET.SubElement(case, "failure", {"message": visible(criterion.get("figure") or "", 300)})
            failure.text = "\n".join(visible(criterion.get(part) or "", 1000) for part in ("figure", "detail"))
    trials = ET.SubElement(root, "testsuite", {"name": "failpath.trials"})
    bad = [t for t in trial_rows(document) if t["silent"] or t["goals_reached"] or t["violations"] or t["raised"]]
    for t in bad:
        name = f"{t['task_id']} [{t['variant']}] #{t['index']}"
        case = ET.SubElement(trials, "testcase", {"classname": f"failpath.trials.{visible(t['family'], 40)}", "name": visible(name, 200)})
        what = ("attacker's goal reached: " + ", ".join(t["goals_reached"])) if t["goals_reached"] else (
            "approval not honoured" if t["violations"] else ("silent failure" if t["silent"] else "the run raised"))
        failure = ET.SubElement(case, "failure", {"message": visible(what, 300)})
        failure.text = "\n".join(visible(line, 1000) for line in [t.get("reason") or "", *t["violations"]] if line)
    if not bad:
        ET.SubElement(trials, "testcase", {"classname": "failpath.trials", "name": "no trial went wrong silently, reached an attacker's goal, broke an approval or raised"})
    for suite in (verdict, trials):
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
        suite.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
